"""What every framework adapter shares: task names, items, gold answers and scores.

Why one module: the promise of the integrations is that item ``i`` of
``(family, variant, level, seed)`` and the score of a response are the same in
lm-eval, reasoning-gym, verl and inspect. So items come only from
:func:`cf_tasks.lmeval.dataset.generate_items` (the function behind lm-eval's
``custom_dataset`` loader) and scores only from
:func:`cf_tasks.scoring.scorer_for` (the per-family scorer behind the GRPO
rewards: set exact match and set F1 for code, exact accuracy for math), which
delegate to :mod:`cf_tasks.metrics` and :mod:`cf_tasks.answers`. The adapters
only rename fields.

Names follow the lm-eval tasks: ``executable_cf_<family>`` for the
counterfactual variant and ``executable_cf_<family>_<variant>`` for the others
(reasoning-gym datasets and verl ``data_source`` values use them as they are;
inspect tasks are ``executable_cf/<family>[_<variant>]``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

log = logging.getLogger(__name__)

PREFIX = "executable_cf"
DEFAULT_VARIANT = "counterfactual"
SET_METRICS = ("exact_match", "f1")
ACCURACY_METRICS = ("acc",)


@dataclass(frozen=True)
class TaskRef:
    """One family and variant: the unit every framework registers as a task or dataset."""

    family: str
    variant: str = DEFAULT_VARIANT

    @property
    def short_name(self) -> str:
        """``while`` or ``while_interventional`` (inspect's ``executable_cf/<short_name>``)."""
        return self.family if self.variant == DEFAULT_VARIANT else f"{self.family}_{self.variant}"

    @property
    def name(self) -> str:
        """``executable_cf_while``: the lm-eval task, reasoning-gym dataset and verl data source."""
        return f"{PREFIX}_{self.short_name}"


def task_refs() -> list[TaskRef]:
    """Every installed family (plugins included) with each of its variants.

    A family plugin that fails to import is logged and left out, so one broken
    plugin does not take the other tasks down (as in ``cf-tasks families``).
    """
    from plugins import FAMILIES, PluginLoadError

    refs = []
    for name in FAMILIES.names():
        try:
            family = FAMILIES.get(name)
        except PluginLoadError as exc:
            log.warning("executable-cf: family plugin %r is not available: %s", name, exc)
            continue
        refs.extend(TaskRef(name, variant) for variant in family.variants)
    return refs


def find_task(name: str, refs: Iterable[TaskRef] | None = None) -> TaskRef:
    """The task called ``name`` (``executable_cf_while`` or ``while``); the error lists the known names."""
    refs = list(task_refs() if refs is None else refs)
    for ref in refs:
        if name in (ref.name, ref.short_name):
            return ref
    raise ValueError(f"unknown executable-cf task {name!r}; known: {', '.join(r.name for r in refs) or 'none'}")


def generate(ref: TaskRef, *, level: str | None = None, n: int, seed: int,
             config: Mapping[str, Any] | None = None) -> list[dict]:
    """Items ``0..n-1`` of ``ref``: exactly what lm-eval's loader yields for the same knobs.

    ``level`` None means the family's default level; ``config`` overrides
    family knobs (``{"loop_bound": 6}``). Callers get their own copies.
    """
    from cf_tasks.lmeval.dataset import generate_items

    return generate_items(ref.family, ref.variant, level, n, seed, dict(config) if config else None)


def default_level(family: str) -> str:
    from plugins import FAMILIES

    return FAMILIES.get(family).default_level


def gold(item: Mapping[str, Any]) -> list:
    """The gold answer list of an item (``answer`` holds JSON values; one number for math)."""
    answer = item.get("answer")
    if not isinstance(answer, list):
        raise ValueError(f"item {item.get('id', '?')}: field 'answer' must be a list of values, got {answer!r}")
    return answer


def answer_text(item: Mapping[str, Any]) -> str:
    """The gold answer as a final answer would state it inside ``\\boxed{}``: ``3, 7`` or ``111``.

    Math items carry it as ``target``; code items are formatted by
    :func:`cf_tasks.answers.format_answer`, the target lm-eval logs.
    """
    from cf_tasks.answers import format_answer, last_boxed

    target = item.get("target")
    if isinstance(target, str):
        return last_boxed(target) or target
    return last_boxed(format_answer(gold(item))) or ""


def score(family: str | None, response: str, gold_answer: Any) -> dict[str, float]:
    """``{"exact_match", "f1"}`` of one response: the family's own scorer (math: both equal accuracy)."""
    from cf_tasks.scoring import scorer_for

    return {k: float(v) for k, v in scorer_for(family)(response if isinstance(response, str) else "",
                                                        gold_answer).items()}


def metric_names(family: str | None) -> tuple[str, ...]:
    """The metrics the family's lm-eval task reports: set EM and F1, or ``acc`` for math."""
    from cf_tasks.scoring import SCORERS

    return ACCURACY_METRICS if family in SCORERS else SET_METRICS


def named_scores(names: Iterable[str], scores: Mapping[str, float]) -> dict[str, float]:
    """``scores`` under metric ``names``; ``acc`` is the math scorer's exact match."""
    return {name: scores["exact_match" if name == "acc" else name] for name in names}


REQUIRED_ITEM_FIELDS = ("prompt", "answer", "family", "variant")


def load_items(path: str | Path) -> list[dict]:
    """Frozen items: a ``cf-tasks generate`` folder (its ``data.jsonl``) or a JSONL file of items.

    Items are data: nothing in them is executed to score a response. A line
    that is not an item fails with the file, line and field. Program records
    without answers are solved by ``cf-tasks solve`` (the isolated tier) first.
    """
    from cf_tasks.jsonl import iter_jsonl

    path = Path(path).expanduser()
    file = path / "data.jsonl" if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(f"no items at {path} (expected a JSONL file or a folder with data.jsonl)")
    items = []
    for lineno, row in iter_jsonl(file):
        for key in REQUIRED_ITEM_FIELDS:
            if key not in row:
                hint = " (program records: run `cf-tasks solve` first)" if key in ("prompt", "answer") else ""
                raise ValueError(f"{file}:{lineno}: field {key!r}: missing; an item needs "
                                 f"{', '.join(REQUIRED_ITEM_FIELDS)}{hint}")
        if not isinstance(row["prompt"], str):
            raise ValueError(f"{file}:{lineno}: field 'prompt': must be a string")
        if not isinstance(row["answer"], list) or not row["answer"]:
            raise ValueError(f"{file}:{lineno}: field 'answer': must be a non-empty list of values")
        items.append(row)
    if not items:
        raise ValueError(f"{file}: no items")
    return items
