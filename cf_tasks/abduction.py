"""Solving program records by execution: abduction, intervention, prediction.

The counterfactual answer is computed the only way that cannot drift from the program: run
``f(x, r)`` and ``f(x', r)`` for every latent assignment ``r`` (``itertools.product`` over the
domains in record order), keep the assignments whose observed run reproduces the observed
output, and collect their outputs at the intervened inputs.

Records and documents are untrusted: their programs run in the isolated executor tier (the
job source is always a plain ``str``, whatever the record held), streamed through it in
batches (:func:`solve_stream`), so memory stays O(batch) for any file. Failure is never
silent: the only run outcome that is evidence is a program that *raised* at the observed
inputs, which proves that assignment did not produce the observation; anything else that
is not a returned answer value (a timeout, a crash, a limit, a list, a huge int, a raise at
the intervened inputs of an assignment the answer needs) makes the record an error, never a
smaller set. Budgets (:class:`SolveLimits`) bound each record and each file.

``run_grids`` is the generator's path (its programs are ``GeneratedSource`` and run in the
trusted pool). Used by ``cf-tasks solve``, the lm-eval ``records:`` loader and the
``cf_oracle`` / ``cf_no_abduction`` reference models (:func:`solve_documents`).
"""

from __future__ import annotations

import itertools
import json
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping, Sequence

from cf_tasks.executor.types import CallResult, Job, JobResult
from cf_tasks.records import ProgramRecord, RecordError, answer_value_problem, canonical_set

CALLS_PER_JOB = 2048
"""Calls per executor job; large latent domains are split so one reply stays small."""


@dataclass(frozen=True)
class SolveLimits:
    """Budgets of solving records by execution; each, when hit, is an error naming the record (or file)."""

    record_timeout_s: float = field(default=60.0, metadata={
        "help": "Sandbox wall-clock seconds one record may use, summed over its jobs (sleeping counts)."})
    file_timeout_s: float = field(default=3600.0, metadata={"help": "Wall-clock seconds for a whole file."})
    max_calls: int = field(default=20_000_000, metadata={
        "help": "Program calls for a whole file (2 per latent assignment of each record)."})
    max_record_bytes: int = field(default=4 << 20, metadata={
        "help": "Largest JSON size of one solved record (its answer and prior sets included)."})
    batch_calls: int = field(default=32_768, metadata={
        "help": "Most calls per executor batch (a larger single job runs alone): the memory bound."})
    calls_per_job: int = field(default=CALLS_PER_JOB, metadata={"help": "Calls per sandbox job (even)."})

    def __post_init__(self) -> None:
        for name in ("record_timeout_s", "file_timeout_s", "max_calls", "max_record_bytes", "batch_calls"):
            if not getattr(self, name) > 0:
                raise ValueError(f"SolveLimits.{name} must be positive, got {getattr(self, name)!r}")
        if self.calls_per_job < 2 or self.calls_per_job % 2:
            raise ValueError(f"SolveLimits.calls_per_job must be an even number >= 2, got {self.calls_per_job!r}")


class SolveError(RecordError):
    """A record that could not be solved; ``str()`` names where it came from (file:line or document)."""


class BudgetError(SolveError):
    """A file-level budget (``file_timeout_s``, ``max_calls``) ran out: solving stops."""


@dataclass
class Solution:
    answer: list  # sorted set (counterfactual) or the single output (interventional)
    prior_answer: list  # sorted set of outputs at the intervened inputs over the whole domain
    n_consistent: int  # assignments whose observed run reproduces the observed output
    n_assignments: int  # joint domain size
    errors: int  # assignments whose observed run raised: inconsistent with the observation
    # f(x', r) for the first consistent assignment r in domain order: what "assume one latent" answers
    one_latent_output: Any = None


@dataclass(frozen=True)
class Grid:
    """One program evaluated at two input sets for every latent assignment."""

    source: str
    entry_point: str
    latents: Mapping[str, Sequence[Any]]
    inputs: Mapping[str, Any]
    new_inputs: Mapping[str, Any]

    def assignments(self) -> list[tuple]:
        return list(itertools.product(*self.latents.values()))


@dataclass
class GridResult:
    assignments: list[tuple]
    observed: list[CallResult]  # f(inputs, r) per assignment, in order
    intervened: list[CallResult]  # f(new_inputs, r) per assignment, in order


def same_value(a: Any, b: Any) -> bool:
    """JSON-value equality that does not conflate ``True`` with ``1``."""
    return (type(a) is bool) == (type(b) is bool) and a == b


def run_grids(grids: Sequence[Grid], executor=None, calls_per_job: int = CALLS_PER_JOB) -> list[GridResult]:
    """Evaluate many grids with one executor call (the generator's path; jobs keep the grid's source type)."""
    if executor is None:
        from cf_tasks.executor import shared_executor

        executor = shared_executor()
    jobs: list[Job] = []
    spans: list[tuple[int, int, list[tuple]]] = []  # (first job, n jobs, assignments) per grid
    for grid in grids:
        names = list(grid.latents)
        assignments = grid.assignments()
        calls = [{**grid.inputs, **dict(zip(names, a))} for a in assignments]
        calls += [{**grid.new_inputs, **dict(zip(names, a))} for a in assignments]
        first = len(jobs)
        for start in range(0, len(calls), calls_per_job):
            jobs.append(Job(source=grid.source, entry_point=grid.entry_point,
                            calls=tuple(calls[start:start + calls_per_job])))
        spans.append((first, len(jobs) - first, assignments))
    results = executor.run(jobs) if jobs else []
    out = []
    for first, count, assignments in spans:
        flat: list[CallResult] = []
        for chunk in results[first:first + count]:
            flat.extend(chunk)
        k = len(assignments)
        out.append(GridResult(assignments, flat[:k], flat[k:2 * k]))
    return out


# --- streaming record solver ----------------------------------------------------------------

class _Record:
    """One record in flight: its unsent assignment chunks and what its finished runs showed."""

    def __init__(self, where: str, line: int | None, rec: ProgramRecord, limits: SolveLimits,
                 ignore_observation: bool) -> None:
        self.where, self.line, self.rec, self.limits = where, line, rec, limits
        self.ignore_observation = ignore_observation
        self.names = list(rec.latents)
        self.n_assignments = rec.domain_size
        per_job = limits.calls_per_job // 2
        product = itertools.product(*rec.latents.values())
        self.chunks = iter(lambda: list(itertools.islice(product, per_job)), [])
        self.exhausted = False
        self.held: list[tuple] | None = None  # a chunk taken but not sent (the batch was full)
        self.in_flight = 0
        self.spent_s = 0.0
        self.failure: str | None = None
        self.failure_field = "program"
        self.prior: dict = {}
        self.consistent: dict = {}
        self.prior_bytes = 0
        self.n_consistent = self.raised = 0
        self.first_consistent_value: Any = None
        self.first_raise = ""
        self.target = (tuple(rec.latent_values[n] for n in self.names)
                       if rec.variant == "interventional" else None)
        self.target_value: CallResult | None = None

    # -- scheduling --
    def next_chunk(self) -> list[tuple] | None:
        if self.failure is not None or self.exhausted:
            return None
        if self.spent_s >= self.limits.record_timeout_s:
            self.fail(self._out_of_time())
            return None
        if self.held is not None:
            chunk, self.held = self.held, None
            return chunk
        chunk = next(self.chunks, None)
        if chunk is None:
            self.exhausted = True
        return chunk

    @property
    def done(self) -> bool:
        return self.in_flight == 0 and (self.exhausted or self.failure is not None)

    def calls(self, chunk: list[tuple]) -> tuple[dict, ...]:
        obs, new = self.rec.observed_inputs, self.rec.intervened_inputs
        out: list[dict] = []
        for a in chunk:
            r = dict(zip(self.names, a))
            out += ({**obs, **r}, {**new, **r})
        return tuple(out)

    # -- folding results --
    def fail(self, message: str, field: str = "program") -> None:
        if self.failure is None:
            self.failure, self.failure_field = message, field

    def _out_of_time(self) -> str:
        return (f"used its {self.limits.record_timeout_s:g}s sandbox wall-clock budget (record_timeout_s) "
                f"before all {self.n_assignments} assignments ran")

    def absorb(self, chunk: list[tuple], result: JobResult, allotted_s: float) -> None:
        self.in_flight -= 1
        self.spent_s += result.wall_s or 0.0
        if self.failure is not None:
            return
        if result.wall_s is not None and result.wall_s >= allotted_s - 0.01 and \
                all(c.status == "timeout" for c in result.calls):
            return self.fail(self._out_of_time())
        for k, a in enumerate(chunk):
            self._fold(a, result.calls[2 * k], result.calls[2 * k + 1])
            if self.failure is not None:
                return

    def _at(self, a: tuple) -> str:
        return ", ".join(f"{n}={v!r}" for n, v in zip(self.names, a))

    def _fold(self, a: tuple, obs: CallResult, new: CallResult) -> None:
        if obs.ok:
            if self._bad_value(obs.value, a, "observed"):
                return
        elif obs.status == "error":
            self.raised += 1  # it raised: this assignment did not produce the observation
            self.first_raise = self.first_raise or f"{obs.error} (with {self._at(a)})"
        else:
            return self.fail(f"the run at the observed inputs with {self._at(a)} ended with {obs.status}: {obs.error}")
        consistent = obs.ok and same_value(obs.value, self.rec.observed_output)
        if self.target is not None and all(same_value(x, y) for x, y in zip(a, self.target)):
            if not consistent:
                got = repr(obs.value) if obs.ok else f"{obs.status} ({obs.error})"
                return self.fail(f"its latent_values ({self._at(a)}) contradict its own observation: the program "
                                 f"gives {got} at the observed inputs, not {self.rec.observed_output!r}",
                                 "latent_values")
            self.target_value = new
        if not new.ok:
            if new.status != "error" or consistent or self.target_value is new:
                return self.fail(f"the run at the intervened inputs with {self._at(a)} ended with {new.status}: "
                                 f"{new.error}")
            return  # raised for an assignment the answer does not need: not an output
        if self._bad_value(new.value, a, "intervened"):
            return
        key = (type(new.value) is bool, new.value)
        if key not in self.prior:
            self.prior[key] = new.value
            self.prior_bytes += len(json.dumps(new.value)) + 2
            if 2 * self.prior_bytes > self.limits.max_record_bytes:
                return self.fail(f"its answer sets outgrow max_record_bytes={self.limits.max_record_bytes} "
                                 f"({len(self.prior)} distinct outputs so far)")
        if consistent:
            if self.n_consistent == 0:  # chunks are folded in assignment order
                self.first_consistent_value = new.value
            self.n_consistent += 1
            self.consistent.setdefault(key, new.value)

    def _bad_value(self, value: Any, a: tuple, inputs: str) -> bool:
        """Fail the record (and say True) unless ``value`` is an answer value."""
        problem = answer_value_problem(value)
        if problem:
            self.fail(f"the program returned {problem} at the {inputs} inputs with {self._at(a)}; answers must be "
                      f"JSON scalars (int within +-(2**63 - 1), finite float, str, bool or null)")
        return problem is not None

    def outcome(self) -> Solution | SolveError:
        rec = self.rec
        if self.failure is None and self.rec.variant == "interventional" and self.target_value is None:
            self.fail("its latent_values were not among the assignments run")
        if self.failure is None and rec.variant != "interventional" and not self.ignore_observation \
                and self.n_consistent == 0:
            raised = (f"; the program raised at the observed inputs for {self.raised} of them, first "
                      f"{self.first_raise}") if self.raised else ""
            self.fail(f"no latent assignment of {self.n_assignments} is consistent with the observed output "
                      f"{rec.observed_output!r}{raised}")
        if self.failure is not None:
            return SolveError(f"record {rec.id!r}: {self.failure}", source=self.where, line=self.line,
                              field=self.failure_field)
        prior = canonical_set(self.prior.values())
        if rec.variant == "interventional":
            answer = [self.target_value.value]  # type: ignore[union-attr]
        else:
            answer = prior if self.ignore_observation else canonical_set(self.consistent.values())
        return Solution(answer=answer, prior_answer=prior, n_consistent=self.n_consistent,
                        n_assignments=self.n_assignments, errors=self.raised,
                        one_latent_output=self.first_consistent_value)


def solve_stream(records: Iterable[tuple[str, int | None, ProgramRecord]], executor=None, *,
                 limits: SolveLimits = SolveLimits(), ignore_observation: bool = False
                 ) -> Iterator[tuple[int | None, ProgramRecord, Solution | SolveError]]:
    """Solve ``(source, line, record)`` triples through the executor; yields ``(line, record,
    Solution or SolveError)`` in input order.

    Records stream through batches of at most ``limits.batch_calls`` calls, so a file of any
    size needs memory for one batch. A record's jobs share its ``record_timeout_s``; a record
    that fails stops being run. ``max_calls`` and ``file_timeout_s`` raise :class:`BudgetError`.
    ``ignore_observation=True`` answers counterfactual records with the prior set (what a
    solver that skips abduction says).
    """
    if executor is None:
        from cf_tasks.executor import shared_executor

        executor = shared_executor()
    start = time.monotonic()
    pending = iter(records)
    window: deque[_Record] = deque()
    calls_total = 0
    more = True
    while more or window:
        batch: list[tuple[_Record, list[tuple]]] = []
        n_calls = 0

        def take(state: _Record) -> bool:
            """Add the record's chunks to the batch; False once the batch is full."""
            nonlocal n_calls
            while True:
                chunk = state.next_chunk()
                if chunk is None:
                    return True
                if batch and n_calls + 2 * len(chunk) > limits.batch_calls:
                    state.held = chunk  # next batch
                    return False
                state.in_flight += 1
                batch.append((state, chunk))
                n_calls += 2 * len(chunk)

        full = not all(take(state) for state in window)
        while more and not full:
            item = next(pending, None)
            if item is None:
                more = False
                break
            where, line, rec = item
            calls_total += 2 * rec.domain_size
            if calls_total > limits.max_calls:
                raise BudgetError(f"record {rec.id!r} brings the file to {calls_total} program calls, over "
                                  f"max_calls={limits.max_calls}", source=where, line=line)
            state = _Record(where, line, rec, limits, ignore_observation)
            window.append(state)
            full = not take(state)
        if batch:
            if time.monotonic() - start > limits.file_timeout_s:
                first = batch[0][0]
                raise BudgetError(f"the file used its {limits.file_timeout_s:g}s wall-clock budget "
                                  f"(file_timeout_s) before this record", source=first.where, line=first.line)
            _run_batch(batch, executor, limits)
        while window and window[0].done:
            state = window.popleft()
            yield state.line, state.rec, state.outcome()


def _run_batch(batch: list[tuple["_Record", list[tuple]]], executor, limits: SolveLimits) -> None:
    shares: dict[int, int] = {}
    for state, _ in batch:
        shares[id(state)] = shares.get(id(state), 0) + 1
    jobs, allotted = [], []
    for state, chunk in batch:
        remaining = max(0.0, limits.record_timeout_s - state.spent_s)
        allotted.append(remaining / shares[id(state)])
        # str(): a record's program is untrusted whatever type it arrived as -> isolated tier
        jobs.append(Job(str(state.rec.program), state.rec.entry_point, state.calls(chunk), timeout_s=allotted[-1]))
    for (state, chunk), result, share in zip(batch, executor.run_jobs(jobs), allotted):
        state.absorb(chunk, result, share)


def _records_of(items: Iterable[ProgramRecord | Mapping[str, Any]], source: str
                ) -> Iterator[tuple[str, int | None, ProgramRecord]]:
    for i, item in enumerate(items):
        if isinstance(item, ProgramRecord):
            yield source, None, item
        else:
            where = f"doc {item.get('id')!r}" if isinstance(item, Mapping) and "id" in item else f"{source} #{i}"
            yield where, None, ProgramRecord.from_json(item, source=where)


def solve_records(records: Sequence[ProgramRecord | Mapping[str, Any]], executor=None, *,
                  ignore_observation: bool = False, limits: SolveLimits = SolveLimits()) -> list[Solution]:
    """Solve many records (or documents); raises the first record's :class:`SolveError`."""
    out = []
    for _, _, outcome in solve_stream(_records_of(records, "<records>"), executor, limits=limits,
                                   ignore_observation=ignore_observation):
        if isinstance(outcome, SolveError):
            raise outcome
        out.append(outcome)
    return out


def solve_doc(doc: ProgramRecord | Mapping[str, Any], executor=None, *, ignore_observation: bool = False) -> Solution:
    """Solve one record (a generated item or a user record) in the isolated tier."""
    return solve_records([doc], executor, ignore_observation=ignore_observation)[0]


def solve_documents(docs: Sequence[Mapping[str, Any]], *, ignore_observation: bool = False, executor=None,
                    limits: SolveLimits = SolveLimits()) -> list[Solution]:
    """Solve task documents (lm-eval ``Instance.doc``) by execution, never trusting their programs.

    The one entry point of the reference solvers (``cf_oracle``, ``cf_no_abduction``) and
    of baselines that need the gold structure of a document: whatever a document says, its
    program runs in the isolated tier. Errors name the document's id.
    """
    return solve_records(list(docs), executor, ignore_observation=ignore_observation, limits=limits)
