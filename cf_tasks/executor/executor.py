"""The public executor: one interface over the trusted pool and the untrusted sandbox.

Programs never run in the calling process. ``Executor(untrusted=False)`` (the default) runs
our generator's programs in persistent workers (fast, limits from outside);
``Executor(untrusted=True)`` runs programs from user files in one forked, isolated child
per job (see :mod:`cf_tasks.executor.sandbox`).
"""

from __future__ import annotations

import atexit
import os
import threading
from typing import Any, Sequence

from .types import CallResult, Job, Limits


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
        if untrusted:
            from .sandbox import SandboxPool

            self._backend: Any = SandboxPool(self.workers, limits)
        else:
            from .pool import TrustedPool

            self._backend = TrustedPool(self.workers, limits)

    @classmethod
    def _with_backend(cls, backend: Any, workers: int, limits: Limits, untrusted: bool) -> "Executor":
        """An Executor around an already built backend (tests use it to degrade isolation on purpose)."""
        self = cls.__new__(cls)
        self.workers, self.limits, self.untrusted = workers, limits, untrusted
        self._pid = os.getpid()
        self._backend = backend
        return self

    def run(self, jobs: Sequence[Job]) -> list[list[CallResult]]:
        """Execute every job; thread-safe. Never raises for a program's misbehaviour."""
        if os.getpid() != self._pid:
            raise RuntimeError("this Executor belongs to another process (it was forked); create a new one")
        for i, job in enumerate(jobs):
            if not isinstance(job, Job):
                raise ValueError(f"jobs[{i}] must be a Job, got {type(job).__name__}")
        return self._backend.run(list(jobs))

    def isolation_report(self) -> dict[str, Any]:
        """What this executor enforces (limits and, for the untrusted tier, OS hardening)."""
        if self.untrusted:
            return self._backend.isolation_report()
        return {
            "tier": "trusted",
            "process": "persistent worker processes (python -I -S), one per core",
            "call_cpu_timeout_s": self.limits.call_timeout_s,
            "job_wall_timeout_s": self.limits.job_timeout_s,
            "memory_mb": self.limits.memory_mb,
            "output_bytes": self.limits.output_bytes,
            "isolation_between_programs": "fresh globals only (same process)",
        }

    def close(self) -> None:
        if os.getpid() == self._pid:
            self._backend.close()

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_shared: Executor | None = None
_shared_lock = threading.Lock()
_atexit_registered = False


def shared_executor() -> Executor:
    """The process-wide trusted pool, started on first use and closed at interpreter exit."""
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
