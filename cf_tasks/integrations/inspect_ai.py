"""inspect_ai: samples, scoring and tasks built from our generator and our metric.

The registered names live in :mod:`executable_cf._registry` (inspect derives
a task's namespace from the top-level package that defines it, and the
``inspect_ai`` entry point named ``executable_cf`` loads that module on the
first lookup of ``executable_cf/...``). This module holds the logic:

- a :class:`~inspect_ai.dataset.Sample` per item: the prompt as the user
  message (after an optional system message), the boxed-answer text as
  ``target`` (for logs and viewers), the item itself (minus the prompt) as
  ``metadata``;
- the scorer: the family's own scorer on ``state.output.completion``
  (``exact_match`` and ``f1`` for code, ``acc`` for math), the parsed final
  answer as ``Score.answer``;
- tasks: generated items (``level``, ``n``, ``seed``, ``config``, the knobs and
  defaults of the lm-eval tasks) or frozen items from a folder or JSONL file.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, Mapping, Sequence

from inspect_ai import Task
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.model import ChatMessageSystem, ChatMessageUser
from inspect_ai.scorer import Score, Scorer, Target
from inspect_ai.solver import TaskState, generate

from cf_tasks.integrations import common

ScorerFactories = Mapping[tuple[str, ...], Callable[[], Scorer]]
"""Metric names -> the registered scorer reporting them (see :mod:`executable_cf._registry`)."""


def item_sample(item: Mapping[str, Any], system_prompt: str | None = None) -> Sample:
    """One inspect sample of an item."""
    messages: list = [ChatMessageSystem(content=system_prompt)] if system_prompt else []
    messages.append(ChatMessageUser(content=item["prompt"]))
    return Sample(input=messages, target=common.answer_text(item), id=str(item["id"]),
                  metadata={k: v for k, v in item.items() if k != "prompt"})


def samples(items: Iterable[Mapping[str, Any]], system_prompt: str | None = None, where: str = "items") -> list[Sample]:
    """Samples of ``items``; two items with one id are an error (inspect keys results by sample id)."""
    out, seen = [], set()
    for item in items:
        sample = item_sample(item, system_prompt)
        if sample.id in seen:
            raise ValueError(f"{where}: two items have the id {sample.id!r}; sample ids must be unique")
        seen.add(sample.id)
        out.append(sample)
    return out


def score_state(state: TaskState, names: Sequence[str]) -> Score:
    """Score the completion of ``state`` against the gold answer in its metadata."""
    from cf_tasks.answers import extract_answer_text

    response = state.output.completion if state.output is not None else ""
    scores = common.score(state.metadata.get("family"), response, state.metadata["answer"])
    return Score(value=common.named_scores(names, scores), answer=extract_answer_text(response))


def scorer_for(names: Sequence[str]) -> Scorer:
    """The async scorer function behind the registered scorers."""
    async def score(state: TaskState, target: Target) -> Score:
        return score_state(state, names)

    return score


def build_task(items: list[dict], *, name: str, scorers: ScorerFactories, system_prompt: str | None = None,
               metadata: Mapping[str, Any] | None = None, where: str = "items") -> Task:
    """A task over ``items``: plain generation, scored with the items' family metric.

    Items of several families share the set metrics (``exact_match``, ``f1``;
    a math item's are its accuracy), since inspect needs one set of metric names.
    """
    families = {item.get("family") for item in items}
    names = common.metric_names(families.pop()) if len(families) == 1 else common.SET_METRICS
    return Task(dataset=MemoryDataset(samples(items, system_prompt, where), name=name), solver=generate(),
                scorer=scorers[names](), metadata=dict(metadata or {}))


def family_task(task: common.TaskRef, scorers: ScorerFactories, *, level: str | None, n: int, seed: int,
                config: Mapping[str, Any] | None, data: str | None, system_prompt: str | None) -> Task:
    """The task ``executable_cf/<family>[_<variant>]``: generated items, or the frozen items in ``data``."""
    if data:
        items = common.load_items(data)
        for item in items:
            if (item["family"], item["variant"]) != (task.family, task.variant):
                raise ValueError(f"{data}: item {item.get('id')!r} is {item['family']}/{item['variant']}, not a "
                                 f"{task.name} item (use the task executable_cf/from_file for mixed files)")
        knobs: dict[str, Any] = {"data": str(data)}
    else:
        items = common.generate(task, level=level, n=n, seed=seed, config=config)
        knobs = {"level": level or common.default_level(task.family), "n": n, "seed": seed,
                 "config": dict(config or {})}
    return build_task(items, name=task.name, scorers=scorers, system_prompt=system_prompt,
                      metadata={"family": task.family, "variant": task.variant, **knobs}, where=data or task.name)


def file_task(path: str, scorers: ScorerFactories, system_prompt: str | None = None) -> Task:
    """The task ``executable_cf/from_file``: frozen items of any families from a folder or JSONL file."""
    return build_task(common.load_items(path), name=f"{common.PREFIX}_from_file", scorers=scorers,
                      system_prompt=system_prompt, metadata={"data": str(path)}, where=str(path))
