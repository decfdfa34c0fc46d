"""Every executable-cf family and variant as a reasoning-gym dataset.

One line registers them all with reasoning-gym's own registry
(``reasoning_gym.factory.register_dataset``), under the lm-eval task names::

    import cf_tasks.integrations.reasoning_gym  # registers executable_cf_while, ..._interventional, ...
    import reasoning_gym

    data = reasoning_gym.create_dataset("executable_cf_while", size=1000, seed=7, level="hard")
    entry = data[0]  # {"question": prompt, "answer": "3, 7", "metadata": {...}}
    data.score_answer(model_answer, entry)  # set exact match, 0.0 or 1.0

reasoning-gym's conventions, kept: a dataclass config with ``seed`` and
``size`` (``seed=None`` draws a random seed, as every reasoning-gym dataset
does), random access by index, ``metadata["source_dataset"]`` /
``["source_index"]`` (so ``CompositeDataset`` routes scoring back here),
``metadata["difficulty"]``, and a curriculum over the family's named levels.

What differs, on purpose: item ``i`` is item ``i`` of ``cf-tasks generate``
with the same family, variant, level and seed (hashed per-item seeds, so
seed 1 item 1 is not seed 2 item 0); the items are generated once, in one
batched executor run, on first access. ``score_answer`` is our metric, never
reasoning-gym's substring partial credit (which rewards hedging): it accepts
a whole response (scored exactly as lm-eval scores it: the last ``\\boxed{}``)
or an already extracted answer such as ``reasoning_gym.utils.extract_answer``
returns (``"3, 7"``, ``"{3, 7}"``), which is scored as if it had been boxed.
``metric="f1"`` makes ``score_answer`` return set F1 (partial credit that
still penalises extra elements); :meth:`ExecutableCFDataset.scores` returns both.
"""

from __future__ import annotations

import logging
import operator
import threading
from dataclasses import dataclass, field
from typing import Any, Optional

from reasoning_gym.coaching.attributes import ScalarAttributeDefinition
from reasoning_gym.coaching.base_curriculum import BaseCurriculum
from reasoning_gym.dataset import ProceduralDataset
from reasoning_gym.factory import DATASETS, register_dataset

from cf_tasks.integrations import common

log = logging.getLogger(__name__)

METRICS = common.SET_METRICS


@dataclass
class ExecutableCFConfig:
    """Knobs of one executable-cf dataset; the family and variant come from the dataset's name."""

    level: Optional[str] = field(default=None, metadata={"help": "Named level (easy, medium, hard); "
                                                                 "None: the family's default."})
    config: Optional[dict] = field(default=None, metadata={"help": "Family knob overrides, e.g. {'loop_bound': 6}."})
    metric: str = field(default="exact_match", metadata={"help": "What score_answer returns: exact_match or f1."})
    seed: Optional[int] = field(default=None, metadata={"help": "Generation seed; None draws one at random."})
    size: int = field(default=500, metadata={"help": "Number of items."})

    def validate(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {self.metric!r}")
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 0:
            raise ValueError(f"size must be a non-negative integer, got {self.size!r}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)):
            raise ValueError(f"seed must be an integer or None, got {self.seed!r}")
        if self.config is not None and not isinstance(self.config, dict):
            raise ValueError(f"config must be a dict of family knobs, got {self.config!r}")


class ExecutableCFDataset(ProceduralDataset):
    """Base of the registered datasets; each subclass fixes ``task`` (family and variant)."""

    task: common.TaskRef

    def __init__(self, config: ExecutableCFConfig):
        super().__init__(config=config, seed=config.seed, size=config.size)
        from plugins import FAMILIES

        family = FAMILIES.get(self.task.family)
        self.level = config.level or family.default_level
        family.config(self.level, **(config.config or {}))  # bad levels and knobs fail here, not at item 0
        self._items: list[dict] | None = None
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_lock"]  # locks do not pickle; generated items travel with the dataset
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _generated(self) -> list[dict]:
        with self._lock:
            if self._items is None:
                self._items = common.generate(self.task, level=self.level, n=self.size, seed=self.seed,
                                              config=self.config.config)
            return self._items

    def __getitem__(self, idx: int) -> dict[str, Any]:
        idx = operator.index(idx)  # numpy integers too; slices and strings raise TypeError
        if not 0 <= idx < self.size:
            raise IndexError(f"{self.task.name}: index {idx} out of range for size {self.size}")
        item = self._generated()[idx]
        return {
            "question": item["prompt"],
            "answer": common.answer_text(item),
            "metadata": {
                "source_dataset": self.task.name,
                "source_index": idx,
                "family": self.task.family,
                "variant": self.task.variant,
                "level": self.level,
                "seed": self.seed,
                "id": item.get("id"),
                "gold": common.gold(item),
                "difficulty": {"level": self.level, **(self.config.config or {})},
                "item": item,
            },
        }

    def scores(self, answer: Optional[str], entry: dict[str, Any]) -> dict[str, float]:
        """``{"exact_match", "f1"}`` of ``answer`` (a response or an extracted answer) for ``entry``."""
        if not isinstance(answer, str) or not answer.strip():
            return dict.fromkeys(METRICS, 0.0)
        return common.score(self.task.family, as_response(answer), entry["metadata"]["gold"])

    def score_answer(self, answer: Optional[str], entry: dict[str, Any]) -> float:
        return self.scores(answer, entry)[self.config.metric]


def as_response(answer: str) -> str:
    """A response our parser reads: itself if it states a final answer, else the answer boxed.

    A text that mentions a box (even a malformed one), an ``<answer>`` tag or
    an "answer:" line is left alone, so a malformed box still scores 0 exactly
    as in lm-eval; only a bare answer such as ``"3, 7"`` gets boxed.
    """
    from cf_tasks.answers import extract_answer_text

    if "\\boxed" in answer or "\\fbox" in answer or extract_answer_text(answer) is not None:
        return answer
    return "\\boxed{" + answer + "}"


def _curriculum_class(task: common.TaskRef, levels: list[str], default: str) -> type[BaseCurriculum]:
    def __init__(self) -> None:
        BaseCurriculum.__init__(self, task.name, ExecutableCFConfig)
        self._define_attributes(ScalarAttributeDefinition(
            name="level", field_name="level", levels=list(levels), default_level=levels.index(default),
            description="named difficulty level of the family"))

    return type(f"{_class_stem(task)}Curriculum", (BaseCurriculum,), {"__init__": __init__, "__module__": __name__})


def _class_stem(task: common.TaskRef) -> str:
    return "ExecutableCF_" + task.short_name


def register(tasks: list[common.TaskRef] | None = None) -> list[str]:
    """Register the datasets (idempotent); returns the names. Called on import of this module.

    A name already registered by another package is an error naming it; a
    family plugin that fails to import is logged and skipped.
    """
    from plugins import FAMILIES

    names = []
    for task in common.task_refs() if tasks is None else tasks:
        existing = DATASETS.get(task.name)
        if existing is not None:
            if not issubclass(existing[0], ExecutableCFDataset):
                raise ValueError(f"reasoning-gym dataset {task.name!r} is already registered by "
                                 f"{existing[0].__module__}.{existing[0].__qualname__}")
            names.append(task.name)
            continue
        family = FAMILIES.get(task.family)
        dataset_cls = type(f"{_class_stem(task)}Dataset", (ExecutableCFDataset,),
                           {"task": task, "__module__": __name__})
        globals()[dataset_cls.__name__] = dataset_cls  # picklable: datasets cross process pools
        curriculum_cls = _curriculum_class(task, list(family.levels), family.default_level)
        globals()[curriculum_cls.__name__] = curriculum_cls
        register_dataset(task.name, dataset_cls, ExecutableCFConfig, curriculum_cls)
        names.append(task.name)
    return names


DATASET_NAMES = register()
"""The reasoning-gym names registered on import (``executable_cf_<family>[_<variant>]``)."""
