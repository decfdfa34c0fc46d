"""Trusted tier: a pool of persistent worker processes running batches of our own programs.

Why this shape (see ``docs/executor.md``; ``benchmarks/bench_execution.py`` measures it): a
persistent worker with in-process ``exec`` costs ~0.1 ms per program against ~10 ms for a fresh
interpreter, and batching many jobs per message amortises the pipe round trip. Limits that a program could
defeat from inside (a C loop, a swallowed timeout, ``os._exit``) are backed from outside:
the parent kills a worker that makes no progress for ``job_timeout_s``, respawns it, gives
the job that was running (read from a shared progress word) the failure's status and re-runs
the unfinished rest; when the culprit is unknown it re-runs jobs one at a time to isolate it.

Only programs generated in this process run here (:mod:`cf_tasks.executor.provenance`):
:meth:`TrustedPool.run` refuses a job whose source is a plain ``str``.
"""

from __future__ import annotations

import json
import logging
import mmap
import os
import queue
import signal
import subprocess
import sys
import sysconfig
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Sequence

from .framing import FrameError, FrameReader, encode, write_all
from .provenance import is_generated
from .types import CallResult, Job, Limits

logger = logging.getLogger(__name__)

WORKER_SCRIPT = Path(__file__).with_name("worker.py")
_STATUS_OK = "ok"
_KNOWN = {"ok", "error", "timeout", "limit", "crash"}


def worker_env() -> dict[str, str]:
    """Environment for worker processes: BLAS/OpenMP pinned to one thread (RLIMIT_AS vs OpenBLAS)."""
    env = dict(os.environ)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        env[name] = "1"
    return env


def site_paths() -> list[str]:
    paths = []
    for key in ("purelib", "platlib"):
        p = sysconfig.get_paths().get(key)
        if p and p not in paths:
            paths.append(p)
    return paths


def decode_job_reply(frame: bytes, n_calls: int) -> list[CallResult]:
    """Turn one job's reply frame into CallResults; anything malformed becomes ``crash``."""
    try:
        pairs = json.loads(frame)
        if not isinstance(pairs, list) or len(pairs) != n_calls:
            raise ValueError("wrong number of results")
        out = []
        for pair in pairs:
            status = pair[0]
            if status == _STATUS_OK:
                out.append(CallResult("ok", pair[1]))
            elif status in _KNOWN:
                out.append(CallResult(status, None, str(pair[1])))
            else:
                raise ValueError(f"unknown status {status!r}")
        return out
    except (ValueError, TypeError, IndexError, KeyError, RecursionError) as exc:
        return [CallResult("crash", None, f"malformed reply from worker: {exc}")] * n_calls


def encode_request(jobs: Sequence[Job]) -> bytes:
    """One request frame; identical sources are sent (and compiled) once per batch."""
    index: dict[str, int] = {}
    sources: list[str] = []
    rows = []
    for job in jobs:
        i = index.get(job.source)
        if i is None:
            i = index[job.source] = len(sources)
            sources.append(job.source)
        rows.append((i, job.entry_point, list(job.calls)))
    try:
        text = json.dumps({"src": sources, "jobs": rows}, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise not_json(jobs, exc) from None
    return encode(text.encode("utf-8"))


def not_json(jobs: Sequence[Job], exc: Exception) -> ValueError:
    """A ValueError naming the first job argument that cannot be sent as JSON."""
    for i, job in enumerate(jobs):
        for k, call in enumerate(job.calls):
            try:
                json.dumps(dict(call), allow_nan=False)
            except (TypeError, ValueError) as err:
                return ValueError(f"jobs[{i}].calls[{k}] is not JSON-serialisable: {err}")
    return ValueError(f"jobs are not JSON-serialisable: {exc}")


def job_wall_limit(job: Job, limits: Limits) -> float:
    """Wall-clock seconds a job may run: ``Limits.job_timeout_s``, or less if the job asks."""
    if job.timeout_s is None:
        return limits.job_timeout_s
    return max(0.0, min(float(job.timeout_s), limits.job_timeout_s))


class BatchFailed(Exception):
    """A worker died or stalled; ``done`` holds the results received before that."""

    def __init__(self, done: list[list[CallResult]], status: str, detail: str, culprit: int | None) -> None:
        super().__init__(detail)
        self.done = done
        self.status = status
        self.detail = detail
        self.culprit = culprit  # index (in the batch) of the job that was running, if known


class WorkerProcess:
    """One persistent worker: a subprocess plus the framing state of its pipes."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        progress_fd = os.memfd_create("cf-executor-progress")
        os.ftruncate(progress_fd, 8)
        self._progress_map = mmap.mmap(progress_fd, 8)
        self.progress = memoryview(self._progress_map).cast("I")
        config = {
            "progress_fd": progress_fd,
            "memory_bytes": limits.memory_mb << 20,
            "call_timeout": limits.call_timeout_s,
            "output_bytes": limits.output_bytes,
            "paths": site_paths(),
            "parent_pid": os.getpid(),
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", str(WORKER_SCRIPT), json.dumps(config)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            env=worker_env(), close_fds=True, start_new_session=True, bufsize=0,
            pass_fds=(progress_fd,),
        )
        os.close(progress_fd)
        self.reader = FrameReader(self.proc.stdout.fileno(), max_frame=limits.output_bytes + (1 << 16))
        self.batches = 0
        self.ready = False

    def _wait_ready(self) -> None:
        try:
            hello = json.loads(self.reader.read(time.monotonic() + 30.0))
        except FrameError as exc:
            self.kill()
            raise RuntimeError(f"executor worker failed to start ({exc}; exit code {self.proc.returncode})") from None
        if not isinstance(hello, dict) or "ready" not in hello:
            self.kill()
            raise RuntimeError(f"executor worker sent an unexpected greeting: {hello!r}")
        self.ready = True

    def run_batch(self, jobs: Sequence[Job]) -> list[list[CallResult]]:
        """Run jobs in order; raises :class:`BatchFailed` (worker then dead) on death or stall."""
        if not self.ready:
            self._wait_ready()
        self.batches += 1
        done: list[list[CallResult]] = []
        self.progress[0] = 0  # type: ignore[index]
        try:
            write_all(self.proc.stdin.fileno(), encode_request(jobs))
        except OSError as exc:
            self.kill()
            raise BatchFailed(done, "crash", f"worker died ({exc})", None) from None
        for job in jobs:
            deadline = time.monotonic() + job_wall_limit(job, self.limits) + 0.5
            try:
                frame = self.reader.read(deadline)
            except FrameError as exc:
                self._signal_kill()  # the whole group, before reaping (the group id is ours)
                self.proc.wait()
                running = self.progress[0]
                self.kill()
                culprit = running - 1 if len(done) < running <= len(jobs) else None
                raise BatchFailed(done, *self._verdict(exc), culprit) from None
            done.append(decode_job_reply(frame, len(job.calls)))
        return done

    def _verdict(self, exc: FrameError) -> tuple[str, str]:
        if exc.kind == "deadline":
            return "timeout", f"job exceeded the {self.limits.job_timeout_s:g}s wall-clock limit"
        if exc.kind == "oversize":
            return "limit", "reply exceeds the output limit"
        code = self.proc.returncode
        if code == -signal.SIGXCPU:
            return "timeout", "call exceeded its CPU time (killed by SIGXCPU)"
        if code == -signal.SIGSEGV:
            return "crash", "worker crashed (SIGSEGV; stack overflow?)"
        return "crash", f"worker died (exit code {code})"

    def alive(self) -> bool:
        return self.proc.poll() is None

    def _signal_kill(self) -> None:
        # Only while not reaped: until then the pid, and so the group id, cannot be reused.
        if self.proc.returncode is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def kill(self) -> None:
        """Kill (if alive), reap, and release the pipes and the progress map; idempotent."""
        self._signal_kill()
        self.proc.wait()
        if self.progress is not None:
            self.progress.release()
            self._progress_map.close()
            self.progress = None
        for f in (self.proc.stdin, self.proc.stdout):
            try:
                f.close()
            except OSError:
                pass

    def close(self, grace_s: float = 1.0) -> None:
        """Ask the worker to exit (EOF on its stdin), then kill it if it does not."""
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            pass
        self.kill()


class TrustedPool:
    """N persistent workers; ``run`` splits the jobs into chunks spread over them.

    Thread-safe: idle workers sit in a queue; each chunk borrows one, so concurrent ``run``
    calls (lm-eval and TRL may call from threads) share the workers fairly.
    """

    def __init__(self, workers: int, limits: Limits, recycle_after: int = 200) -> None:
        self.n = workers
        self.limits = limits
        self.recycle_after = recycle_after
        self._lock = threading.Lock()
        self._all: set[WorkerProcess] = set()
        self._idle: queue.SimpleQueue[WorkerProcess] = queue.SimpleQueue()
        self._threads: ThreadPoolExecutor | None = None
        self._closed = False
        for _ in range(workers):
            self._idle.put(self._spawn())

    def _spawn(self) -> WorkerProcess:
        w = WorkerProcess(self.limits)
        with self._lock:
            if self._closed:
                w.kill()
                raise RuntimeError("executor is closed")
            self._all.add(w)
        return w

    def _replace(self, w: WorkerProcess) -> WorkerProcess:
        w.kill()
        with self._lock:
            self._all.discard(w)
        return self._spawn()

    def _chunks(self, jobs: Sequence[Job]) -> list[tuple[int, int]]:
        """Contiguous (start, stop) ranges: about 4 chunks per worker, 16..4096 calls each."""
        total = sum(max(1, len(j.calls)) for j in jobs)
        target = max(16, min(4096, total // (self.n * 4) + 1))
        ranges, start, acc = [], 0, 0
        for i, job in enumerate(jobs):
            acc += max(1, len(job.calls))
            if acc >= target:
                ranges.append((start, i + 1))
                start, acc = i + 1, 0
        if start < len(jobs):
            ranges.append((start, len(jobs)))
        return ranges

    def run(self, jobs: Sequence[Job]) -> list[list[CallResult]]:
        if self._closed:
            raise RuntimeError("executor is closed")
        for i, job in enumerate(jobs):
            if not is_generated(job.source):
                raise TypeError(f"jobs[{i}]: the trusted pool runs only programs generated in this process "
                                "(GeneratedSource); route other programs through Executor, which isolates them")
        if not jobs:
            return []
        ranges = self._chunks(jobs)
        if len(ranges) == 1:
            return self._run_chunk(jobs)
        with self._lock:
            if self._threads is None:
                self._threads = ThreadPoolExecutor(max_workers=self.n, thread_name_prefix="cf-executor")
            pool = self._threads
        futures = [pool.submit(self._run_chunk, jobs[a:b]) for a, b in ranges]
        out: list[list[CallResult]] = []
        for f in futures:
            out.extend(f.result())
        return out

    def _run_chunk(self, jobs: Sequence[Job]) -> list[list[CallResult]]:
        """Run a contiguous chunk on one borrowed worker, surviving deaths and stalls.

        After a failure the worker is replaced; the job that was running (known from the
        progress word) gets the failure's status, and the jobs after it, together with any
        whose results were still buffered, are re-run. When the culprit is unknown (the
        worker died between jobs), the first unfinished job is re-run alone to isolate it.
        """
        w = self._idle.get()
        try:
            out: list[list[CallResult] | None] = [None] * len(jobs)
            todo = list(range(len(jobs)))
            while todo:
                try:
                    for i, res in zip(todo, w.run_batch([jobs[i] for i in todo])):
                        out[i] = res
                    break
                except BatchFailed as failure:
                    for i, res in zip(todo, failure.done):
                        out[i] = res
                    rest = todo[len(failure.done):]
                    w = self._replace(w)
                    logger.debug("worker failed (%s) with %d jobs left", failure.detail, len(rest))
                    if failure.culprit is not None:
                        c = rest[failure.culprit - len(failure.done)]
                        out[c] = [CallResult(failure.status, None, failure.detail)] * len(jobs[c].calls)
                        todo = [i for i in rest if i != c]
                        continue
                    first, todo = rest[0], rest[1:]
                    try:
                        out[first] = w.run_batch([jobs[first]])[0]
                    except BatchFailed as alone:
                        status = alone.status
                        out[first] = [CallResult(status, None, alone.detail)] * len(jobs[first].calls)
                        w = self._replace(w)
            if w.batches >= self.recycle_after:
                w = self._replace(w)
            return out  # type: ignore[return-value]
        finally:
            self._idle.put(w)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            workers = list(self._all)
            threads, self._threads = self._threads, None
        if threads is not None:
            threads.shutdown(wait=False, cancel_futures=True)
        for w in workers:  # EOF first for all, so they exit in parallel
            try:
                w.proc.stdin.close()
            except OSError:
                pass
        for w in workers:
            w.close(grace_s=0.5)
