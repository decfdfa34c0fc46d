"""Data types of the executor interface (shared by every tier and backend)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from .provenance import is_generated

STATUSES = ("ok", "error", "timeout", "limit", "crash")


@dataclass(frozen=True)
class Limits:
    """Resource limits for executed programs, enforced from outside the program."""

    call_timeout_s: float = field(default=1.0, metadata={
        "help": "CPU seconds one call may use (in-process timer, backed from outside by the kernel's CPU clock)."})
    job_timeout_s: float = field(default=10.0, metadata={"help": "Wall-clock seconds for all calls of one job."})
    memory_mb: int = field(default=1024, metadata={"help": "Address-space limit of a worker process (MiB)."})
    output_bytes: int = field(default=1 << 20, metadata={"help": "Largest JSON reply accepted from one job."})

    def __post_init__(self) -> None:
        for name in ("call_timeout_s", "job_timeout_s", "memory_mb", "output_bytes"):
            if getattr(self, name) <= 0:
                raise ValueError(f"Limits.{name} must be positive, got {getattr(self, name)!r}")


@dataclass(frozen=True)
class Job:
    """One program and the keyword-argument sets to call its entry point with.

    ``source`` decides the tier (:mod:`cf_tasks.executor.provenance`): a
    :class:`~cf_tasks.executor.provenance.GeneratedSource` may run in the trusted pool, a
    plain ``str`` always runs isolated. ``timeout_s`` lowers the job's wall-clock limit below
    ``Limits.job_timeout_s`` (callers that share a budget over many jobs use it).
    """

    source: str
    entry_point: str
    calls: tuple[Mapping[str, Any], ...]
    timeout_s: float | None = None

    @property
    def trusted(self) -> bool:
        return is_generated(self.source)


@dataclass(frozen=True)
class CallResult:
    """Outcome of one call. ``value`` is the JSON-decoded return value when ``status == "ok"``."""

    status: str
    value: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class JobResult:
    """All calls of one job, and the wall-clock seconds the job ran (measured by the isolated
    tier's server; ``None`` in the trusted tier, whose workers run jobs back to back)."""

    calls: list[CallResult]
    wall_s: float | None = None
