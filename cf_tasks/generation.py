"""The generation pipeline for code families: propose, execute, filter, emit.

For item ``i`` the RNG is ``item_rng(family, version, seed, i)``. Each attempt
draws a program (:meth:`CodeFamily.generate_program`), a query
(:meth:`CodeFamily.sample_query`) and the true latent assignment ``r*``; the
observed output is ``f(x, r*)`` as computed by the executor. Gold answers come
only from executing ``f(x, r)`` and ``f(x', r)`` for every assignment ``r``,
never from the generator's own arithmetic.

Throughput comes from batching: in every round each pending item proposes one
candidate and all candidates run in one executor call. Determinism and the
prefix property (item ``i`` does not depend on ``n``) come from *deciding* in
index order: an item's candidates are consumed strictly in the order its own
RNG produced them, and the duplicate filter compares only with items of lower
index. The report's counts are therefore identical to a one-at-a-time run.

Quality filters (``report["rejected"][name]``):

``error``
    some run raised, timed out, hit a limit or returned a non-integer.
``unbounded``
    some output exceeds ``config.max_abs_value`` in magnitude.
``no_consistent``
    no assignment reproduces the observation (cannot happen while the
    observation is a real run; kept as a guard).
``abduction_unnecessary``
    the counterfactual set equals the prior set over the whole domain, so an
    answer that ignores the observation would be right.
``duplicate``
    same normalised program and query as an earlier item.
"""

from __future__ import annotations

import itertools
import logging
import re
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from cf_tasks.abduction import Grid, run_grids
from cf_tasks.executor.provenance import generated_source
from cf_tasks.executor.types import Job
from cf_tasks.families.base import CodeFamily, FamilyConfig, GenerationResult, Program
from cf_tasks.prompts import PROMPT_VERSION, build_prompt
from cf_tasks.records import VARIANTS, ProgramRecord, canonical_set
from cf_tasks.seeding import item_rng

logger = logging.getLogger(__name__)

FILTERS = ("error", "unbounded", "no_consistent", "abduction_unnecessary", "duplicate")
DEFAULT_WINDOW = 512
"""Items proposing candidates concurrently; one executor call runs one candidate per pending item."""


PIPELINE_DEPTH = 2
"""Executor batches in flight: one executes while the next is composed."""
DEFAULT_PROGRAMS_PER_JOB = 32
"""Candidates packed into one executor job (see :func:`run_candidates`)."""


class GenerationError(RuntimeError):
    """An item could not be generated within ``config.max_attempts`` candidates."""


@dataclass
class Candidate:
    program: Program
    inputs: dict[str, Any]
    intervention: dict[str, Any]
    true_index: int  # index of r* in the assignment order
    reject: str | None = None  # filter name, or None if it passed the execution filters
    observed_output: Any = None
    answer: list = field(default_factory=list)
    prior: list = field(default_factory=list)
    n_consistent: int = 0
    assignments: list = field(default_factory=list)
    intervened_values: list = field(default_factory=list)


@dataclass
class _ItemState:
    index: int
    rng: Any
    drawn: int = 0
    in_flight: bool = False  # a drawn candidate is still being executed
    buffer: deque = field(default_factory=deque)  # evaluated candidates, in draw order

    def waiting_for_candidate(self) -> bool:
        """True unless a candidate that passed the execution filters is already buffered."""
        return all(c.reject is not None for c in self.buffer)


_WS = re.compile(r"\s+")


def dedup_key(program: Program, inputs: dict, intervention: dict, observed_output: Any) -> tuple:
    """Normalised program and query: the entry-point name is canonicalised and whitespace collapsed."""
    text = program.source.replace(program.entry_point, "f")
    text = _WS.sub(" ", text).strip()
    return (text, tuple(sorted(inputs.items())), tuple(sorted(intervention.items())), observed_output)


def propose(family: CodeFamily, rng, config: FamilyConfig) -> Candidate:
    """One candidate from the item's RNG: program, query and the true assignment ``r*``."""
    program = family.generate_program(rng, config)
    inputs, intervention = family.sample_query(rng, program, config)
    n_assignments = 1
    for dom in program.latents.values():
        n_assignments *= len(dom)
    true_index = rng.randrange(n_assignments)
    return Candidate(program, dict(inputs), dict(intervention), true_index)


def evaluate(cand: Candidate, observed: list | None, intervened: list | None, max_abs_value: int) -> None:
    """Apply the execution filters to a candidate's outputs and fill in its answers.

    ``observed[k]`` / ``intervened[k]`` are ``f(x, r_k)`` / ``f(x', r_k)`` for the
    k-th assignment; ``None`` means some run failed (error, timeout, limit, crash).
    """
    if observed is None or intervened is None or not all(type(v) is int for v in observed) \
            or not all(type(v) is int for v in intervened):
        cand.reject = "error"
        return
    if max(map(abs, observed)) > max_abs_value or max(map(abs, intervened)) > max_abs_value:
        cand.reject = "unbounded"
        return
    y = observed[cand.true_index]
    consistent = [v for o, v in zip(observed, intervened) if o == y]
    cand.observed_output = y
    cand.n_consistent = len(consistent)
    cand.intervened_values = intervened
    if not consistent:
        cand.reject = "no_consistent"
        return
    cand.answer = canonical_set(consistent)
    cand.prior = canonical_set(intervened)
    if cand.answer == cand.prior:
        cand.reject = "abduction_unnecessary"


# Runs one candidate's whole grid inside the worker: f(x, r) then f(x', r) for every
# assignment r in itertools.product order (the order the parent enumerates).
_HARNESS = """
def _cf_grid(k, names, domains, inputs, new_inputs):
    import itertools
    fn = _cf_fns[k]
    rows = [dict(zip(names, a)) for a in itertools.product(*domains)]
    return [fn(**inputs, **r) for r in rows] + [fn(**new_inputs, **r) for r in rows]
"""


def _grid_call(k: int, cand: Candidate) -> dict:
    return {"k": k, "names": list(cand.program.latents), "domains": [list(d) for d in cand.program.latents.values()],
            "inputs": cand.inputs, "new_inputs": {**cand.inputs, **cand.intervention}}


def run_candidates(cands: list[Candidate], executor, programs_per_job: int) -> list[tuple[list | None, list | None]]:
    """Execute every candidate at every assignment; returns ``(observed, intervened)`` value lists.

    ``programs_per_job <= 1``: one job per candidate with one executor call per run
    (per-run statuses; the shape :mod:`cf_tasks.abduction` uses for user records).
    Otherwise candidates are packed ``programs_per_job`` to a job: the module is the
    candidates' sources verbatim, each followed by a line that records its function
    (so equal ``generated_func_NNNN`` names cannot shadow each other), and one call per
    candidate runs its whole grid. Any failing run then fails the candidate's call,
    which is exactly what the ``error`` filter needs, and per-call overheads (timers,
    framing, JSON) are paid once per candidate instead of once per run.
    """
    for cand in cands:
        cand.assignments = list(itertools.product(*cand.program.latents.values()))
    if programs_per_job <= 1:
        grids = [Grid(generated_source(c.program.source), c.program.entry_point, c.program.latents, c.inputs,
                      {**c.inputs, **c.intervention}) for c in cands]
        out = []
        for res in run_grids(grids, executor):
            if all(r.ok for r in res.observed) and all(r.ok for r in res.intervened):
                out.append(([r.value for r in res.observed], [r.value for r in res.intervened]))
            else:
                out.append((None, None))
        return out
    jobs = []
    for start in range(0, len(cands), programs_per_job):
        group = cands[start:start + programs_per_job]
        parts = ["_cf_fns = []"]
        calls = []
        for k, cand in enumerate(group):
            parts.append(cand.program.source)
            parts.append(f"_cf_fns.append({cand.program.entry_point})")
            calls.append(_grid_call(k, cand))
        parts.append(_HARNESS)
        jobs.append(Job(source=generated_source("\n".join(parts)), entry_point="_cf_grid", calls=tuple(calls)))
    out = []
    for cand_results in executor.run(jobs):
        for cand, res in zip(cands[len(out):], cand_results):
            k = len(cand.assignments)
            if res.ok and isinstance(res.value, list) and len(res.value) == 2 * k:
                out.append((res.value[:k], res.value[k:]))
            else:
                out.append((None, None))
    return out


def build_item(family: CodeFamily, cand: Candidate, *, variant: str, seed: int, index: int,
               config: dict, level: str | None) -> dict:
    """The JSON item: a program record plus provenance, display code and prompt."""
    names = list(cand.program.latents)
    true_assignment = cand.assignments[cand.true_index]
    if variant == "interventional":
        latent_values = dict(zip(names, true_assignment))
        answer = [cand.intervened_values[cand.true_index]]
    else:
        latent_values, answer = None, cand.answer
    record = ProgramRecord(
        id=f"{family.name}-{seed}-{index}",
        program=cand.program.source,
        entry_point=cand.program.entry_point,
        latents={k: tuple(v) for k, v in cand.program.latents.items()},
        observed_inputs=cand.inputs,
        observed_output=cand.observed_output,
        intervention=cand.intervention,
        variant=variant,
        latent_values=latent_values,
        answer=answer,
    )
    row = record.to_json()
    row.update(
        family=family.name,
        level=level,
        seed=seed,
        index=index,
        generator_version=family.version,
        prompt_version=PROMPT_VERSION,
        config=dict(config),
        display_program=cand.program.display_source,
        prior_answer=cand.prior,
        n_consistent=cand.n_consistent,
        n_assignments=len(cand.assignments),
    )
    row["prompt"] = build_prompt(row)
    return row


def generate_code_items(family: CodeFamily, *, variant: str, n: int, seed: int, config: FamilyConfig,
                        level: str | None = None, executor=None, progress: bool = False,
                        window: int = DEFAULT_WINDOW,
                        programs_per_job: int = DEFAULT_PROGRAMS_PER_JOB) -> GenerationResult:
    """Generate ``n`` verified items of ``family`` (see the module docstring).

    The interventional split runs exactly the counterfactual pipeline (same
    candidates, same filters) and reveals ``r*``, so item ``i`` of both splits
    shares its program and query. ``window`` (items proposing candidates at once)
    and ``programs_per_job`` (see :func:`run_candidates`) trade memory and
    latency for throughput; they never change the output.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n!r}")
    if window <= 0:
        raise ValueError(f"window must be positive, got {window!r}")
    if not isinstance(config, family.config_cls):
        raise ValueError(f"config must be a {family.config_cls.__name__} for family {family.name!r}, "
                         f"got {type(config).__name__}")
    config.validate()
    seed = int(seed)
    if executor is None and n > 0:
        from cf_tasks.executor import shared_executor

        executor = shared_executor()

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc=f"generate {family.name}", unit="item")

    rejected = dict.fromkeys(FILTERS, 0)
    items: list[dict] = []
    keys: set = set()
    states: dict[int, _ItemState] = {}
    next_new = 0  # lowest index without a state yet
    rounds = runs = 0
    t_propose = t_execute = t_decide = 0.0
    config_dict = config.to_dict()
    batch_cap = max(1, window // PIPELINE_DEPTH)
    inflight: deque = deque()
    runner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cf-generate")
    start = time.perf_counter()
    try:
        while len(items) < n:
            while next_new < n and next_new < len(items) + window:
                states[next_new] = _ItemState(next_new, item_rng(family.name, family.version, seed, next_new))
                next_new += 1
            # Propose for items that need a candidate and have none executing; the batch
            # runs in the background while the next one is composed (double buffering).
            t0 = time.perf_counter()
            batch: list[tuple[_ItemState, Candidate]] = []
            for idx in sorted(states):
                st = states[idx]
                if len(batch) >= batch_cap:
                    break
                if not st.in_flight and st.waiting_for_candidate() and st.drawn < config.max_attempts:
                    st.drawn += 1
                    st.in_flight = True
                    batch.append((st, propose(family, st.rng, config)))
            if batch:
                inflight.append((batch, runner.submit(run_candidates, [c for _, c in batch], executor,
                                                      programs_per_job)))
                rounds += 1
            t1 = time.perf_counter()
            t_propose += t1 - t0
            if inflight and (len(inflight) >= PIPELINE_DEPTH or not batch):
                done, future = inflight.popleft()
                outputs = future.result()
                for (st, cand), (observed, intervened) in zip(done, outputs):
                    runs += 2 * len(cand.assignments)
                    evaluate(cand, observed, intervened, config.max_abs_value)
                    st.buffer.append(cand)
                    st.in_flight = False
            t2 = time.perf_counter()
            t_execute += t2 - t1
            # Decide in index order, consuming each item's candidates in draw order.
            while len(items) < n and len(items) in states:
                st = states[len(items)]
                accepted = None
                while st.buffer:
                    cand = st.buffer.popleft()
                    if cand.reject is not None:
                        rejected[cand.reject] += 1
                        continue
                    key = dedup_key(cand.program, cand.inputs, cand.intervention, cand.observed_output)
                    if key in keys:
                        rejected["duplicate"] += 1
                        continue
                    keys.add(key)
                    accepted = cand
                    break
                if accepted is None:
                    if st.drawn >= config.max_attempts and not st.in_flight:
                        raise GenerationError(
                            f"family {family.name!r}: item {st.index} (seed {seed}) found no acceptable program in "
                            f"{config.max_attempts} attempts (max_attempts); rejections so far: {rejected}. "
                            "Widen the config's ranges or raise max_attempts.")
                    break
                items.append(build_item(family, accepted, variant=variant, seed=seed, index=st.index,
                                        config=config_dict, level=level))
                del states[st.index]
                if bar is not None:
                    bar.update(1)
            t_decide += time.perf_counter() - t2
    finally:
        runner.shutdown(wait=True, cancel_futures=True)
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - start
    attempts = len(items) + sum(rejected.values())
    report = {
        "family": family.name,
        "variant": variant,
        "level": level,
        "seed": seed,
        "n": n,
        "generator_version": family.version,
        "accepted": len(items),
        "attempts": attempts,
        "rejected": rejected,
        "acceptance_rate": (len(items) / attempts) if attempts else None,
        "executor_rounds": rounds,
        "program_runs": runs,
        "seconds": seconds,
        # where the wall time went: composing candidates, waiting for the executor (incl.
        # job encoding and filters), and deciding + building items (prompts, records)
        "seconds_by_stage": {"propose": t_propose, "execute": t_execute, "decide_and_build": t_decide},
        "items_per_s": (len(items) / seconds) if seconds > 0 else None,
    }
    logger.info("generated %d %s items in %.2fs (%d attempts, rejected %s)", len(items), family.name, seconds,
                attempts, rejected)
    return GenerationResult(items=items, report=report)
