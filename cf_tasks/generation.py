"""The generation pipeline for code families: propose, tabulate, query, filter, emit.

For item ``i`` the RNG is ``item_rng(family, version, seed, i, level=..., config=...)``
(every knob and the level are part of the key). Its first draw decides whether
the item needs a multi-valued gold set (``multi_gold_prob``). Each attempt then
draws a program (:meth:`CodeFamily.generate_program`) and a few input rows
(:meth:`CodeFamily.sample_rows`); the executor tabulates ``f(row, r)`` for every
row and every latent assignment ``r``. Queries are drawn from that table: an
observed row ``x``, an intervened row ``x'`` and the true assignment ``r*``; the
observed output is ``f(x, r*)`` as executed. Gold answers come only from the
executed table, never from the generator's own arithmetic. The first query that
passes every filter makes the item; a program none of whose
``queries_per_program`` queries passes is dropped (``exhausted_programs``).

Why a table: the shortcut filters below reject most random queries of a
program that can still make a good item (a multi-valued gold set needs ``x``
and ``x'`` on different branches for the same observation). Tabulating a few
rows once and drawing many queries from the table finds those items at the
cost of one execution instead of one per query.

Throughput comes from batching: in every round each pending item proposes one
program and all of them run in one executor call. Determinism and the prefix
property (item ``i`` does not depend on ``n``) come from drawing each item's
candidates and queries strictly in its own order and *deciding* in index order:
the duplicate filter compares only with items of lower index. The report's
counts are therefore identical to a one-at-a-time run.

Filters (``report["rejected"][name]``); ``error`` counts programs, the others queries:

``error``
    some tabulated run raised, timed out, hit a limit or returned a non-integer.
``midrun_bound``
    a run the item would show (any latent at ``x`` or ``x'``) assigned a
    variable a value above ``max_midrun_abs`` in magnitude.
``unbounded``
    an output the item would show exceeds ``max_abs_value`` in magnitude.
``no_consistent``
    no assignment reproduces the observation (a guard: the observation is a real run).
``too_few_consistent``
    fewer than ``min_consistent`` assignments reproduce the observation.
``abduction_unnecessary``
    the counterfactual set equals the prior set over the whole domain, so an
    answer that ignores the observation would be right.
``echo``
    (``reject_echo``) the gold set is exactly ``{observed output}``.
``gold_too_small``
    the gold set has fewer values than the item needs (``min_gold_size``, or 2
    for items drawn to need a multi-valued answer).
``duplicate``
    the accepted query repeats an earlier item's program and query; the
    program is dropped.
"""

from __future__ import annotations

import functools
import logging
import re
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import product
from typing import Any, Sequence

from cf_tasks.executor.provenance import generated_source
from cf_tasks.executor.types import Job
from cf_tasks.families.types import PIPELINE_DEFAULTS, GenerationError, GenerationResult, Program
from cf_tasks.progress import progress_bar
from cf_tasks.prompts import PROMPT_VERSION, build_prompt
from cf_tasks.records import VARIANTS, ProgramRecord
from cf_tasks.seeding import config_fingerprint, item_rng

logger = logging.getLogger(__name__)

__all__ = ["generate_code_items", "GenerationError", "FILTERS", "pipeline_knobs"]

FILTERS = ("error", "midrun_bound", "unbounded", "no_consistent", "too_few_consistent", "abduction_unnecessary",
           "echo", "gold_too_small", "duplicate")
PIPELINE_KNOBS = ("min_gold_size", "multi_gold_prob", "min_consistent", "reject_echo", "max_midrun_abs",
                  "query_inputs", "queries_per_program")
DEFAULT_WINDOW = 512
"""Items proposing candidates concurrently; one executor call runs one candidate per pending item."""
PIPELINE_DEPTH = 2
"""Executor batches in flight: one executes while the next is composed."""
DEFAULT_PROGRAMS_PER_JOB = 32
"""Candidates packed into one executor job (see :func:`run_tables`)."""


def pipeline_knobs(config: Any) -> dict[str, Any]:
    """The pipeline knobs of a config; a config that does not declare one gets its default."""
    return {name: getattr(config, name, getattr(PIPELINE_DEFAULTS, name)) for name in PIPELINE_KNOBS}


@dataclass
class Query:
    """One accepted query of a candidate's table."""

    obs_row: int
    new_row: int
    true_index: int
    observed_output: int
    answer: list
    prior: list
    n_consistent: int


@dataclass
class Candidate:
    program: Program
    rows: list[dict]  # input rows tabulated
    pairs: Sequence[tuple[int, int]]  # (observed row, intervened row) pairs that differ in exactly one input
    assignments: list[tuple]  # latent assignments in itertools.product order
    reject: str | None = None  # program-level filter, "exhausted", or None once a query passed
    query: Query | None = None
    table: list[list] | None = None  # kept while the candidate has an accepted query
    rejections: dict[str, int] = field(default_factory=dict)  # query-level filter counts


@dataclass
class _ItemState:
    index: int
    rng: Any
    need: int  # smallest gold-set size this item accepts
    drawn: int = 0
    in_flight: bool = False  # a drawn candidate is still being executed
    buffer: deque = field(default_factory=deque)  # evaluated candidates, in draw order

    def waiting_for_candidate(self) -> bool:
        """True unless a candidate with an accepted query is already buffered."""
        for cand in self.buffer:
            if cand.reject is None:
                return False
        return True


_WS = re.compile(r"\s+")


def dedup_key(program: Program, inputs: dict, intervention: dict, observed_output: Any) -> tuple:
    """Normalised program and query: the entry-point name is canonicalised and whitespace collapsed."""
    text = program.source.replace(program.entry_point, "f")
    text = _WS.sub(" ", text).strip()
    return (text, tuple(sorted(inputs.items())), tuple(sorted(intervention.items())), observed_output)


@functools.lru_cache(maxsize=64)
def _all_pairs(n: int) -> tuple[tuple[int, int], ...]:
    return tuple((i, j) for i in range(n) for j in range(n) if i != j)


def _one_input_pairs(rows: list[dict]) -> list[tuple[int, int]] | tuple[tuple[int, int], ...]:
    """Ordered pairs of rows that differ in exactly one input (an intervention on one variable)."""
    if rows and len(rows[0]) == 1 and len({next(iter(r.values())) for r in rows}) == len(rows):
        return _all_pairs(len(rows))  # distinct values of the only input: every ordered pair
    return [(i, j) for i in range(len(rows)) for j in range(len(rows))
            if sum(rows[i][k] != rows[j][k] for k in rows[i]) == 1]


def propose(family, rng, config, k: int) -> Candidate:
    """One candidate from the item's RNG: a program and the input rows to tabulate it at."""
    program = family.generate_program(rng, config)
    rows = family.sample_rows(rng, program, k)
    return Candidate(program, rows, _one_input_pairs(rows), list(product(*program.latents.values())))


# -- execution -----------------------------------------------------------------------------
_ASSIGNMENT = re.compile(r"^(\s+[A-Za-z_]\w* = )(?!=)([^\n#]*)$", re.MULTILINE)
_MIDRUN = "_cf_midrun"


def checked_source(program: Program, max_midrun_abs: int | None) -> str:
    """The program as run during generation: the value of each ``name = expr`` line passes a bound check.

    ``name = expr`` becomes ``name = _cf_check(expr)``, which returns the value
    unchanged or raises ``_CfMidrun`` when it leaves ``[-max_midrun_abs,
    max_midrun_abs]``, so every value a run returns is the clean program's (the
    item records ``program.source``; the oracle and the tests re-run that).
    Wrapping the expression, rather than adding a statement, keeps ``compile()``,
    the workers' largest cost, almost as cheap as for the clean program. Only
    single-line assignments without comments are checked: the built-in composers
    emit nothing else.
    """
    if max_midrun_abs is None:
        return program.source
    return _ASSIGNMENT.sub(r"\1_cf_check(\2)", program.source)


# Runs one candidate's whole table inside the worker: rows x assignments in
# itertools.product order (the order the parent enumerates); a run that broke the
# mid-run bound gives the marker instead of a value.
_HARNESS = f"""
def _cf_table(k, names, domains, rows):
    import itertools
    fn = _cf_fns[k]
    assignments = [dict(zip(names, a)) for a in itertools.product(*domains)]
    table = []
    for row in rows:
        values = []
        for r in assignments:
            try:
                values.append(fn(**row, **r))
            except _CfMidrun:
                values.append({_MIDRUN!r})
        table.append(values)
    return table


def _cf_run(**kwargs):
    try:
        return _cf_fns[0](**kwargs)
    except _CfMidrun:
        return {_MIDRUN!r}
"""
_PRELUDE = """class _CfMidrun(Exception):
    pass


def _cf_check(value, bound={bound}):
    if -bound <= value <= bound:
        return value
    raise _CfMidrun()


_cf_fns = []"""


def _module(cands: list[Candidate], max_midrun_abs: int | None) -> str:
    """One job module: the candidates' checked sources, each followed by a line recording its function."""
    parts = [_PRELUDE.format(bound=int(max_midrun_abs or 0))]
    for cand in cands:
        parts.append(checked_source(cand.program, max_midrun_abs))
        parts.append(f"_cf_fns.append({cand.program.entry_point})")  # equal names cannot shadow each other
    parts.append(_HARNESS)
    return "\n".join(parts)


def run_tables(cands: list[Candidate], executor, programs_per_job: int,
               max_midrun_abs: int | None) -> list[list[list] | None]:
    """Execute every candidate at every row and assignment; ``table[row][assignment]`` per candidate.

    A failed run (error, timeout, limit, crash) makes the whole table ``None``;
    a run that broke the mid-run bound is the string ``"_cf_midrun"``. With
    ``programs_per_job <= 1`` each candidate is one job with one executor call per
    run (the naive baseline); otherwise candidates are packed ``programs_per_job``
    to a job and one call per candidate runs its table, so per-call overheads
    (timers, framing, JSON) are paid once per candidate instead of once per run.
    This is the only place generation builds jobs and calls the executor.
    """
    if programs_per_job <= 1:
        jobs = [Job(source=generated_source(_module([c], max_midrun_abs)), entry_point="_cf_run",
                    calls=tuple({**row, **dict(zip(c.program.latents, a))} for row in c.rows for a in c.assignments))
                for c in cands]
        tables: list[list[list] | None] = []
        for cand, results in zip(cands, executor.run(jobs)):
            if not all(r.ok for r in results):
                tables.append(None)
                continue
            k = len(cand.assignments)
            values = [r.value for r in results]
            tables.append([values[start:start + k] for start in range(0, len(values), k)])
        return tables
    jobs = []
    for start in range(0, len(cands), programs_per_job):
        group = cands[start:start + programs_per_job]
        calls = tuple({"k": k, "names": list(c.program.latents), "domains": [list(d) for d in c.program.latents.values()],
                       "rows": c.rows} for k, c in enumerate(group))
        jobs.append(Job(source=generated_source(_module(group, max_midrun_abs)), entry_point="_cf_table",
                        calls=calls))
    tables = []
    for results in executor.run(jobs):
        for res in results:
            tables.append(res.value if res.ok and isinstance(res.value, list) else None)
    return tables


# -- queries and filters -----------------------------------------------------------------------
@dataclass
class _Row:
    """Summary of one tabulated row: what every query that observes or intervenes at it needs."""

    broke_bound: bool  # some run broke the mid-run bound
    largest: int  # largest |output|
    groups: dict  # output -> indices of the assignments that produce it
    prior: list  # sorted distinct outputs


class _Rows:
    """The :class:`_Row` summaries of a table, built on first use (most queries touch few rows)."""

    def __init__(self, table: list[list]):
        self.table = table
        self._cache: list[_Row | None] = [None] * len(table)

    def __getitem__(self, i: int) -> _Row:
        row = self._cache[i]
        if row is None:
            values = self.table[i]
            if _MIDRUN in values:
                row = _Row(True, 0, {}, [])
            else:
                groups: dict[int, list[int]] = {}
                for a, v in enumerate(values):
                    groups.setdefault(v, []).append(a)
                row = _Row(False, max(max(groups), -min(groups)), groups, sorted(groups))
            self._cache[i] = row
        return row


_VALUE_TYPES = {int, str}  # integers, and the mid-run marker (the only string the harness returns)


def well_typed(table: list[list] | None, n_rows: int, n_assignments: int) -> bool:
    """A complete table of integers (or mid-run markers); anything else counts as an ``error``."""
    if table is None or len(table) != n_rows:
        return False
    for values in table:
        if not isinstance(values, list) or len(values) != n_assignments:
            return False
        types = {type(v) for v in values}
        if types - _VALUE_TYPES or (str in types and any(type(v) is str and v != _MIDRUN for v in values)):
            return False
    return True


def judge(table: list[list], rows: _Rows, i: int, j: int, y: int, need: int, knobs: dict,
          max_abs_value: int) -> str | list:
    """The first filter that observing ``y`` at row ``i`` and intervening to row ``j`` fails, else the gold set.

    The verdict depends on the true assignment only through its output ``y``,
    so :func:`evaluate` caches it per ``(i, y, j)``.
    """
    obs, new = rows[i], rows[j]
    if obs.broke_bound or new.broke_bound:
        return "midrun_bound"
    if obs.largest > max_abs_value or new.largest > max_abs_value:
        return "unbounded"
    consistent = obs.groups.get(y, ())
    if not consistent:
        return "no_consistent"
    if len(consistent) < knobs["min_consistent"]:
        return "too_few_consistent"
    new_values = table[j]
    answer = sorted({new_values[k] for k in consistent})
    if answer == new.prior:
        return "abduction_unnecessary"
    if knobs["reject_echo"] and answer == [y]:
        return "echo"
    if len(answer) < need:
        return "gold_too_small"
    return answer


def can_split(table: list[list], rows: _Rows, pairs: Sequence[tuple[int, int]], need: int,
              min_consistent: int) -> bool:
    """Whether some query could have a gold set of ``need`` values (a cheap necessary condition).

    Most programs that cannot are ones where the latents that agree on one
    input agree on every other input too; drawing queries from them is wasted.
    """
    smallest = max(need, min_consistent)
    partners: dict[int, list[int]] = {}
    for i, j in pairs:
        partners.setdefault(i, []).append(j)
    for i, targets in partners.items():
        if len(set(table[i])) == len(table[i]):
            continue  # every latent gives another output here: no group to split
        for group in rows[i].groups.values():
            if len(group) < smallest:
                continue
            for j in targets:
                values = table[j]
                if len({values[k] for k in group}) >= need:
                    return True
    return False


def evaluate(cand: Candidate, table: list[list] | None, rng, need: int, knobs: dict, max_abs_value: int) -> None:
    """Draw queries from the candidate's table until one passes (``cand.query``) or the budget is spent.

    A program whose table cannot give a gold set of ``need >= 2`` values is
    dropped without drawing (``exhausted``).
    """
    if not well_typed(table, len(cand.rows), len(cand.assignments)) or not cand.pairs:
        cand.reject = "error"
        return
    assert table is not None
    rows = _Rows(table)
    if need >= 2 and not can_split(table, rows, cand.pairs, need, knobs["min_consistent"]):
        cand.reject = "exhausted"
        return
    pairs, n_pairs, n_assign = cand.pairs, len(cand.pairs), len(cand.assignments)
    verdicts: dict[tuple[int, int, int], str | list] = {}
    rejections = cand.rejections
    for _ in range(knobs["queries_per_program"]):
        i, j = pairs[int(rng.random() * n_pairs)]
        a = int(rng.random() * n_assign)
        y = table[i][a]
        key = (i, y, j)
        verdict = verdicts.get(key)
        if verdict is None:
            verdict = verdicts[key] = judge(table, rows, i, j, y, need, knobs, max_abs_value)
        if isinstance(verdict, list):
            cand.query = Query(i, j, a, y, verdict, rows[j].prior, len(rows[i].groups[y]))
            cand.table = table
            return
        rejections[verdict] = rejections.get(verdict, 0) + 1
    cand.reject = "exhausted"


def _query_parts(cand: Candidate) -> tuple[dict, dict]:
    q = cand.query
    assert q is not None
    observed, new = cand.rows[q.obs_row], cand.rows[q.new_row]
    return dict(observed), {k: v for k, v in new.items() if observed[k] != v}


def build_item(family, cand: Candidate, *, variant: str, seed: int, index: int,
               config: dict, level: str | None) -> dict:
    """The JSON item: a program record plus provenance, display code and prompt."""
    q, table = cand.query, cand.table
    assert q is not None and table is not None
    inputs, intervention = _query_parts(cand)
    names = list(cand.program.latents)
    if variant == "interventional":
        latent_values = dict(zip(names, cand.assignments[q.true_index]))
        answer = [table[q.new_row][q.true_index]]
    else:
        latent_values, answer = None, q.answer
    record = ProgramRecord(
        id=f"{family.name}-{seed}-{index}",
        program=cand.program.source,
        entry_point=cand.program.entry_point,
        latents={k: tuple(v) for k, v in cand.program.latents.items()},
        observed_inputs=inputs,
        observed_output=q.observed_output,
        intervention=intervention,
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
        prior_answer=q.prior,
        n_consistent=q.n_consistent,
        n_assignments=len(cand.assignments),
    )
    row["prompt"] = build_prompt(row)
    return row


# -- the pipeline -----------------------------------------------------------------------------
@dataclass
class _Tally:
    """The report's counts, updated as candidates are consumed in index order."""

    rejected: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FILTERS, 0))
    programs: int = 0
    queries: int = 0
    exhausted: int = 0
    keys: set = field(default_factory=set)  # dedup keys of the accepted items

    def take(self, cand: Candidate) -> bool:
        """Count one consumed candidate; ``True`` when it makes the item (a passing query, not a duplicate)."""
        self.programs += 1
        for name, count in cand.rejections.items():
            self.rejected[name] += count
            self.queries += count
        if cand.reject is not None:
            if cand.reject == "exhausted":
                self.exhausted += 1
            else:
                self.rejected[cand.reject] += 1
            return False
        self.queries += 1
        inputs, intervention = _query_parts(cand)
        key = dedup_key(cand.program, inputs, intervention, cand.query.observed_output)  # type: ignore[union-attr]
        if key in self.keys:
            self.rejected["duplicate"] += 1
            return False
        self.keys.add(key)
        return True


def _check_arguments(family, variant: str, n: int, window: int, config) -> None:
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


def generate_code_items(family, *, variant: str, n: int, seed: int, config, level: str | None = None,
                        executor=None, progress: bool = False, window: int = DEFAULT_WINDOW,
                        programs_per_job: int = DEFAULT_PROGRAMS_PER_JOB) -> GenerationResult:
    """Generate ``n`` verified items of a code family (see the module docstring).

    The interventional split runs exactly the counterfactual pipeline (same
    candidates, same filters) and reveals ``r*``, so item ``i`` of both splits
    shares its program and query. ``window`` (items proposing candidates at once)
    and ``programs_per_job`` (see :func:`run_tables`) trade memory and latency for
    throughput; they never change the output.
    """
    _check_arguments(family, variant, n, window, config)
    seed = int(seed)
    knobs = pipeline_knobs(config)
    if executor is None and n > 0:
        from cf_tasks.executor import shared_executor

        executor = shared_executor()

    bar = progress_bar(progress, total=n, desc=f"generate {family.name}", unit="item")

    tally = _Tally()
    items: list[dict] = []
    states: dict[int, _ItemState] = {}
    next_new = 0  # lowest index without a state yet
    rounds = runs = 0
    fingerprint = config_fingerprint(config)  # level and every knob enter each item's stream
    t_propose = t_execute = t_decide = 0.0
    config_dict = config.to_dict()
    batch_cap = max(1, window // PIPELINE_DEPTH)
    inflight: deque = deque()
    runner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cf-generate")
    start = time.perf_counter()
    try:
        while len(items) < n:
            while next_new < n and next_new < len(items) + window:
                rng = item_rng(family.name, family.version, seed, next_new, level=level, config=fingerprint)
                multi = rng.random() < knobs["multi_gold_prob"]
                states[next_new] = _ItemState(next_new, rng, max(knobs["min_gold_size"], 2 if multi else 1))
                next_new += 1
            # Propose for items that need a candidate and have none executing; the batch
            # runs in the background while the next one is composed (double buffering).
            t0 = time.perf_counter()
            batch: list[tuple[_ItemState, Candidate]] = []
            for st in states.values():  # insertion order is index order
                if len(batch) >= batch_cap:
                    break
                if not st.in_flight and st.waiting_for_candidate() and st.drawn < config.max_attempts:
                    st.drawn += 1
                    st.in_flight = True
                    batch.append((st, propose(family, st.rng, config, knobs["query_inputs"])))
            if batch:
                inflight.append((batch, runner.submit(run_tables, [c for _, c in batch], executor,
                                                      programs_per_job, knobs["max_midrun_abs"])))
                rounds += 1
            t1 = time.perf_counter()
            t_propose += t1 - t0
            if inflight and (len(inflight) >= PIPELINE_DEPTH or not batch):
                done, future = inflight.popleft()
                for (st, cand), table in zip(done, future.result()):
                    runs += len(cand.rows) * len(cand.assignments)
                    evaluate(cand, table, st.rng, st.need, knobs, config.max_abs_value)
                    st.buffer.append(cand)
                    st.in_flight = False
            t2 = time.perf_counter()
            t_execute += t2 - t1
            # Decide in index order, consuming each item's candidates in draw order.
            while len(items) < n and len(items) in states:
                st = states[len(items)]
                accepted = None
                while st.buffer and accepted is None:
                    cand = st.buffer.popleft()
                    accepted = cand if tally.take(cand) else None
                if accepted is None:
                    if st.drawn >= config.max_attempts and not st.in_flight:
                        raise GenerationError(
                            f"family {family.name!r}: item {st.index} (seed {seed}) found no acceptable program in "
                            f"{config.max_attempts} attempts (max_attempts); rejections so far: {tally.rejected}, "
                            f"programs without an acceptable query: {tally.exhausted}. "
                            "Widen the config's ranges, relax the shortcut filters or raise max_attempts.")
                    break
                items.append(build_item(family, accepted, variant=variant, seed=seed, index=st.index,
                                        config=config_dict, level=level))
                del states[st.index]
                bar.update(1)
            t_decide += time.perf_counter() - t2
    finally:
        runner.shutdown(wait=True, cancel_futures=True)
        bar.close()
    seconds = time.perf_counter() - start
    report = {
        "family": family.name,
        "variant": variant,
        "level": level,
        "seed": seed,
        "n": n,
        "generator_version": family.version,
        "prompt_version": PROMPT_VERSION,
        "accepted": len(items),
        "attempts": tally.programs,  # candidate programs; each is tabulated once
        "queries": tally.queries,  # queries drawn from the tables (program-level rejections draw none)
        "rejected": tally.rejected,
        "exhausted_programs": tally.exhausted,
        "acceptance_rate": (len(items) / tally.programs) if tally.programs else None,
        "multi_gold_items": sum(len(it["answer"]) > 1 for it in items) if variant == "counterfactual" else None,
        "executor_rounds": rounds,
        "program_runs": runs,
        "seconds": seconds,
        # where the wall time went: composing candidates, waiting for the executor (incl.
        # job encoding and query filters), and deciding + building items (prompts, records)
        "seconds_by_stage": {"propose": t_propose, "execute": t_execute, "decide_and_build": t_decide},
        "items_per_s": (len(items) / seconds) if seconds > 0 else None,
    }
    logger.info("generated %d %s items in %.2fs (%d programs, rejected %s)", len(items), family.name, seconds,
                tally.programs, tally.rejected)
    return GenerationResult(items=items, report=report)
