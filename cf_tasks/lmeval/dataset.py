"""``custom_dataset`` loaders for the task YAMLs.

lm-eval calls them as ``fn(**metadata, **dataset_kwargs)``, where metadata
merges the YAML's ``metadata:``, ``--metadata`` (which wins) and the model's
``--model_args``. :mod:`cf_tasks.lmeval.metadata` takes the merge apart: model
arguments never change the items, unknown keys are warned about, and an error
about a value says whether it came from the YAML or from ``--metadata``.

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
from cf_tasks.lmeval.metadata import KnobError, TaskMetadata, split_metadata
from plugins.registry import UnknownPluginError

log = logging.getLogger(__name__)


class TaskMetadataError(ValueError):
    """Bad task metadata; the message names the task YAML, the key and where its value came from."""


def _fail(meta: TaskMetadata, exc: KnobError) -> TaskMetadataError:
    """The error to raise, logged first: lm-eval prints a long traceback before the message."""
    message = meta.error(exc)
    log.error("%s", message)
    return TaskMetadataError(message)


TASK_DEFAULTS = {"level": "medium", "n": 400, "seed": 1234}
"""The knobs of the shipped task YAMLs (their ``metadata``); training decontaminates against them.

``n = 400`` bounds the standard error of a task's mean score by 2.5 points (see :mod:`cf_tasks.benchmark`)."""


def _as_int(name: str, value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise KnobError(name, f"must be an integer, got {value!r}") from None
    if isinstance(value, bool) or (isinstance(value, float) and value != number):
        raise KnobError(name, f"must be an integer, got {value!r}")
    return number


@functools.lru_cache(maxsize=64)
def _generate(family: str, variant: str, level: str | None, n: int, seed: int, overrides_json: str) -> tuple:
    from plugins import FAMILIES

    try:
        plugin = FAMILIES.get(family)
    except UnknownPluginError as exc:
        raise KnobError("family", str(exc)) from None
    if level is not None and level not in plugin.levels:
        raise KnobError("level", f"family {family!r} has no level {level!r}; levels: {', '.join(plugin.levels)}")
    try:
        config = plugin.config(level, **json.loads(overrides_json))
    except ValueError as exc:
        raise KnobError("config", str(exc)) from None
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
        raise KnobError("variant", f"must be one of {', '.join(VARIANTS)}, got {variant!r}")
    if config is not None and not isinstance(config, dict):
        raise KnobError("config", f"must be a mapping of family knobs, got {config!r}")
    overrides = json.dumps(config or {}, sort_keys=True)
    items = _generate(family, variant, level, _as_int("n", n), _as_int("seed", seed), overrides)
    return copy.deepcopy(list(items))


def _check_frozen_versions(family: str, items: list[dict], family_version: Any, prompt_version: Any) -> None:
    """The versions a YAML was frozen at must be the installed generator's (``ValueError`` naming the field)."""
    from plugins import FAMILIES

    installed = str(FAMILIES.get(family).version)
    if family_version is not None and str(family_version) != installed:
        raise KnobError("family_version", f"this task is frozen at {family} version {family_version}, but the "
                                          f"installed generator is version {installed}; its items would differ. "
                                          "Evaluate an exported folder of that version (load_export) or update the "
                                          "YAML.")
    produced = items[0].get("prompt_version") if items else None
    if prompt_version is not None and produced is not None and str(prompt_version) != str(produced):
        raise KnobError("prompt_version", f"this task is frozen at prompt version {prompt_version}, but the "
                                          f"installed {family} generator writes prompt version {produced}.")


def _with_version(items: list[dict], package: str | None = None) -> list[dict]:
    """Items with ``benchmark_version`` (package, family and prompt versions) added to each."""
    from cf_tasks.benchmark import item_version

    return [{**item, "benchmark_version": item_version(item.get("family", "custom"), item.get("generator_version", ""),
                                                       item.get("prompt_version", ""), package)} for item in items]


FAMILY_KNOBS = ("family", "variant", "level", "n", "seed", "config", "family_version", "prompt_version")


def _given(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def load_family(family: str | None = None, variant: str | None = None, level: str | None = None,
                n: int | None = None, seed: int | None = None, config: dict | None = None,
                family_version: Any = None, prompt_version: Any = None, **extra: Any):
    """Generated items of ``family`` as a ``DatasetDict`` with a ``test`` split.

    Knobs (:data:`FAMILY_KNOBS`): ``family``, ``variant``, ``level``, ``n``,
    ``seed``, ``config`` (family knob overrides) and the ``family_version`` /
    ``prompt_version`` a shipped YAML is frozen at. Errors name the task YAML
    (``config_source``, added by lm-eval), the key and where its value came from.
    """
    given = _given(family=family, variant=variant, level=level, n=n, seed=seed, config=config,
                   family_version=family_version, prompt_version=prompt_version)
    meta = split_metadata("load_family", {**extra, **given}, FAMILY_KNOBS)
    knobs = {"variant": "counterfactual", "level": None, "n": TASK_DEFAULTS["n"], "seed": TASK_DEFAULTS["seed"],
             "config": None, "family_version": None, "prompt_version": None, **meta.values}
    try:
        family = knobs.get("family")
        if not family:
            raise KnobError("family", "missing: name a family (see `cf-tasks families`)")
        items = generate_items(family, knobs["variant"], knobs["level"], knobs["n"], knobs["seed"], knobs["config"])
        _check_frozen_versions(family, items, knobs["family_version"], knobs["prompt_version"])
    except KnobError as exc:
        raise _fail(meta, exc) from None
    return to_dataset_dict(_with_version(items))


def load_export(path: str | None = None, name: str | None = None, split: str | None = None, **extra: Any):
    """Frozen items from a folder written by ``cf-tasks export`` (``metadata: {path: DIR, name: CONFIG}``).

    Nothing is generated: the rows are the exported items, checked against the
    SHA-256 that ``release.json`` records for that config and split (a modified
    or truncated file is an error). Relative paths resolve against the current
    directory.
    """
    from cf_tasks.export import read_release

    meta = split_metadata("load_export", {**extra, **_given(path=path, name=name, split=split)},
                          ("path", "name", "split"))
    path, name, split = meta.values.get("path"), meta.values.get("name"), meta.values.get("split", "test")
    try:
        if not path or not name:
            raise KnobError("path" if not path else "name", "give 'path' (an exported folder) and 'name' (one of "
                                                            "its configs, e.g. code-while-counterfactual)")
        try:
            items, version = read_release(Path(path).expanduser(), str(name), str(split))
        except (OSError, ValueError) as exc:
            raise KnobError("path", str(exc)) from None
    except KnobError as exc:
        raise _fail(meta, exc) from None
    return to_dataset_dict(_with_version(items, version.get("package")))


def load_records(records: str | None = None, variant: str | None = None, **extra: Any):
    """Program records from a JSONL file (``metadata: {records: path}``), solved by execution if needed.

    Relative paths resolve against the current directory (lm-eval does not tell
    loaders where the YAML lives). Records are untrusted: missing answers are
    computed by the isolated executor. ``variant`` keeps only records of that variant.
    """
    from cf_tasks.solve import solve_file_records

    meta = split_metadata("load_records", {**extra, **_given(records=records, variant=variant)},
                          ("records", "variant"))
    records, variant = meta.values.get("records"), meta.values.get("variant")
    try:
        if not records:
            raise KnobError("records", "missing: give the path of a program-record JSONL file")
        path = Path(records).expanduser()
        if not path.is_file():
            raise KnobError("records", f"program-record file not found: {path} (relative paths resolve against "
                                       f"{Path.cwd()})")
    except KnobError as exc:
        raise _fail(meta, exc) from None
    items = solve_file_records(path)  # record errors name the record file, line and field
    if variant:
        items = [item for item in items if item.get("variant", "counterfactual") == variant]
    return to_dataset_dict(items)
