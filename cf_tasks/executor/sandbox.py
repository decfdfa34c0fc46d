"""Isolated tier, parent side: talks to the zygote (``zygote.py``) and computes verdicts.

Every program that was not generated in this process runs here, one job per isolated child
(see ``zygote.py`` and ``hardening.py`` for the layers). The zygote only relays each child's
raw reply, exit status and wall time; every status is decided here, from data the child never
saw: a reply counts only when the child exited 0 and the reply is exactly one well-formed
``[status, value]`` pair per call.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
import warnings
import weakref
from pathlib import Path
from typing import Any, Sequence

from .framing import FrameError, FrameReader, encode, write_all
from .pool import decode_job_reply, job_wall_limit, not_json, site_paths
from .types import CallResult, Job, JobResult, Limits

logger = logging.getLogger(__name__)

ZYGOTE_SCRIPT = Path(__file__).with_name("zygote.py")
SYSTEM_DIRS = ("/usr", "/lib", "/lib32", "/lib64", "/libx32", "/bin", "/sbin")
DEVICES = ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/random")
ZYGOTE_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
              "MKL_NUM_THREADS": "1", "NUMEXPR_NUM_THREADS": "1"}
"""The zygote's whole environment: fixed, nothing inherited (its memory never holds the caller's)."""
_warned: set[str] = set()


def read_only_binds() -> list[str]:
    """Folders a sandboxed program may read: the system and the Python installation only."""
    paths = list(SYSTEM_DIRS) + [sys.base_prefix, sys.prefix]
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        p = sysconfig.get_paths().get(key)
        if p:
            paths.append(p)
    real = sorted({os.path.abspath(p) for p in paths}, key=len)
    return real + list(DEVICES)


class SandboxPool:
    """One zygote whose server runs up to ``workers`` isolated children at a time."""

    def __init__(self, workers: int, limits: Limits, harden: bool = True, scratch_mb: int = 16,
                 fsize_bytes: int = 1 << 20, nofile: int = 32, seccomp: bool = True) -> None:
        """``harden=False`` / ``seccomp=False`` switch layers off, so that tests can check that the
        remaining layers still contain what they claim to."""
        self.limits = limits
        self._lock = threading.Lock()
        self._closed = False
        # Host temp folder: scratch for jobs only without namespaces; its path also names our
        # processes (it is in the zygote's command line). The zygote removes it when it exits,
        # even after a SIGKILL of this process; this finalizer covers a zygote that never started.
        self._scratch = tempfile.mkdtemp(prefix="cf-sandbox-")
        self._cleanup = weakref.finalize(self, shutil.rmtree, self._scratch, True)
        self._config = {
            "memory_bytes": limits.memory_mb << 20,
            "call_timeout": limits.call_timeout_s,
            "job_timeout": limits.job_timeout_s,
            "output_bytes": limits.output_bytes,
            "parallel": workers,
            "fsize_bytes": fsize_bytes,
            "nofile": nofile,
            "scratch_mb": scratch_mb,
            "scratch_root": self._scratch,
            "binds": read_only_binds(),
            "paths": site_paths(),
            "harden": harden,
            "seccomp": seccomp,
        }
        self._proc: subprocess.Popen | None = None
        self._reader: FrameReader | None = None
        self._report: dict[str, Any] = {}
        self._start()

    # --- zygote lifecycle -----------------------------------------------------------------
    def _start(self) -> None:
        config = json.dumps({**self._config, "parent_pid": os.getpid()})
        with tempfile.TemporaryFile() as errors:  # start-up diagnostics only
            self._proc = subprocess.Popen(
                [sys.executable, "-I", "-S", str(ZYGOTE_SCRIPT), config],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errors,
                env=ZYGOTE_ENV, close_fds=True, start_new_session=True, bufsize=0, cwd="/",
            )
            self._reader = FrameReader(self._proc.stdout.fileno(), max_frame=self.limits.output_bytes + (1 << 16))
            try:
                hello = json.loads(self._reader.read(time.monotonic() + 30.0))
                if not hello.get("ready"):
                    raise ValueError(hello.get("error") or "no greeting")
            except (FrameError, ValueError, AttributeError) as exc:
                self._kill()
                errors.seek(0)
                tail = errors.read()[-2000:].decode("utf-8", "replace")
                raise RuntimeError(f"sandbox zygote failed to start ({exc}; exit code "
                                   f"{self._proc.returncode}):\n{tail}") from None
        self._report = dict(hello.get("report", {}))
        self._warn_degraded()

    def _warn_degraded(self) -> None:
        missing = {k: v for k, v in self._report.items() if str(v).startswith("unavailable")}
        if not missing:
            return
        key = json.dumps(missing, sort_keys=True)
        if key not in _warned:
            _warned.add(key)
            text = "; ".join(f"{k}: {v}" for k, v in sorted(missing.items()))
            warnings.warn(f"untrusted executor runs with reduced isolation: {text}", RuntimeWarning, stacklevel=5)
            logger.warning("untrusted executor isolation gaps: %s", text)

    def _kill(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the supervisor; server and jobs die with it
            except (ProcessLookupError, PermissionError):
                pass
        proc.wait()
        for f in (proc.stdin, proc.stdout):
            try:
                f.close()
            except OSError:
                pass

    def isolation_report(self) -> dict[str, Any]:
        report: dict[str, Any] = {
            "tier": "isolated",
            "process": "one child per job, cloned from a lean pre-started fork server (python -I -S zygote.py)",
            "environment": ("enforced (the zygote starts with a fixed environment of %d variables; nothing of the "
                            "caller's environment or memory is in it)" % len(ZYGOTE_ENV)),
            "parent_death": ("enforced (the zygote watches the caller through a pidfd, the server watches its "
                             "request pipe; server and jobs have PR_SET_PDEATHSIG=SIGKILL; the temp folder is "
                             "removed)"),
            "session_and_group": "enforced (setsid per job; the server SIGKILLs it on the wall-clock deadline)",
            "call_cpu": ("enforced (per call: an in-process CPU timer, and the server reads the job's CPU clock "
                         "from outside and kills a call past %gs)" % (self.limits.call_timeout_s * 1.25 + 0.1)),
            "rlimits": (f"enforced (CPU <= calls x {self.limits.call_timeout_s:g}s + 1s, "
                        f"AS {self.limits.memory_mb} MiB, FSIZE {self._config['fsize_bytes']} B, "
                        f"NOFILE {self._config['nofile']}, CORE 0)"),
            "fds": "enforced (stdin/stdout/stderr on the null device; only the result pipe open)",
            "ptrace_between_jobs": "enforced (jobs are non-dumpable; ptrace and process_vm_* kill the job)",
            "output_bytes": self.limits.output_bytes,
            "result_channel": "JSON only; verdicts computed by the caller's process",
        }
        report.update(self._report)
        report["enforced"] = sorted(k for k, v in report.items() if str(v).startswith("enforced"))
        report["unavailable"] = sorted(k for k, v in report.items() if str(v).startswith("unavailable"))
        return report

    # --- running ----------------------------------------------------------------------------
    def run(self, jobs: Sequence[Job]) -> list[list[CallResult]]:
        return [r.calls for r in self.run_jobs(jobs)]

    def run_jobs(self, jobs: Sequence[Job]) -> list[JobResult]:
        if not jobs:
            return []
        with self._lock:
            if self._closed:
                raise RuntimeError("executor is closed")
            return self._run_locked(jobs)

    def _run_locked(self, jobs: Sequence[Job]) -> list[JobResult]:
        out: list[JobResult | None] = [None] * len(jobs)
        try:
            request = json.dumps({"jobs": [[j.source, j.entry_point, list(j.calls), j.timeout_s] for j in jobs]},
                                 separators=(",", ":"), allow_nan=False).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise not_json(jobs, exc) from None
        if self._proc is None or self._proc.poll() is not None:
            self._start()
        assert self._proc is not None and self._reader is not None
        stall = self.limits.job_timeout_s + 5.0
        try:
            write_all(self._proc.stdin.fileno(), encode(request))
            deadline = time.monotonic() + stall
            pending = len(jobs)
            while pending:
                meta = json.loads(self._reader.read(deadline))
                payload = self._reader.read(time.monotonic() + 5.0)
                i = int(meta["i"])
                if not 0 <= i < len(jobs) or out[i] is not None:
                    raise ValueError(f"bad job index {i}")
                out[i] = JobResult(verdict(jobs[i], meta, payload, self.limits), float(meta["wall"]))
                pending -= 1
                deadline = time.monotonic() + stall
        except (OSError, FrameError, ValueError, KeyError, TypeError) as exc:
            logger.warning("sandbox zygote failed (%s); restarting it", exc)
            self._kill()
            self._proc = None
            for i, res in enumerate(out):
                if res is None:
                    out[i] = JobResult([CallResult("crash", None, f"sandbox failed: {exc}")] * len(jobs[i].calls))
        return out  # type: ignore[return-value]

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._proc is not None:
                try:
                    self._proc.stdin.close()  # EOF: the server exits, its jobs die with it
                    self._proc.wait(1.0)
                except (OSError, subprocess.TimeoutExpired):
                    pass
                self._kill()
            self._cleanup()


def verdict(job: Job, meta: dict, payload: bytes, limits: Limits) -> list[CallResult]:
    """Status of every call of a job from the child's exit status and raw reply."""
    n = len(job.calls)
    code, reason = meta.get("code"), meta.get("reason")

    def all_(status: str, why: str) -> list[CallResult]:
        return [CallResult(status, None, why)] * n

    if reason == "deadline":
        return all_("timeout", f"job exceeded its {job_wall_limit(job, limits):g}s wall-clock limit; killed")
    if reason == "cpu":
        return all_("timeout", f"a call exceeded its {limits.call_timeout_s:g}s of CPU time (stopped from outside)")
    if reason == "oversize":
        return all_("limit", "reply exceeds the output limit; process group killed")
    if code == -signal.SIGXCPU or code == -signal.SIGKILL and not payload:
        return all_("timeout", "job exceeded its CPU time limit")
    if code == -signal.SIGSYS:
        return all_("crash", "killed: forbidden system call (seccomp)")
    if code != 0:
        return all_("crash", f"child exited with status {code} before returning")
    if not payload:
        return all_("crash", "child exited without a reply")
    return decode_job_reply(payload, n)
