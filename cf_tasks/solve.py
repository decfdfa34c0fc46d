"""Fill in the answers of user program records by execution (``cf-tasks solve``).

Records come from user files, so their programs are untrusted: they run in the
isolated executor tier with the same limits as everything else, never here.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from cf_tasks.prompts import build_prompt
from cf_tasks.records import ProgramRecord, load_records

log = logging.getLogger(__name__)


def solved_items(records: Sequence[ProgramRecord], executor=None) -> list[dict]:
    """Records as items: ``answer`` computed by execution, plus prior, counts and the prompt.

    A record that already has an ``answer`` keeps it only if execution agrees;
    otherwise a ``ValueError`` names the record (a wrong hand-written answer
    would silently corrupt every score).
    """
    from cf_tasks.abduction import solve_records
    from cf_tasks.executor import Executor

    own = executor is None
    executor = executor or Executor(untrusted=True)
    try:
        solutions = solve_records(list(records), executor)
    finally:
        if own:
            executor.close()
    items = []
    for record, solution in zip(records, solutions):
        if record.answer is not None and list(record.answer) != list(solution.answer):
            raise ValueError(
                f"record {record.id!r}: its 'answer' {record.answer} disagrees with execution {solution.answer}"
            )
        item = record.to_json()
        item.update(
            answer=list(solution.answer),
            prior_answer=list(solution.prior_answer),
            n_consistent=solution.n_consistent,
            n_assignments=solution.n_assignments,
        )
        item.setdefault("family", "custom")
        item["prompt"] = item.get("prompt") or build_prompt(item)
        items.append(item)
    return items


def solve_file_records(path: str | Path, executor=None) -> list[dict]:
    return solved_items(load_records(path), executor=executor)
