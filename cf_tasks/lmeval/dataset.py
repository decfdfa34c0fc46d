"""``custom_dataset`` loaders for the task YAMLs.

lm-eval calls them as ``fn(**metadata, **dataset_kwargs)``, where metadata
merges the YAML's ``metadata:``, ``--metadata`` (which wins) and the model's
``--model_args``; unknown keys are therefore ignored, not rejected.

* :func:`load_family` generates the items (cached per process). A shipped YAML
  names the ``family_version`` and ``prompt_version`` it was frozen at; a
  mismatch with the installed generator is an error, because the same task
  name would silently mean other items. lm-eval records the metadata in the
  results (``configs.<task>.metadata``), so two runs can be compared.
* :func:`load_export` reads a folder written by ``cf-tasks export`` (frozen
  data, no generation) and checks its bytes against the folder's ``release.json``.
* :func:`load_records` reads user program records.

Every document also carries ``benchmark_version`` (package, prompt and family
versions), so logged samples say what produced them.
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


TASK_DEFAULTS = {"level": "medium", "n": 400, "seed": 1234}
"""The knobs of the shipped task YAMLs (their ``metadata``); training decontaminates against them.

``n = 400`` bounds the standard error of a task's mean score by 2.5 points (see :mod:`cf_tasks.benchmark`)."""


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


def _check_frozen_versions(family: str, items: list[dict], family_version: Any, prompt_version: Any) -> None:
    """The versions a YAML was frozen at must be the installed generator's (``ValueError`` naming the field)."""
    from plugins import FAMILIES

    installed = str(FAMILIES.get(family).version)
    if family_version is not None and str(family_version) != installed:
        raise ValueError(f"task metadata 'family_version': this task is frozen at {family} version "
                         f"{family_version}, but the installed generator is version {installed}; its items would "
                         "differ. Evaluate an exported folder of that version (load_export) or update the YAML.")
    produced = items[0].get("prompt_version") if items else None
    if prompt_version is not None and produced is not None and str(prompt_version) != str(produced):
        raise ValueError(f"task metadata 'prompt_version': this task is frozen at prompt version {prompt_version}, "
                         f"but the installed {family} generator writes prompt version {produced}.")


def _with_version(items: list[dict], package: str | None = None) -> list[dict]:
    """Items with ``benchmark_version`` (package, family and prompt versions) added to each."""
    from cf_tasks.benchmark import item_version

    return [{**item, "benchmark_version": item_version(item.get("family", "custom"), item.get("generator_version", ""),
                                                       item.get("prompt_version", ""), package)} for item in items]


def load_family(family: str | None = None, variant: str = "counterfactual", level: str | None = None,
                n: int = TASK_DEFAULTS["n"], seed: int = TASK_DEFAULTS["seed"], config: dict | None = None,
                family_version: Any = None, prompt_version: Any = None, config_source: str | None = None,
                **_ignored: Any):
    """Generated items of ``family`` as a ``DatasetDict`` with a ``test`` split.

    ``config_source`` is the task YAML's path (lm-eval adds it to the metadata);
    errors about the metadata name it.
    """
    try:
        if not family:
            raise ValueError("task metadata must name a 'family' (see `cf-tasks families`)")
        items = generate_items(family, variant, level, n, seed, config)
        _check_frozen_versions(family, items, family_version, prompt_version)
    except UnknownPluginError as exc:
        raise TaskMetadataError(f"{config_source or '<task metadata>'}: task metadata 'family': {exc}") from exc
    except ValueError as exc:
        raise TaskMetadataError(f"{config_source or '<task metadata>'}: {exc}") from exc
    return to_dataset_dict(_with_version(items))


def load_export(path: str | None = None, name: str | None = None, split: str = "test",
                config_source: str | None = None, **_ignored: Any):
    """Frozen items from a folder written by ``cf-tasks export`` (``metadata: {path: DIR, name: CONFIG}``).

    Nothing is generated: the rows are the exported items, checked against the
    SHA-256 that ``release.json`` records for that config and split (a modified
    or truncated file is an error). Relative paths resolve against the current
    directory.
    """
    from cf_tasks.export import read_release

    where = config_source or "<task metadata>"
    if not path or not name:
        raise TaskMetadataError(f"{where}: task metadata must give 'path' (an exported folder) and 'name' "
                                "(one of its configs, e.g. code-while-counterfactual)")
    try:
        items, version = read_release(Path(path).expanduser(), str(name), str(split))
    except (OSError, ValueError) as exc:
        raise TaskMetadataError(f"{where}: {exc}") from exc
    return to_dataset_dict(_with_version(items, version.get("package")))


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
