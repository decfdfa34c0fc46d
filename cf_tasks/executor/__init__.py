"""Run programs outside the calling process, with limits enforced from outside.

``Executor`` (trusted worker pool or, with ``untrusted=True``, an isolated fork-per-job
sandbox) and ``shared_executor()`` (a process-wide trusted pool). See ``docs/executor.md``.
"""

from .executor import Executor, shared_executor
from .types import STATUSES, CallResult, Job, Limits

__all__ = ["Executor", "shared_executor", "Job", "CallResult", "Limits", "STATUSES"]
