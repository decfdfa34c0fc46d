"""Solving program records by execution: abduction, intervention, prediction.

The counterfactual answer is computed the only way that cannot drift from the
program: run ``f(x, r)`` and ``f(x', r)`` for every latent assignment ``r``
(``itertools.product`` over the domains in record order), keep the assignments
whose observed run reproduces the observed output, and collect their outputs
at the intervened inputs. Programs run in the executor's worker processes,
never here; many records share one batched executor call.

Used by the generation pipeline, by ``cf-tasks solve`` for user records and by
the ``cf_oracle`` / ``cf_no_abduction`` reference models.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from cf_tasks.executor.types import CallResult, Job
from cf_tasks.records import ProgramRecord, canonical_set

CALLS_PER_JOB = 2048
"""Calls per executor job; large latent domains are split so one reply stays small."""


@dataclass
class Solution:
    answer: list  # sorted set (counterfactual) or the single output (interventional)
    prior_answer: list  # sorted set of outputs at the intervened inputs over the whole domain
    n_consistent: int  # assignments whose observed run reproduces the observed output
    n_assignments: int  # joint domain size
    errors: int  # assignments excluded because a run failed (error, timeout, limit, crash)
    # f(x', r) of each consistent assignment r, in assignment order (not de-duplicated)
    consistent_outputs: list = field(default_factory=list)


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
    """Evaluate many grids with one executor call (jobs are chunked by ``calls_per_job``)."""
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


def _as_record(rec: ProgramRecord | Mapping[str, Any]) -> ProgramRecord:
    return rec if isinstance(rec, ProgramRecord) else ProgramRecord.from_json(rec)


def _solve_one(rec: ProgramRecord, res: GridResult, ignore_observation: bool) -> Solution:
    errors = 0
    first_failure: CallResult | None = None
    consistent_outputs, prior_outputs = [], []
    n_consistent = 0
    for obs, new in zip(res.observed, res.intervened):
        if not (obs.ok and new.ok):
            errors += 1
            first_failure = first_failure or (new if obs.ok else obs)
            continue
        prior_outputs.append(new.value)
        if same_value(obs.value, rec.observed_output):
            n_consistent += 1
            consistent_outputs.append(new.value)
    prior = canonical_set(prior_outputs)
    if rec.variant == "interventional":
        names = list(rec.latents)
        target = tuple(rec.latent_values[n] for n in names)
        idx = res.assignments.index(target)
        new = res.intervened[idx]
        if not new.ok:
            raise ValueError(f"record {rec.id!r}: the program fails at the intervened inputs with the given "
                             f"latent_values ({new.status}: {new.error})")
        answer = [new.value]
    elif ignore_observation:
        answer = prior
    else:
        if n_consistent == 0:
            failed = (f"; {errors} of {len(res.assignments)} assignments failed to run, the first with "
                      f"{first_failure.status}: {first_failure.error}") if first_failure else ""
            raise ValueError(f"record {rec.id!r}: no latent assignment is consistent with the observed output "
                             f"{rec.observed_output!r}{failed}")
        answer = canonical_set(consistent_outputs)
    return Solution(answer=answer, prior_answer=prior, n_consistent=n_consistent,
                    n_assignments=len(res.assignments), errors=errors, consistent_outputs=consistent_outputs)


def solve_records(records: Sequence[ProgramRecord | Mapping[str, Any]], executor=None, *,
                  ignore_observation: bool = False) -> list[Solution]:
    """Solve many records with one batched executor call.

    ``ignore_observation=True`` answers a counterfactual record with the prior set
    (every assignment), which is what a solver that skips abduction would say;
    interventional records are unchanged because their latents are given.
    """
    recs = [_as_record(r) for r in records]
    grids = [Grid(r.program, r.entry_point, r.latents, r.observed_inputs, r.intervened_inputs) for r in recs]
    results = run_grids(grids, executor)
    return [_solve_one(rec, res, ignore_observation) for rec, res in zip(recs, results)]


def solve_doc(doc: ProgramRecord | Mapping[str, Any], executor=None, *, ignore_observation: bool = False) -> Solution:
    """Solve one record (a generated item or a user record)."""
    return solve_records([doc], executor, ignore_observation=ignore_observation)[0]
