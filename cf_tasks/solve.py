"""Fill in the answers of user program records by execution (``cf-tasks solve``).

Records come from user files, so their programs are untrusted: they run in the isolated
executor tier, streamed through it (memory O(batch) for a file of any size), never here.
Every bad record of a file is reported in one run (:class:`~cf_tasks.records.RecordErrors`):
malformed lines, field errors, programs that do not run to an answer value, a given
``answer`` that disagrees with execution, a record over its budgets; nothing is written then.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Iterator

from cf_tasks.abduction import BudgetError, SolveError, SolveLimits, Solution, solve_stream
from cf_tasks.prompts import build_prompt
from cf_tasks.records import ProgramRecord, RecordError, RecordErrors, iter_records


def solved_item(record: ProgramRecord, solution: Solution, limits: SolveLimits, where: str,
                line: int | None) -> dict:
    """The record as an item: ``answer`` by execution, plus prior, counts and the prompt.

    A record that already has an ``answer`` keeps it only if execution agrees; otherwise the
    :class:`SolveError` names the record's line (a wrong hand-written answer would silently
    corrupt every score).
    """
    if record.answer is not None and list(record.answer) != list(solution.answer):
        raise SolveError(f"record {record.id!r}: its 'answer' {record.answer} disagrees with execution "
                         f"{solution.answer}", source=where, line=line, field="answer")
    item = record.to_json()
    item.update(answer=list(solution.answer), prior_answer=list(solution.prior_answer),
                n_consistent=solution.n_consistent, n_assignments=solution.n_assignments)
    if solution.errors:  # flagged, never hidden: these assignments raised at the observed inputs
        item["n_raised"] = solution.errors
    item.setdefault("family", "custom")
    item["prompt"] = item.get("prompt") or build_prompt(item)
    size = len(json.dumps(item, ensure_ascii=False))
    if size > limits.max_record_bytes:
        raise SolveError(f"record {record.id!r}: its solved JSON is {size} bytes, over max_record_bytes="
                         f"{limits.max_record_bytes}", source=where, line=line)
    return item


def iter_solved(path: str | Path, executor=None, limits: SolveLimits = SolveLimits()
                ) -> Iterator[dict | RecordError]:
    """Solved items of a record file in order, and a :class:`RecordError` in place of each bad record."""
    source = str(path)
    bad: list[tuple[int, RecordError]] = []  # filled as solve_stream reads ahead

    def good_records():
        for line, rec in iter_records(path):
            if isinstance(rec, RecordError):
                bad.append((line, rec))
            else:
                yield source, line, rec

    for line, record, outcome in solve_stream(good_records(), executor, limits=limits):
        while bad and bad[0][0] < line:
            yield bad.pop(0)[1]
        if isinstance(outcome, SolveError):
            yield outcome
            continue
        try:
            yield solved_item(record, outcome, limits, source, line)
        except SolveError as exc:
            yield exc
    for _, error in bad:
        yield error


def solve_file(path: str | Path, sink: Callable[[dict], None], executor=None,
               limits: SolveLimits = SolveLimits()) -> int:
    """Solve every record of ``path``, handing each solved item to ``sink`` in order.

    Collects every bad record and raises them together (:class:`RecordErrors`) at the end;
    a file-level budget (:class:`BudgetError`) stops at once. Returns the number of items.
    """
    from cf_tasks.executor import Executor

    own = executor is None
    executor = executor or Executor(untrusted=True)
    errors: list[RecordError] = []
    count = 0
    try:
        for item in iter_solved(path, executor, limits):
            if isinstance(item, RecordError):
                errors.append(item)
            elif not errors:  # after the first error nothing is kept: the run fails anyway
                sink(item)
                count += 1
    except BudgetError as exc:
        errors.append(exc)
    finally:
        if own:
            executor.close()
    if errors:
        raise RecordErrors(str(path), errors)
    return count


def solve_file_records(path: str | Path, executor=None, limits: SolveLimits = SolveLimits()) -> list[dict]:
    """Every record of ``path`` solved (a list; :func:`solve_file` streams)."""
    items: list[dict] = []
    solve_file(path, items.append, executor=executor, limits=limits)
    return items
