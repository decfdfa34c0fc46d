"""Read lm-eval output folders into :class:`Run` objects.

lm-eval (``--output_path OUT [--log_samples]``) writes, per model,
``OUT/<sanitized model>/results_<ts>.json`` and ``samples_<task>_<ts>.jsonl``.
The report reads those files as they are, so that any lm-eval run of our tasks
-- any backend, any machine -- can be compared without re-running anything.

Partial runs are normal (a ``--limit`` run, a run of a subset of tasks, a run
killed while writing samples, several invocations into one folder), so the
loader merges what it finds and records what it skipped in ``Run.warnings``
instead of failing. A file that is not an lm-eval output is an error that
names the file and what is missing.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from cf_tasks.lmeval.docs import decode_doc

logger = logging.getLogger(__name__)

TASK_PREFIX = "executable_cf_"
VARIANT_SUFFIXES = {"_interventional": "interventional", "_counterfactual": "counterfactual"}
FAMILY_ORDER = ("if_else", "if_else_long", "while", "multi_r", "gsm")
# Metrics in the order we look for them: the first found is "exact match"
# (gsm tasks report ``acc``), ``f1`` is optional.
EM_METRICS = ("exact_match", "acc")
F1_METRIC = "f1"

_TS = r"\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}(?:\.\d+)?"
RESULTS_RE = re.compile(rf"^results_(?P<ts>{_TS})\.json$")
SAMPLES_RE = re.compile(rf"^samples_(?P<task>.+)_(?P<ts>{_TS})\.jsonl$")
ANY_TS_JSON_RE = re.compile(rf"^.+_(?P<ts>{_TS})\.json$")  # ``--output_path x.json`` form


class LmEvalOutputError(ValueError):
    """A path that is not (or holds no) lm-eval output; the message names the file."""


class NoCfTasksError(LmEvalOutputError):
    """An lm-eval output folder that holds only other tasks (e.g. a gsm8k run beside ours)."""


class _Scores:
    """Exact match (``acc`` for gsm) and F1 from a ``metrics`` mapping."""

    metrics: dict[str, float]

    @property
    def em(self) -> float | None:
        return first_metric(self.metrics, EM_METRICS)

    @property
    def f1(self) -> float | None:
        return self.metrics.get(F1_METRIC)


@dataclass(frozen=True)
class TaskResult(_Scores):
    """Aggregate metrics of one task from one results JSON (one lm-eval filter)."""

    task: str
    family: str
    variant: str
    metrics: dict[str, float]
    stderr: dict[str, float]
    filter: str
    n: int | None
    source: str


@dataclass
class Sample(_Scores):
    """One logged lm-eval sample (one doc, one filter) with its per-doc metrics."""

    task: str
    family: str
    variant: str
    doc_id: int
    doc: dict[str, Any]
    response: str
    target: Any
    metrics: dict[str, float]
    filter: str
    source: str
    line: int

    @property
    def gold(self) -> Any:
        """The gold answer, decoded whichever format the document carried (list or JSON text)."""
        from cf_tasks.scoring import decode_gold

        return decode_gold(self.doc.get("answer", self.target))


@dataclass
class Run:
    """Everything found for one model in one lm-eval output folder."""

    label: str
    path: str
    model: str
    model_args: Any
    config: dict[str, Any]
    tasks: dict[str, TaskResult] = field(default_factory=dict)
    samples: dict[str, list[Sample]] = field(default_factory=dict)
    result_files: list[str] = field(default_factory=list)
    sample_files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def all_samples(self) -> list[Sample]:
        return [s for task in sorted(self.samples) for s in self.samples[task]]

    def families(self) -> list[str]:
        names = {t.family for t in self.tasks.values()} | {s.family for s in self.all_samples()}
        return order_families(names)


def first_metric(metrics: Mapping[str, float], names: Iterable[str]) -> float | None:
    for name in names:
        if name in metrics:
            return metrics[name]
    return None


def order_families(names: Iterable[str]) -> list[str]:
    """Paper order first (if_else, if_else_long, while, multi_r, gsm), then the rest sorted."""
    names = set(names)
    known = [f for f in FAMILY_ORDER if f in names]
    return known + sorted(names - set(FAMILY_ORDER))


def classify_task(task: str) -> tuple[str, str] | None:
    """``executable_cf_<family>[_interventional]`` -> ``(family, variant)``; None for other tasks."""
    if not task.startswith(TASK_PREFIX):
        return None
    rest = task[len(TASK_PREFIX):]
    variant = "counterfactual"
    for suffix, name in VARIANT_SUFFIXES.items():
        if rest.endswith(suffix):
            rest, variant = rest[: -len(suffix)], name
            break
    if not rest:
        return None
    return rest, variant


# ---------------------------------------------------------------------------
# discovery
# ---------------------------------------------------------------------------
@dataclass
class _Folder:
    path: Path
    results: list[tuple[str, Path]] = field(default_factory=list)  # (timestamp, file)
    samples: list[tuple[str, str, Path]] = field(default_factory=list)  # (task, timestamp, file)


def _discover(path: Path) -> list[_Folder]:
    if not path.exists():
        raise LmEvalOutputError(f"{path}: no such file or directory")
    folders: dict[Path, _Folder] = {}

    def folder(p: Path) -> _Folder:
        return folders.setdefault(p, _Folder(p))

    if path.is_file():
        m_s = SAMPLES_RE.match(path.name)
        if m_s:
            folder(path.parent).samples.append((m_s["task"], m_s["ts"], path))
        elif path.suffix == ".json":
            m = RESULTS_RE.match(path.name) or ANY_TS_JSON_RE.match(path.name)
            folder(path.parent).results.append((m["ts"] if m else "", path))
            # Samples of the same invocation sit beside it with the same timestamp.
            if m:
                for sib in sorted(path.parent.glob(f"samples_*_{m['ts']}.jsonl")):
                    m_sib = SAMPLES_RE.match(sib.name)
                    if m_sib:
                        folder(path.parent).samples.append((m_sib["task"], m_sib["ts"], sib))
        else:
            raise LmEvalOutputError(
                f"{path}: not an lm-eval output file (expected results_<timestamp>.json or "
                "samples_<task>_<timestamp>.jsonl written by lm_eval --output_path ... --log_samples)"
            )
    else:
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                p = Path(root) / name
                if (m := RESULTS_RE.match(name)) is not None:
                    folder(p.parent).results.append((m["ts"], p))
                elif (m := SAMPLES_RE.match(name)) is not None:
                    folder(p.parent).samples.append((m["task"], m["ts"], p))
    if not folders:
        raise LmEvalOutputError(
            f"{path}: no lm-eval outputs found (expected <model>/results_<timestamp>.json and, with "
            "--log_samples, samples_<task>_<timestamp>.jsonl as written by lm_eval --output_path)"
        )
    return [folders[k] for k in sorted(folders)]


# ---------------------------------------------------------------------------
# parsing
# ---------------------------------------------------------------------------
def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    return None  # lm-eval writes "N/A" for missing stderr


def read_results_file(path: str | os.PathLike) -> dict[str, Any]:
    """Load and check one results JSON; raises :class:`LmEvalOutputError` naming what is missing."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except json.JSONDecodeError as exc:
        raise LmEvalOutputError(
            f"{path}:{exc.lineno}: not an lm-eval results file: invalid JSON ({exc.msg})"
        ) from None
    if not isinstance(data, dict):
        raise LmEvalOutputError(f"{path}: not an lm-eval results file: top level is {type(data).__name__}, not an object")
    missing = [k for k in ("results", "config") if k not in data]
    if missing:
        raise LmEvalOutputError(
            f"{path}: not an lm-eval results file: missing key(s) {', '.join(map(repr, missing))} "
            "(lm-eval writes 'results', 'config', 'versions', ... )"
        )
    if not isinstance(data["results"], dict):
        raise LmEvalOutputError(f"{path}: field 'results' must be an object mapping task names to metrics")
    for task, entry in data["results"].items():
        if not isinstance(entry, dict):
            raise LmEvalOutputError(f"{path}: field 'results.{task}' must be an object of metrics")
    return data


def _group_names(data: Mapping[str, Any]) -> set[str]:
    names = set(data.get("groups") or {}) | set(data.get("group_subtasks") or {})
    return names


def _pick_filter(keys: Iterable[str]) -> str | None:
    filters = sorted({k.split(",", 1)[1] for k in keys if "," in k})
    if not filters:
        return None
    return "none" if "none" in filters else filters[0]


def task_results(data: Mapping[str, Any], source: str) -> tuple[dict[str, TaskResult], list[str]]:
    """Per-task metrics of our tasks in one results JSON, and names of tasks skipped."""
    groups = _group_names(data)
    out: dict[str, TaskResult] = {}
    skipped: list[str] = []
    n_samples = data.get("n-samples") or {}
    for task in sorted(data["results"]):
        entry = data["results"][task]
        if task in groups:
            continue
        kind = classify_task(task)
        if kind is None:
            skipped.append(task)
            continue
        filt = _pick_filter(entry)
        if filt is None:
            skipped.append(task)
            continue
        metrics: dict[str, float] = {}
        stderr: dict[str, float] = {}
        for key, value in entry.items():
            if "," not in key:
                continue
            name, key_filter = key.split(",", 1)
            if key_filter != filt:
                continue
            num = _number(value)
            if num is None:
                continue
            if name.endswith("_stderr"):
                stderr[name[: -len("_stderr")]] = num
            else:
                metrics[name] = num
        n = None
        info = n_samples.get(task)
        if isinstance(info, dict) and isinstance(info.get("effective"), int):
            n = info["effective"]
        elif isinstance(entry.get("sample_len"), int):
            n = entry["sample_len"]
        out[task] = TaskResult(task, kind[0], kind[1], metrics, stderr, filt, n, source)
    return out, skipped


def _response_text(obj: Mapping[str, Any]) -> str:
    resp = obj.get("filtered_resps")
    if resp is None:
        resp = obj.get("resps")
    while isinstance(resp, list) and resp:
        resp = resp[0]
    if isinstance(resp, list) or resp is None:
        return ""
    return resp if isinstance(resp, str) else str(resp)


def _decode(doc: Any, path: Path, lineno: int) -> dict[str, Any]:
    """Undo :func:`cf_tasks.lmeval.docs.encode_doc` (nested fields stored as JSON text)."""
    if not isinstance(doc, dict):
        return {"value": doc}
    try:
        return decode_doc(doc)
    except ValueError as exc:
        raise LmEvalOutputError(f"{path}:{lineno}: doc {exc}") from None


def read_samples_file(path: str | os.PathLike, task: str | None = None) -> tuple[list[Sample], list[str]]:
    """Read one samples JSONL; returns (samples, warnings).

    A truncated *last* line (a run killed mid-write) is skipped with a warning;
    any other malformed line is an error naming the file and line.
    """
    path = Path(path)
    if task is None:
        m = SAMPLES_RE.match(path.name)
        task = m["task"] if m else path.stem
    warnings: list[str] = []
    with open(path, encoding="utf-8") as handle:
        lines = handle.readlines()
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    rows: list[tuple[int, dict]] = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            if i == last and not line.endswith("\n"):
                warnings.append(f"{path}:{i + 1}: truncated last line skipped (partial run?)")
                continue
            raise LmEvalOutputError(f"{path}:{i + 1}: not an lm-eval samples file: invalid JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise LmEvalOutputError(f"{path}:{i + 1}: not an lm-eval samples file: line is not a JSON object")
        for key in ("doc_id", "doc"):
            if key not in obj:
                raise LmEvalOutputError(
                    f"{path}:{i + 1}: not an lm-eval samples file: missing field {key!r} "
                    "(lm-eval --log_samples lines have doc_id, doc, target, resps, filtered_resps, filter, ...)"
                )
        if "resps" not in obj and "filtered_resps" not in obj:
            raise LmEvalOutputError(f"{path}:{i + 1}: not an lm-eval samples file: missing field 'filtered_resps'")
        rows.append((i + 1, obj))
    filters = sorted({str(obj.get("filter", "none")) for _, obj in rows})
    chosen = "none" if "none" in filters or not filters else filters[0]
    if len(filters) > 1:
        warnings.append(f"{path}: several filters {filters}; using {chosen!r}")
    kind = classify_task(task)
    samples: list[Sample] = []
    for lineno, obj in rows:
        if str(obj.get("filter", "none")) != chosen:
            continue
        doc = _decode(obj["doc"], path, lineno)
        metric_names = obj.get("metrics") if isinstance(obj.get("metrics"), list) else []
        metrics = {}
        for name in metric_names:
            num = _number(obj.get(name))
            if num is not None:
                metrics[name] = num
        family = doc.get("family") or (kind[0] if kind else task)
        variant = doc.get("variant") or (kind[1] if kind else "counterfactual")
        samples.append(
            Sample(
                task=task,
                family=str(family),
                variant=str(variant),
                doc_id=int(obj["doc_id"]),
                doc=doc,
                response=_response_text(obj),
                target=obj.get("target"),
                metrics=metrics,
                filter=chosen,
                source=str(path),
                line=lineno,
            )
        )
    return samples, warnings


def _model_args_dict(model_args: Any) -> dict[str, Any]:
    if isinstance(model_args, dict):
        return model_args
    if isinstance(model_args, str) and model_args.strip():
        out = {}
        for part in model_args.split(","):
            if "=" in part:
                k, v = part.split("=", 1)
                out[k.strip()] = v.strip()
        return out
    return {}


def default_label(config: Mapping[str, Any], folder: Path) -> str:
    """A readable model label: the checkpoint's basename for hub/local models, else the backend name."""
    args = _model_args_dict(config.get("model_args"))
    pretrained = args.get("pretrained") or args.get("model")
    if isinstance(pretrained, str) and pretrained:
        return Path(pretrained.rstrip("/")).name or pretrained
    model = config.get("model")
    if isinstance(model, str) and model:
        return model
    return folder.name


def _load_folder(folder: _Folder, label: str | None) -> Run:
    warnings: list[str] = []
    tasks: dict[str, TaskResult] = {}
    task_ts: dict[str, str] = {}
    config: dict[str, Any] = {}
    for ts, path in sorted(folder.results):  # later invocations override earlier ones per task
        data = read_results_file(path)
        found, skipped = task_results(data, str(path))
        if skipped:
            logger.debug("%s: ignoring tasks that are not executable_cf tasks: %s", path, skipped)
        for name, result in found.items():
            tasks[name] = result
            task_ts[name] = ts
        if isinstance(data.get("config"), dict):
            config = data["config"]
        lim = config.get("limit")
        if lim is not None:
            shown = int(lim) if isinstance(lim, float) and lim.is_integer() and lim >= 1 else lim
            warnings.append(f"{path.name}: run with --limit {shown} (partial run)")
    # Samples: for each task the file from the same invocation as its results, else the newest.
    by_task: dict[str, list[tuple[str, Path]]] = {}
    for task, ts, path in folder.samples:
        by_task.setdefault(task, []).append((ts, path))
    samples: dict[str, list[Sample]] = {}
    sample_files: list[str] = []
    for task in sorted(by_task):
        if classify_task(task) is None:
            continue
        candidates = sorted(by_task[task])
        chosen = [p for ts, p in candidates if ts == task_ts.get(task)] or [candidates[-1][1]]
        rows, warns = read_samples_file(chosen[0], task)
        warnings.extend(warns)
        samples[task] = rows
        sample_files.append(str(chosen[0]))
    if not tasks and not samples:
        raise NoCfTasksError(
            f"{folder.path}: lm-eval outputs found but none for executable_cf tasks "
            f"(task names must start with {TASK_PREFIX!r})"
        )
    for task in sorted(set(tasks) - set(samples)):
        if folder.samples or not folder.results:
            warnings.append(f"{task}: no samples file (breakdowns and tags skip it)")
    for task in sorted(set(samples) - set(tasks)):
        warnings.append(f"{task}: no results JSON; metrics recomputed from {len(samples[task])} samples")
    if not folder.samples:
        warnings.append("no samples files (run lm_eval with --log_samples for breakdowns, tags and the judge)")
    return Run(
        label=label or default_label(config, folder.path),
        path=str(folder.path),
        model=str(config.get("model", "")),
        model_args=config.get("model_args"),
        config=config,
        tasks=tasks,
        samples=samples,
        result_files=[str(p) for _, p in sorted(folder.results)],
        sample_files=sample_files,
        warnings=warnings,
    )


def parse_run_arg(arg: str) -> tuple[str | None, str]:
    """``LABEL=PATH`` or ``PATH`` (a path containing '=' but existing as-is wins)."""
    if "=" in arg and not Path(arg).exists():
        label, path = arg.split("=", 1)
        if label:
            return label, path
    return None, arg


def load_runs(paths: Sequence[str | os.PathLike], labels: Sequence[str | None] | None = None) -> list[Run]:
    """Load every model run found under ``paths`` (folders or result/sample files).

    ``labels[i]`` names the run(s) of ``paths[i]``; by default the label is the
    model's checkpoint name or backend. Duplicate labels get the folder name
    appended so the tables stay unambiguous.
    """
    labels = list(labels) if labels is not None else [None] * len(paths)
    if len(labels) != len(paths):
        raise ValueError("labels: need one label (or None) per path")
    runs: list[Run] = []
    for raw, label in zip(paths, labels):
        folders = _discover(Path(raw))
        loaded: list[Run] = []
        foreign: list[NoCfTasksError] = []
        for folder in folders:
            lab = label if label is None or len(folders) == 1 else f"{label}/{folder.path.name}"
            try:
                loaded.append(_load_folder(folder, lab))
            except NoCfTasksError as exc:
                foreign.append(exc)
        if not loaded:
            raise foreign[0]
        for exc in foreign:  # other evaluations stored beside ours are not an error
            logger.warning("skipped %s", exc)
        runs.extend(loaded)
    seen: dict[str, int] = {}
    for run in runs:
        seen[run.label] = seen.get(run.label, 0) + 1
    for run in runs:
        if seen[run.label] > 1:
            run.label = f"{run.label} ({Path(run.path).name})"
    final = [r.label for r in runs]
    if len(set(final)) != len(final):  # same folder name too: fall back to full paths
        for run in runs:
            run.label = f"{run.label} [{run.path}]"
    for run in runs:
        for warning in run.warnings:
            logger.warning("%s: %s", run.label, warning)
    return runs
