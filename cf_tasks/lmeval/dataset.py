"""``custom_dataset`` loaders for the task YAMLs.

lm-eval calls them as ``fn(**metadata, **dataset_kwargs)``, where metadata
merges the YAML's ``metadata:``, ``--metadata`` (which wins) and the model's
``--model_args``; unknown keys are therefore ignored, not rejected.
Generation is cached per process, so a counterfactual task and its
interventional twin do not generate twice.
"""

from __future__ import annotations

import copy
import functools
import json
import logging
from pathlib import Path
from typing import Any

from cf_tasks.lmeval.docs import to_dataset_dict
from plugins.registry import UnknownPluginError

log = logging.getLogger(__name__)


class TaskMetadataError(ValueError):
    """Bad ``metadata:`` in a task YAML; the message names the YAML file and the field."""


TASK_DEFAULTS = {"level": "medium", "n": 200, "seed": 1234}
"""The knobs of the shipped task YAMLs (their ``metadata``); training decontaminates against them."""


def _as_int(name: str, value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"task metadata {name!r} must be an integer, got {value!r}") from None
    if isinstance(value, float) and value != number:
        raise ValueError(f"task metadata {name!r} must be an integer, got {value!r}")
    return number


@functools.lru_cache(maxsize=64)
def _generate(family: str, variant: str, level: str | None, n: int, seed: int, overrides_json: str) -> tuple:
    from plugins import FAMILIES

    plugin = FAMILIES.get(family)
    config = plugin.config(level, **json.loads(overrides_json))
    result = plugin.generate_items(variant=variant, n=n, seed=seed, config=config, level=level or plugin.default_level)
    log.info("generated %d %s/%s items (seed %d): %s", len(result.items), family, variant, seed,
             result.report.get("rejected", {}))
    return tuple(result.items)


def generate_items(family: str, variant: str = "counterfactual", level: str | None = None,
                   n: int = TASK_DEFAULTS["n"], seed: int = TASK_DEFAULTS["seed"],
                   config: dict | None = None) -> list[dict]:
    """Items of one family (cached per process; callers get their own copies)."""
    from cf_tasks.records import VARIANTS

    if variant not in VARIANTS:
        raise ValueError(f"task metadata 'variant' must be one of {', '.join(VARIANTS)}, got {variant!r}")
    if config is not None and not isinstance(config, dict):
        raise ValueError(f"task metadata 'config' must be a mapping of family knobs, got {config!r}")
    overrides = json.dumps(config or {}, sort_keys=True)
    items = _generate(family, variant, level, _as_int("n", n), _as_int("seed", seed), overrides)
    return copy.deepcopy(list(items))


def load_family(family: str | None = None, variant: str = "counterfactual", level: str | None = None,
                n: int = TASK_DEFAULTS["n"], seed: int = TASK_DEFAULTS["seed"], config: dict | None = None,
                config_source: str | None = None,
                **_ignored: Any):
    """Generated items of ``family`` as a ``DatasetDict`` with a ``test`` split.

    ``config_source`` is the task YAML's path (lm-eval adds it to the metadata);
    errors about the metadata name it.
    """
    try:
        if not family:
            raise ValueError("task metadata must name a 'family' (see `cf-tasks families`)")
        items = generate_items(family, variant, level, n, seed, config)
    except UnknownPluginError as exc:
        raise TaskMetadataError(f"{config_source or '<task metadata>'}: task metadata 'family': {exc}") from exc
    except ValueError as exc:
        raise TaskMetadataError(f"{config_source or '<task metadata>'}: {exc}") from exc
    return to_dataset_dict(items)


def load_records(records: str | None = None, variant: str | None = None, config_source: str | None = None,
                 **_ignored: Any):
    """Program records from a JSONL file (``metadata: {records: path}``), solved by execution if needed.

    Relative paths resolve against the current directory (lm-eval does not tell
    loaders where the YAML lives). Records are untrusted: missing answers are
    computed by the isolated executor. ``variant`` keeps only records of that variant.
    """
    from cf_tasks.solve import solve_file_records

    where = config_source or "<task metadata>"
    if not records:
        raise TaskMetadataError(f"{where}: task metadata must give 'records': the path of a program-record JSONL file")
    path = Path(records).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"{where}: task metadata 'records': program-record file not found: {path} "
                                f"(relative paths resolve against {Path.cwd()})")
    items = solve_file_records(path)  # record errors name the record file, line and field
    if variant:
        items = [item for item in items if item.get("variant", "counterfactual") == variant]
    return to_dataset_dict(items)
