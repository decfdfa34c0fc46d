"""The shipped benchmark: which tasks it has, what version it is, and digests of its bytes.

The shipped task YAMLs (``cf_tasks/tasks/**.yaml``) are the single source of
truth: their ``metadata`` names the family, variant, level, ``n``, seed and
knob overrides of every task, plus the family and prompt versions the task was
frozen at. :func:`shipped_tasks` reads them (without running lm-eval), the
export writes exactly those tasks, and the golden digests
(:mod:`cf_tasks.golden`) pin the bytes generation produces for them.

Why ``n = 400``: the standard error of a mean of 0/1 scores is
``sqrt(p (1 - p) / n) <= 0.5 / sqrt(n)``, which is at most 2.5 points for
``n >= 400`` whatever the model's accuracy ``p``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

BENCHMARK = "executable-cf"
FAMILY_ORDER = ("if_else", "if_else_long", "while", "multi_r", "gsm")
"""The paper's order (in-distribution first, then the OOD axes); other families follow by name."""
VARIANT_ORDER = ("counterfactual", "interventional")
SHIPPED_N = 400
"""Items per shipped task: the standard error of exact match / accuracy is at most 2.5 points."""


@dataclass(frozen=True)
class TaskSpec:
    """One shipped lm-eval task (one family x variant), as its YAML's ``metadata`` declares it."""

    task: str
    family: str
    variant: str
    level: str
    n: int
    seed: int
    config: Mapping[str, Any] = field(default_factory=dict)
    family_version: str | None = None
    prompt_version: str | None = None
    release_name: str | None = None
    path: str = ""


def _yaml_loader():
    import yaml

    class Loader(yaml.SafeLoader):
        """Safe loading that skips lm-eval's ``!function`` tags (only the metadata matters here)."""

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    return Loader


def shipped_tasks(tasks_dir: str | Path | None = None) -> list[TaskSpec]:
    """Every task YAML with a ``metadata.family``, in :data:`FAMILY_ORDER`; errors name the file and field."""
    import yaml

    if tasks_dir is None:
        from cf_tasks.tasks import tasks_dir as default_dir

        tasks_dir = default_dir()
    loader = _yaml_loader()
    specs = []
    for path in sorted(Path(tasks_dir).rglob("*.yaml")):
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=loader) or {}
        meta = data.get("metadata") or {}
        if "family" not in meta:
            continue
        try:
            specs.append(TaskSpec(
                task=str(data["task"]), family=str(meta["family"]), variant=str(meta["variant"]),
                level=str(meta["level"]), n=int(meta["n"]), seed=int(meta["seed"]), config=dict(meta.get("config") or {}),
                family_version=None if meta.get("family_version") is None else str(meta["family_version"]),
                prompt_version=None if meta.get("prompt_version") is None else str(meta["prompt_version"]),
                release_name=meta.get("release_name"), path=str(path)))
        except KeyError as exc:
            raise ValueError(f"{path}: task metadata is missing the field {exc.args[0]!r}") from None
    def order(spec: TaskSpec) -> tuple:
        known = spec.family in FAMILY_ORDER
        return (not known, FAMILY_ORDER.index(spec.family) if known else spec.family,
                VARIANT_ORDER.index(spec.variant) if spec.variant in VARIANT_ORDER else 9, spec.task)

    return sorted(specs, key=order)


def release_name(spec: TaskSpec) -> str:
    """The dataset config name of a task, as in the paper's release (``code-while-counterfactual``)."""
    if spec.release_name:
        return str(spec.release_name)
    from plugins import FAMILIES

    domain = getattr(FAMILIES.get(spec.family), "domain", None)
    return f"{domain}-{spec.family}-{spec.variant}" if domain else f"{spec.family}-{spec.variant}"


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(BENCHMARK)
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "unknown"


def benchmark_version(specs: Iterable[TaskSpec] | None = None) -> dict[str, Any]:
    """What identifies the benchmark's bytes: package, prompt and per-family generator versions."""
    from cf_tasks.prompts import PROMPT_VERSION
    from plugins import FAMILIES

    specs = list(shipped_tasks() if specs is None else specs)
    families = sorted({s.family for s in specs})
    return {"benchmark": BENCHMARK, "package": package_version(), "code_prompt": PROMPT_VERSION,
            "families": {name: str(FAMILIES.get(name).version) for name in families}}


def item_version(family: str, family_version: str, prompt_version: str, package: str | None = None) -> dict:
    """What every lm-eval document records about the code that produced it."""
    return {"benchmark": BENCHMARK, "package": package or package_version(), "family": family,
            "family_version": str(family_version), "prompt_version": str(prompt_version)}


def digest_items(items: Iterable[Mapping[str, Any]]) -> str:
    """SHA-256 of the items as canonical JSON Lines (the bytes ``write_jsonl`` writes)."""
    from cf_tasks.jsonl import dumps

    h = hashlib.sha256()
    for item in items:
        h.update(dumps(item).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def generate_task(spec: TaskSpec, n: int | None = None, *, executor=None, progress: bool = False):
    """The items of a shipped task (``n`` overrides its size: generation has the prefix property)."""
    from plugins import FAMILIES

    family = FAMILIES.get(spec.family)
    config = family.config(spec.level, **dict(spec.config))
    return family.generate_items(variant=spec.variant, n=spec.n if n is None else n, seed=spec.seed, config=config,
                                 level=spec.level, executor=executor, progress=progress)
