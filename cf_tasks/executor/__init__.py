"""Run programs outside the calling process, with limits enforced from outside.

``Executor`` routes every job by provenance: programs generated in this process
(:func:`generated_source`) run in a trusted worker pool, everything else in an isolated
fork-per-job sandbox; ``Executor(untrusted=True)`` isolates everything. ``shared_executor()``
is the process-wide routing executor. See ``docs/executor.md``.
"""

from .executor import Executor, shared_executor
from .provenance import GeneratedSource, generated_source, is_generated
from .types import STATUSES, CallResult, Job, JobResult, Limits

__all__ = ["Executor", "shared_executor", "Job", "JobResult", "CallResult", "Limits", "STATUSES",
           "GeneratedSource", "generated_source", "is_generated"]
