"""inspect_ai registrations: a task per family and variant, ``from_file``, and the two scorers.

Tasks: ``executable_cf/<family>`` (counterfactual) and
``executable_cf/<family>_<variant>`` for every installed family plugin, with
the lm-eval tasks' knobs and defaults as task arguments
(``-T level=hard -T n=500 -T seed=7 -T config='{loop_bound: 6}'``), or
``-T data=DIR`` for frozen items; ``executable_cf/from_file -T path=FILE``
for frozen items of several families. Scorers: ``executable_cf/set_match``
(``exact_match``, ``f1``) and ``executable_cf/math_accuracy`` (``acc``).
"""

from __future__ import annotations

from typing import Any

from inspect_ai import Task, task
from inspect_ai.scorer import Scorer, mean, scorer, stderr

from cf_tasks.integrations import common
from cf_tasks.integrations import inspect_ai as cf_inspect
from cf_tasks.lmeval.dataset import TASK_DEFAULTS

NAMESPACE = "executable_cf"


def _name(short: str) -> str:
    """The name to give inspect so that it registers ``executable_cf/<short>``.

    inspect prefixes the top-level package only when it sees it as installed;
    run from a source checkout, the checkout's ``executable_cf.egg-info`` hides
    the editable install from ``importlib.metadata`` and the prefix is dropped.
    Then the full name is given explicitly (lookups still load this module
    through the ``executable_cf`` entry point).
    """
    try:
        from inspect_ai._util.registry import registry_name
    except ImportError:  # pragma: no cover - a future inspect without it: trust its prefixing
        return short
    return short if registry_name(_name, short) == f"{NAMESPACE}/{short}" else f"{NAMESPACE}/{short}"


@scorer(metrics={name: [mean(), stderr()] for name in common.SET_METRICS}, name=_name("set_match"))
def set_match() -> Scorer:
    """Set exact match and set F1 of the set in the last ``\\boxed{}`` (executable-cf's code metric)."""
    return cf_inspect.scorer_for(common.SET_METRICS)


@scorer(metrics={name: [mean(), stderr()] for name in common.ACCURACY_METRICS}, name=_name("math_accuracy"))
def math_accuracy() -> Scorer:
    """Exact accuracy of the single number in the last ``\\boxed{}`` (executable-cf's math metric)."""
    return cf_inspect.scorer_for(common.ACCURACY_METRICS)


SCORERS = {common.SET_METRICS: set_match, common.ACCURACY_METRICS: math_accuracy}


def _family_task(ref: common.TaskRef):
    def factory(level: str | None = None, n: int = TASK_DEFAULTS["n"],
                seed: int = TASK_DEFAULTS["seed"], config: dict | None = None, data: str | None = None,
                system_prompt: str | None = None) -> Task:
        return cf_inspect.family_task(ref, SCORERS, level=level, n=n, seed=seed, config=config, data=data,
                                      system_prompt=system_prompt)

    factory.__name__ = factory.__qualname__ = ref.short_name
    factory.__doc__ = (f"executable-cf {ref.family} ({ref.variant}): the items of the lm-eval task {ref.name} "
                       "for the same level (default: the family's), n, seed and config; or the frozen items "
                       "in `data`.")
    return task(name=_name(ref.short_name))(factory)


@task(name=_name("from_file"))
def from_file(path: str, system_prompt: str | None = None) -> Task:
    """Frozen executable-cf items (a `cf-tasks generate` folder or a JSONL file of items), any families."""
    return cf_inspect.file_task(path, SCORERS, system_prompt=system_prompt)


TASKS: dict[str, Any] = {ref.short_name: _family_task(ref) for ref in common.task_refs()}
"""Registered task factories by short name (``while``, ``while_interventional``, ...)."""
