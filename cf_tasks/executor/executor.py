"""The public executor: one interface, and the tier of every job decided by where it came from.

Programs never run in the calling process. A job whose source is a
:class:`~cf_tasks.executor.provenance.GeneratedSource` (made by the generation pipeline from
a family plugin's output) runs in the trusted pool of persistent workers (fast, limits from
outside); every other job (a plain ``str``: record files, task documents, datasets, anything
read from disk) runs in the isolated tier, one forked, namespaced child per job (see
:mod:`cf_tasks.executor.sandbox`). ``Executor(untrusted=True)`` isolates every job, generated
or not. Each tier starts on first use.
"""

from __future__ import annotations

import atexit
import os
import threading
from typing import Any, Sequence

from .types import CallResult, Job, JobResult, Limits


class Executor:
    """Run :class:`Job` batches; ``run`` returns one list of :class:`CallResult` per job, in order."""

    def __init__(self, workers: int | None = None, limits: Limits = Limits(), untrusted: bool = False) -> None:
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers!r}")
        if not isinstance(limits, Limits):
            raise ValueError(f"limits must be a Limits, got {type(limits).__name__}")
        self.workers = workers or os.cpu_count() or 1
        self.limits = limits
        self.untrusted = untrusted
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._closed = False
        self._trusted: Any = None
        self._isolated: Any = None
        if untrusted:
            self._isolated_backend()  # start now: isolation_report() and failures are immediate

    @classmethod
    def _with_backend(cls, backend: Any, workers: int, limits: Limits, untrusted: bool = True) -> "Executor":
        """An isolating Executor around an already built sandbox (tests use it to degrade isolation on purpose)."""
        self = cls(workers, limits)
        self.untrusted = True
        self._isolated = backend
        return self

    def _trusted_backend(self) -> Any:
        with self._lock:
            self._check_open()
            if self._trusted is None:
                from .pool import TrustedPool

                self._trusted = TrustedPool(self.workers, self.limits)
            return self._trusted

    def _isolated_backend(self) -> Any:
        with self._lock:
            self._check_open()
            if self._isolated is None:
                from .sandbox import SandboxPool

                self._isolated = SandboxPool(self.workers, self.limits)
            return self._isolated

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("executor is closed")

    def run(self, jobs: Sequence[Job]) -> list[list[CallResult]]:
        """Execute every job; thread-safe. Never raises for a program's misbehaviour."""
        return [r.calls for r in self.run_jobs(jobs)]

    def run_jobs(self, jobs: Sequence[Job]) -> list[JobResult]:
        """Like :meth:`run`, with each job's wall-clock time where the tier measures it."""
        if os.getpid() != self._pid:
            raise RuntimeError("this Executor belongs to another process (it was forked); create a new one")
        self._check_open()
        for i, job in enumerate(jobs):
            if not isinstance(job, Job):
                raise ValueError(f"jobs[{i}] must be a Job, got {type(job).__name__}")
        trusted = [] if self.untrusted else [i for i, job in enumerate(jobs) if job.trusted]
        out: list[JobResult | None] = [None] * len(jobs)
        if trusted:
            for i, calls in zip(trusted, self._trusted_backend().run([jobs[i] for i in trusted])):
                out[i] = JobResult(calls)
        isolated = [i for i in range(len(jobs)) if out[i] is None]
        if isolated:
            for i, res in zip(isolated, self._isolated_backend().run_jobs([jobs[i] for i in isolated])):
                out[i] = res
        return out  # type: ignore[return-value]

    def isolation_report(self) -> dict[str, Any]:
        """What this executor enforces. Routing executors report both tiers (starting the isolated one)."""
        if self.untrusted:
            return self._isolated_backend().isolation_report()
        return {
            "tier": "by provenance: generated programs -> trusted pool, everything else -> isolated sandbox",
            "trusted": {
                "process": "persistent worker processes (python -I -S), one per core",
                "accepts": "only GeneratedSource jobs (programs generated in this process)",
                "call_cpu_timeout_s": self.limits.call_timeout_s,
                "job_wall_timeout_s": self.limits.job_timeout_s,
                "memory_mb": self.limits.memory_mb,
                "output_bytes": self.limits.output_bytes,
                "isolation_between_programs": "fresh globals only (same process)",
            },
            "isolated": self._isolated_backend().isolation_report(),
        }

    def close(self) -> None:
        if os.getpid() != self._pid:
            return
        with self._lock:
            self._closed = True
            backends = [b for b in (self._trusted, self._isolated) if b is not None]
        for backend in backends:
            backend.close()

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_shared: Executor | None = None
_shared_lock = threading.Lock()
_atexit_registered = False


def shared_executor() -> Executor:
    """The process-wide routing executor (trusted pool for generated programs, sandbox for the rest),
    started on first use and closed at interpreter exit."""
    global _shared, _atexit_registered
    with _shared_lock:
        if _shared is None or _shared._pid != os.getpid():
            _shared = Executor()
            if not _atexit_registered:
                atexit.register(_close_shared)
                _atexit_registered = True
        return _shared


def _close_shared() -> None:
    global _shared
    with _shared_lock:
        ex, _shared = _shared, None
    if ex is not None:
        ex.close()
