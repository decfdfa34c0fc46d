"""``cf-tasks export``: the shipped benchmark as frozen files.

:func:`build_release` generates every shipped task (the task YAMLs, see
:mod:`cf_tasks.benchmark`) plus a training split for ``if_else``, scores the
reference solvers on each test split and returns a :class:`Release`. An
*export format* writes a release to a folder; formats are entries of
:data:`EXPORT_FORMATS` (:func:`register_format` adds one), so a new output
format is a function, not a new command. The default, ``hf``, writes a
Hugging Face dataset folder::

    DIR/README.md                                  dataset card: configs, versions, digests, baselines
    DIR/release.json                               the same facts, machine-readable (read by load_export)
    DIR/code-if_else-counterfactual/test.jsonl     one folder per config, named like the paper's release
    DIR/code-if_else-counterfactual/train.jsonl    (also config code-if_else-counterfactual-train)
    DIR/math-gsm-interventional/test.jsonl ...

``datasets.load_dataset(DIR, name="code-while-counterfactual", split="test")``
loads a config. Rows are items; a nested field whose shape varies from row to
row (GSM graphs, for instance) is stored as JSON text and named in the row's
``json_fields``, so every file is one Arrow table and nothing is lost:
``cf_tasks.lmeval.docs.decode_doc(row)`` gives the item back. Files are
written atomically, and the folder's ``release.json`` is written last.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

logger = logging.getLogger(__name__)

TRAIN_FAMILY = "if_else"
"""The family whose counterfactual items get a training split (the paper trains on if_else only)."""
DEFAULT_TRAIN_N = 2000
RELEASE_FILE = "release.json"


@dataclass
class ReleaseSplit:
    """One split of one config: its items and where they came from."""

    config: str  # e.g. code-while-counterfactual
    split: str  # test or train
    family: str
    variant: str
    level: str
    seed: int
    items: list[dict]
    task: str | None = None  # the lm-eval task of a test split
    report: dict = field(default_factory=dict)
    decontaminated: int = 0  # train items dropped because they are test problems

    @property
    def digest(self) -> str:
        from cf_tasks.benchmark import digest_items

        return digest_items(self.items)


@dataclass
class Release:
    version: dict[str, Any]
    splits: list[ReleaseSplit]
    baselines: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)  # config -> solver -> metrics

    def configs(self) -> list[str]:
        return list(dict.fromkeys(s.config for s in self.splits))


def _problem_key(item: Mapping[str, Any]) -> tuple:
    from cf_tasks.jsonl import dumps

    return (dumps(item.get("program")), dumps(item.get("observed")), dumps(item.get("intervention")))


def _train_split(spec, test_items: Sequence[Mapping[str, Any]], n: int, seed: int, executor, progress: bool):
    """``n`` training items of ``spec``'s family at ``seed``, none of them a test problem."""
    from dataclasses import replace

    from cf_tasks.benchmark import generate_task

    held_out = {_problem_key(item) for item in test_items}
    want = n
    while True:  # generation has the prefix property: asking for more only appends items
        result = generate_task(replace(spec, seed=seed), want, executor=executor, progress=progress)
        kept, dropped = [], 0
        for item in result.items:
            if _problem_key(item) in held_out:
                dropped += 1
            elif len(kept) < n:
                kept.append(item)
        if len(kept) == n:
            return kept, result.report, dropped
        if want > 2 * n + 100:
            raise ValueError(f"train split of {spec.family}: only {len(kept)} of {n} items are not test problems")
        want += n - len(kept)


def build_release(*, n: int | None = None, train_n: int = DEFAULT_TRAIN_N, train_seed: int | None = None,
                  tasks_dir: str | Path | None = None, baselines: bool = True, executor=None,
                  progress: bool = False) -> Release:
    """Generate the shipped tasks (``n`` overrides their sizes), the train split and the baselines' scores.

    The train split uses ``train_seed`` (default: the task's seed + 1, an
    independent stream) and drops any item that is also a test problem.
    """
    from cf_tasks.benchmark import benchmark_version, generate_task, release_name, shipped_tasks

    specs = shipped_tasks(tasks_dir)
    if not specs:
        raise ValueError(f"no task YAML with a metadata.family under {tasks_dir or 'the shipped tasks'}")
    splits: list[ReleaseSplit] = []
    by_family: dict[str, list[dict]] = {}
    for spec in specs:
        result = generate_task(spec, n, executor=executor, progress=progress)
        splits.append(ReleaseSplit(release_name(spec), "test", spec.family, spec.variant, spec.level, spec.seed,
                                   result.items, task=spec.task, report=result.report))
        by_family.setdefault(spec.family, []).extend(result.items)
    train_spec = next((s for s in specs if s.family == TRAIN_FAMILY and s.variant == "counterfactual"), None)
    if train_spec is not None and train_n > 0:
        seed = train_spec.seed + 1 if train_seed is None else int(train_seed)
        items, report, dropped = _train_split(train_spec, by_family[TRAIN_FAMILY], train_n, seed, executor, progress)
        splits.append(ReleaseSplit(release_name(train_spec), "train", train_spec.family, "counterfactual",
                                   train_spec.level, seed, items, report=report, decontaminated=dropped))
    release = Release(version=benchmark_version(specs), splits=splits)
    if baselines:
        from cf_tasks.reference import reference_scores

        for split in splits:
            if split.split == "test":
                release.baselines[split.config] = reference_scores(split.items, executor=executor)
    return release


# -- rows: items as one Arrow table per file -------------------------------------------------------
def _shape(value: Any) -> Any:
    """A value's structure: types, dict keys and list element shapes (``None`` when a list mixes shapes)."""
    if isinstance(value, dict):
        return ("dict",) + tuple(sorted((k, _shape(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        shapes = {_shape(v) for v in value}
        return ("list", shapes.pop() if len(shapes) == 1 else (None if shapes else "empty"))
    return type(value).__name__


def _arrow_safe(shape: Any) -> bool:
    """Whether one column of this shape in every row loads back unchanged (no mixed or empty lists)."""
    if shape is None or shape == "empty":
        return False
    if isinstance(shape, tuple):
        if shape[0] == "dict":
            return all(_arrow_safe(s) for _, s in shape[1:])
        return _arrow_safe(shape[1])
    return True


def _one_safe_shape(values) -> bool:
    shapes = {_shape(v) for v in values}
    return len(shapes) == 1 and _arrow_safe(shapes.pop())


def encode_rows(items: Sequence[Mapping[str, Any]]) -> list[dict]:
    """Items as rows of one Arrow table: a field keeps its structure when it has one shape in every row
    (and no mixed or empty lists); otherwise it becomes JSON text, named in the row's ``json_fields``."""
    from cf_tasks.jsonl import dumps

    if not items:
        return []
    keys = list(items[0])
    for index, item in enumerate(items):
        if list(item) != keys and set(item) != set(keys):
            raise ValueError(f"item {index} ({item.get('id')}): fields differ from the first item's; "
                             "one file holds items of one shape")
    as_text = sorted(key for key in keys if not _one_safe_shape(item[key] for item in items))
    rows = []
    for item in items:
        row = {key: dumps(item[key]) if key in as_text else item[key] for key in keys}
        row["json_fields"] = as_text
        rows.append(row)
    return rows


# -- formats --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExportFormat:
    """An output format: ``write(release, out_dir)`` returns the files it wrote."""

    name: str
    description: str
    write: Callable[[Release, Path], list[Path]]


EXPORT_FORMATS: dict[str, ExportFormat] = {}


def register_format(fmt: ExportFormat) -> ExportFormat:
    if fmt.name in EXPORT_FORMATS:
        raise ValueError(f"export format {fmt.name!r} is already registered")
    EXPORT_FORMATS[fmt.name] = fmt
    return fmt


def export(release: Release, out: str | Path, fmt: str = "hf") -> list[Path]:
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; formats: {', '.join(sorted(EXPORT_FORMATS))}")
    return EXPORT_FORMATS[fmt].write(release, Path(out))


def _split_path(split: ReleaseSplit) -> str:
    return f"{split.config}/{split.split}.jsonl"


def release_manifest(release: Release) -> dict[str, Any]:
    """``release.json``: versions, every config's files with sizes and SHA-256, baselines."""
    configs: dict[str, dict] = {}
    for split in release.splits:
        entry = configs.setdefault(split.config, {"family": split.family, "variant": split.variant,
                                                  "level": split.level, "splits": {}})
        info = {"path": _split_path(split), "n": len(split.items), "seed": split.seed,
                "sha256": split.digest}
        if split.task:
            info["task"] = split.task
        if split.decontaminated:
            info["dropped_test_problems"] = split.decontaminated
        entry["splits"][split.split] = info
    return {"benchmark_version": release.version, "configs": configs, "baselines": release.baselines,
            "digest": "sha256 of the items as canonical JSON lines (cf_tasks.benchmark.digest_items)"}


def _digest_note(splits: Mapping[str, Mapping[str, Any]]) -> str:
    return "; ".join(f"{split}: {info['n']} items, sha256 {info['sha256']}" for split, info in splits.items())


def _card(release: Release, manifest: Mapping[str, Any]) -> str:
    import yaml

    from cf_tasks.reference import SOLVERS

    configs = []
    for name, entry in manifest["configs"].items():
        splits = entry["splits"]
        files = [{"split": s, "path": info["path"]} for s, info in splits.items()]
        # ``datasets`` caches a local folder's configs by their YAML definition, not by the files'
        # contents: the digests in ``description`` make a re-export at the same path load afresh.
        configs.append({"config_name": name, "data_files": files, "description": _digest_note(splits)})
        if "train" in splits:  # the paper's release names the training set as its own config
            configs.append({"config_name": f"{name}-train", "data_files": [{"split": "train",
                                                                            "path": splits["train"]["path"]}],
                            "description": _digest_note({"train": splits["train"]})})
    front = {"configs": configs, "license": "mit", "pretty_name": "Executable counterfactuals (executable-cf)",
             "tags": ["executable-cf", "counterfactual-reasoning", "code"]}
    v = release.version
    lines = ["---", yaml.safe_dump(front, sort_keys=False).rstrip(), "---",
             "# Executable counterfactuals: frozen benchmark", "",
             "Counterfactual reasoning problems over generated Python functions `y = f(x, r)` with hidden latents "
             "`r` (code) and GSM-style word problems with a hidden quantity (math), after Vashishtha, Dai et al., "
             "*Executable Counterfactuals: Improving LLMs' Causal Reasoning Through Code* (ICLR 2026). "
             "Every gold answer comes from executing the program. Interventional configs reveal the latents of "
             "the same problems.", "",
             "## Version", "",
             f"- package `{v['package']}`, code prompt version `{v['code_prompt']}`",
             "- generator versions: " + ", ".join(f"`{k}` {val}" for k, val in v["families"].items()), "",
             "## Configs", "",
             "| config | split | items | level | seed | lm-eval task | sha256 |", "|---|---|---|---|---|---|---|"]
    for name, entry in manifest["configs"].items():
        for split, info in entry["splits"].items():
            lines.append(f"| `{name}` | {split} | {info['n']} | {entry['level']} | {info['seed']} | "
                         f"{info.get('task', '—')} | `{info['sha256'][:16]}…` |")
    lines += ["", "The train split holds no test problem (same program and query). Digests: SHA-256 of the items "
              "as canonical JSON lines; full values in `release.json`.", ""]
    if release.baselines:
        lines += ["## Reference solvers (test splits)", "",
                  "Exact match in % (code; F1 in parentheses) or accuracy in % (math). `cf_oracle` solves by "
                  "execution; `cf_one_latent` assumes one consistent latent; `cf_echo` answers the observed "
                  "output; `cf_no_abduction` ignores the observation.", "",
                  "| config | " + " | ".join(SOLVERS) + " |", "|---|" + "---|" * len(SOLVERS)]
        for name, scores in release.baselines.items():
            cells = []
            for solver in SOLVERS:
                m = scores.get(solver, {})
                cells.append(f"{100 * m['exact_match']:.1f} ({100 * m['f1']:.1f})" if "exact_match" in m
                             else (f"{100 * m['acc']:.1f}" if "acc" in m else "—"))
            lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Use", "", "```python", "import datasets", "from cf_tasks.lmeval.docs import decode_doc",
              "ds = datasets.load_dataset(\"DIR\", name=\"code-while-counterfactual\", split=\"test\")",
              "item = decode_doc(ds[0])   # JSON-text fields (see json_fields) back to objects", "```", "",
              "Evaluate the frozen data with lm-eval (no generation): a task YAML with "
              "`custom_dataset: !function cf_tasks.lmeval.dataset.load_export` and "
              "`metadata: {path: DIR, name: code-while-counterfactual}` (see the executable-cf README).", ""]
    return "\n".join(lines)


def write_hf(release: Release, out: Path) -> list[Path]:
    """A Hugging Face dataset folder (see the module docstring)."""
    from cf_tasks.jsonl import atomic_write, write_json, write_jsonl

    written = []
    for split in release.splits:
        path = out / _split_path(split)
        write_jsonl(path, encode_rows(split.items))
        written.append(path)
    manifest = release_manifest(release)
    with atomic_write(out / "README.md") as handle:
        handle.write(_card(release, manifest))
    written.append(out / "README.md")
    write_json(out / RELEASE_FILE, manifest)  # last: a folder with release.json is complete
    written.append(out / RELEASE_FILE)
    return written


register_format(ExportFormat("hf", "Hugging Face dataset folder (JSONL per config and split, card, release.json)",
                             write_hf))


def read_release(folder: Path, name: str, split: str = "test") -> tuple[list[dict], dict]:
    """The items of one config and split of an exported folder, checked against ``release.json``."""
    import json

    from cf_tasks.benchmark import digest_items
    from cf_tasks.jsonl import iter_jsonl
    from cf_tasks.lmeval.docs import decode_doc

    manifest_path = folder / RELEASE_FILE
    if not manifest_path.is_file():
        raise FileNotFoundError(f"{folder}: not an exported benchmark folder (no {RELEASE_FILE}); "
                                "write one with `cf-tasks export -o DIR`")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    configs = manifest.get("configs", {})
    if name not in configs:
        raise ValueError(f"{manifest_path}: no config {name!r}; configs: {', '.join(configs)}")
    splits = configs[name]["splits"]
    if split not in splits:
        raise ValueError(f"{manifest_path}: config {name!r} has no split {split!r}; splits: {', '.join(splits)}")
    info = splits[split]
    items = [decode_doc(row) for _, row in iter_jsonl(folder / info["path"])]
    if digest_items(items) != info["sha256"]:
        raise ValueError(f"{folder / info['path']}: the items' SHA-256 differs from {RELEASE_FILE} "
                         "(the file was modified or truncated)")
    return items, dict(manifest.get("benchmark_version", {}))
