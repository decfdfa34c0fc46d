"""After training: lm-eval on ``executable_cf`` for the saved checkpoint, and the before/after table.

Runs ``lm_eval.simple_evaluate`` with an ``HFLM``. After training it runs in a
fresh single-process child (``cf-train evaluate --run-dir OUTPUT_DIR``, see
``training.launch``), so a training job needs no second command and a
multi-GPU launch cannot leave lm-eval waiting in collectives. Started under
``accelerate launch`` itself, ``cf-train evaluate`` uses lm-eval's own
data-parallel path (all ranks evaluate, rank 0 writes). It writes, under
``OUTPUT_DIR/eval/``::

    before.json, after.json          lm-eval "results" (+ n-samples, versions, config) per model
    samples_{before,after}.jsonl     the per-item records (``cf-train collect`` reads these too)
    table.md, table.json             metric | before | after | delta, one row per task and metric

The tasks come from the package's task folder (``cf_tasks/tasks``) plus an
optional ``include_path``; a run can name any lm-eval task.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

from cf_tasks.jsonl import atomic_write, write_json, write_jsonl

from training.config import EvalSpec, from_dict, read_yaml
from training.serialize import jsonable

logger = logging.getLogger(__name__)


def task_manager(include_path: str | None = None, include_defaults: bool = False):
    """A TaskManager that sees our packaged task YAMLs (and an optional extra folder).

    Indexing lm-eval's thousands of bundled task YAMLs takes seconds, so they are
    left out unless asked for (``include_defaults``; e.g. to add ``gsm8k``). Our
    folder is added only when the start-up hook (``plugins.lmeval_hook``) has not
    already exposed it: adding it twice just produces "overrides existing task" warnings.
    """
    import cf_tasks
    from lm_eval.tasks import TaskManager

    extra = [str(include_path)] if include_path else []
    manager = TaskManager(include_path=extra or None, include_defaults=include_defaults)
    if "executable_cf" not in manager.all_tasks:
        paths = [str(Path(cf_tasks.__file__).parent / "tasks"), *extra]
        manager = TaskManager(include_path=paths, include_defaults=include_defaults)
    return manager


def evaluate_model(model: str | Path, spec: EvalSpec) -> dict[str, Any] | None:
    """lm-eval results of one model directory (or hub id) on ``spec.tasks``; None on the non-zero ranks of a
    data-parallel lm-eval run (only rank 0 holds the results)."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM

    from cf_tasks.torch_device import default_device

    device = default_device()  # HFLM defaults to cuda even where there is none
    kwargs: dict[str, Any] = {"pretrained": str(model)}
    adapter_config = Path(model) / "adapter_config.json"
    if adapter_config.is_file():  # a LoRA adapter saved without merging: load its base model plus the adapter
        import json

        kwargs = {"pretrained": json.loads(adapter_config.read_text())["base_model_name_or_path"], "peft": str(model)}
    lm = HFLM(batch_size=spec.batch_size, device=device, **kwargs)
    gen_kwargs = {"max_gen_toks": spec.max_gen_toks} if spec.max_gen_toks else None
    results = simple_evaluate(
        model=lm, tasks=list(spec.tasks), task_manager=task_manager(spec.include_path, spec.include_default_tasks), limit=spec.limit,
        apply_chat_template=spec.apply_chat_template, gen_kwargs=gen_kwargs, log_samples=True,
        bootstrap_iters=0, random_seed=spec.seed, numpy_random_seed=spec.seed, torch_random_seed=spec.seed,
        fewshot_random_seed=spec.seed,
    )
    if results is None or lm.rank != 0:  # non-zero ranks of lm-eval's data-parallel run
        return None
    return results


def write_results(results: Mapping[str, Any], out_dir: Path, label: str) -> Path:
    """``{label}.json`` (aggregates) and ``samples_{label}.jsonl`` (per item) under ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = {key: jsonable(results.get(key)) for key in ("results", "groups", "n-samples", "versions", "config")
               if key in results}
    path = out_dir / f"{label}.json"
    write_json(path, summary)
    samples = results.get("samples") or {}
    rows = []
    for task in sorted(samples):
        for record in samples[task]:
            rows.append({"task": task, **jsonable(record)})
    write_jsonl(out_dir / f"samples_{label}.jsonl", rows)
    return path


def metric_rows(before: Mapping[str, Any] | None, after: Mapping[str, Any]) -> list[dict]:
    """One row per (task, metric) present in ``after`` (stderr and alias entries left out)."""
    rows = []
    after_results = after.get("results", {})
    before_results = (before or {}).get("results", {})
    for task in sorted(after_results):
        for key, value in sorted(after_results[task].items()):
            if key in ("alias", "sample_len") or "_stderr" in key or not isinstance(value, (int, float)) or isinstance(value, bool):
                continue
            old = before_results.get(task, {}).get(key)
            old = old if isinstance(old, (int, float)) and not isinstance(old, bool) else None
            rows.append({"task": task, "metric": key.split(",")[0], "filter": key.partition(",")[2] or "none",
                         "before": old, "after": float(value),
                         "delta": None if old is None else float(value) - float(old)})
    return rows


def format_table(rows: list[dict], before_name: str = "before", after_name: str = "after") -> str:
    """A Markdown table (percentages, as the paper reports EM and F1)."""

    def pct(x: float | None) -> str:
        return "" if x is None else f"{100.0 * x:.1f}"

    lines = [f"| task | metric | {before_name} | {after_name} | delta |", "|---|---|---:|---:|---:|"]
    for r in rows:
        delta = "" if r["delta"] is None else f"{100.0 * r['delta']:+.1f}"
        lines.append(f"| {r['task']} | {r['metric']} | {pct(r['before'])} | {pct(r['after'])} | {delta} |")
    return "\n".join(lines) + "\n"


def evaluate_before_after(baseline: str | Path | None, trained: str | Path, spec: EvalSpec,
                          out_dir: str | Path) -> Path | None:
    """Evaluate the trained model (and the starting model when ``spec.baseline``); write results and table.

    Returns the output folder, or None on a rank that does not write (lm-eval data-parallel runs).
    """
    out_dir = Path(out_dir)
    before = None
    if baseline is not None and spec.baseline:
        logger.info("evaluating the starting model %s on %s", baseline, ", ".join(spec.tasks))
        before = evaluate_model(baseline, spec)
        if before is not None:
            write_results(before, out_dir, "before")
    logger.info("evaluating the trained model %s on %s", trained, ", ".join(spec.tasks))
    after = evaluate_model(trained, spec)
    if after is None:
        return None
    write_results(after, out_dir, "after")
    rows = metric_rows(before, after)
    write_json(out_dir / "table.json", {"before_model": None if before is None else str(baseline),
                                        "after_model": str(trained), "rows": jsonable(rows)})
    table = format_table(rows)
    with atomic_write(out_dir / "table.md") as handle:
        handle.write(table)
    logger.info("before/after:\n%s", table)
    return out_dir


def evaluate_run(run_dir: str | Path) -> Path | None:
    """The post-training evaluation of a finished run, from its ``run_config.yaml`` and ``run_info.json``."""
    import json

    run_dir = Path(run_dir)
    config = read_yaml(run_dir / "run_config.yaml")
    spec = from_dict(EvalSpec, config.get("evaluate") or {}, source=str(run_dir / "run_config.yaml"), path="evaluate")
    info_path = run_dir / "run_info.json"
    final = json.loads(info_path.read_text(encoding="utf-8")).get("final_model") if info_path.is_file() else None
    final = Path(final) if final else run_dir / "final"
    if not final.is_dir():
        raise FileNotFoundError(f"{run_dir}: no trained model at {final} (has the run finished?)")
    return evaluate_before_after(config.get("model"), final, spec, run_dir / "eval")
