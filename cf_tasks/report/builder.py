"""Assemble a report folder from loaded runs: markdown, PNGs, per-sample JSONL, tables.

Layout of ``OUT`` (every file written atomically)::

    report.md                 the report (tables inline, figures linked)
    cf_vs_int.png             counterfactual vs interventional EM per model and family
    by_n_consistent.png       counterfactual EM by number of consistent latent values
    by_level.png              counterfactual EM by difficulty level
    samples.jsonl             one row per logged sample (metrics, parsed answer, tags, judge)
    tables/*.jsonl            the aggregate tables as rows (``datasets``-loadable)
    judge_cache.jsonl         judge verdicts keyed by judge, rubric and response (resumable)
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from statistics import fmean
from typing import Any, Sequence

from cf_tasks.jsonl import atomic_write, iter_jsonl, write_jsonl
from cf_tasks.report import tables as T
from cf_tasks.report.loader import Run, Sample, order_families

logger = logging.getLogger(__name__)


@dataclass
class ReportOptions:
    """What to compute besides the tables and the main figure."""

    tags: bool = field(default=False, metadata={"help": "compute the heuristic failure-mode tags"})
    tag_config: Any = field(default=None, metadata={"help": "a cf_tasks.report.tags.TagConfig (None: defaults)"})
    judge: Any = field(default=None, metadata={"help": "a judge backend (cf_tasks.report.judge); None: no judge"})
    rubric: str = field(default="judge_v1", metadata={"help": "rubric version or path"})
    judge_limit: int | None = field(default=None, metadata={"help": "judge at most this many samples per run and task"})
    judge_batch_size: int = field(default=16, metadata={"help": "prompts sent to the judge per call"})
    title: str = field(default="Executable counterfactuals report", metadata={"help": "report title"})
    progress: bool = field(default=False, metadata={"help": "show a progress bar while judging"})

    def __post_init__(self) -> None:
        if self.judge_limit is not None and self.judge_limit < 0:
            raise ValueError("judge_limit: must be >= 0")
        if self.judge_batch_size < 1:
            raise ValueError("judge_batch_size: must be >= 1")


@dataclass
class ReportResult:
    out: Path
    report_path: Path
    figures: dict[str, Any]
    sample_rows: list[dict[str, Any]]
    tables: dict[str, list[dict[str, Any]]]


def _sample_row(run: Run, s: Sample) -> dict[str, Any]:
    return {
        "run": run.label,
        "task": s.task,
        "family": s.family,
        "variant": s.variant,
        "doc_id": s.doc_id,
        "id": s.doc.get("id"),
        "level": s.doc.get("level"),
        "n_consistent": s.doc.get("n_consistent"),
        "exact_match": s.em,
        "f1": s.f1,
        "gold": s.doc.get("answer"),
        "prior_answer": s.doc.get("prior_answer"),
        "response": s.response,
        "source": f"{s.source}:{s.line}",
    }


def _cache_key(judge_name: str, rubric_version: str, s: Sample) -> str:
    h = hashlib.sha256()
    for part in (judge_name, rubric_version, str(s.doc.get("prompt", s.doc.get("id"))), s.response):
        h.update(part.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


def _run_judge(runs: Sequence[Run], rows_by_sample: dict[int, dict], options: ReportOptions, out: Path) -> None:
    from cf_tasks.report.judge import judge_responses, load_rubric

    rubric = load_rubric(options.rubric)
    judge = options.judge
    cache_path = out / "judge_cache.jsonl"
    cache: dict[str, dict] = {}
    if cache_path.exists():
        for _, row in iter_jsonl(cache_path):
            cache[row["key"]] = row
    todo: list[tuple[str, Sample]] = []
    chosen: list[tuple[str, Sample]] = []
    for run in runs:
        for task in sorted(run.samples):
            picked = run.samples[task] if options.judge_limit is None else run.samples[task][: options.judge_limit]
            for s in picked:
                key = _cache_key(judge.name, rubric.version, s)
                chosen.append((key, s))
                if key not in cache:
                    todo.append((key, s))
    logger.info("judge %s: %d responses, %d cached, %d to judge", judge.name, len(chosen), len(chosen) - len(todo), len(todo))

    def checkpoint(start: int, verdicts) -> None:
        for (key, _s), v in zip(todo[start: start + len(verdicts)], verdicts):
            cache[key] = {
                "key": key,
                "judge": judge.name,
                "rubric": rubric.version,
                "planning": v.planning,
                "execution": v.execution,
                "error": v.error,
                "reply": v.reply,
            }
        write_jsonl(cache_path, [cache[k] for k in sorted(cache)])

    if todo:
        judge_responses(
            judge, [(s.doc, s.response) for _, s in todo], rubric, options.judge_batch_size, checkpoint, options.progress
        )
    for key, s in chosen:
        verdict = cache[key]
        row = rows_by_sample[id(s)]
        row["judge"] = {k: verdict[k] for k in ("judge", "rubric", "planning", "execution", "error")}


def judge_rows(sample_rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean planning/execution per (run, family, variant) -- the paper's Figure 7 numbers."""
    groups: dict[tuple, list[dict]] = {}
    for row in sample_rows:
        if "judge" in row:
            groups.setdefault((row["run"], row["family"], row["variant"]), []).append(row["judge"])
    out = []
    for (run, family, variant), verdicts in groups.items():
        ok = [v for v in verdicts if v["error"] is None]
        out.append(
            {
                "run": run,
                "family": family,
                "variant": variant,
                "judge": verdicts[0]["judge"],
                "rubric": verdicts[0]["rubric"],
                "n": len(verdicts),
                "unparsed": len(verdicts) - len(ok),
                "planning": fmean(v["planning"] for v in ok) if ok else None,
                "execution": fmean(v["execution"] for v in ok) if ok else None,
            }
        )
    return out


def _sorted_group_rows(rows: list[dict[str, Any]], runs: Sequence[Run]) -> list[dict[str, Any]]:
    run_order = {r.label: i for i, r in enumerate(runs)}
    fam = {f: i for i, f in enumerate(order_families({r["family"] for r in rows}))}
    return sorted(rows, key=lambda r: (run_order.get(r["run"], 0), fam[r["family"]], r["variant"]))


def _fmt_score(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f}"


def build_report(runs: Sequence[Run], out: str | Path, options: ReportOptions | None = None) -> ReportResult:
    """Compute everything and write the report folder; returns what was written."""
    from cf_tasks.report import plot

    options = options or ReportOptions()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    samples = [(run, s) for run in runs for s in run.all_samples()]
    sample_rows = [_sample_row(run, s) for run, s in samples]
    rows_by_sample = {id(s): row for (run, s), row in zip(samples, sample_rows)}

    if options.tags:
        from cf_tasks.report.tags import TagConfig, tag_samples

        config = options.tag_config or TagConfig()
        for run in runs:
            run_samples = run.all_samples()
            for s, result in zip(run_samples, tag_samples(run_samples, config, lambda x: (x.family, x.variant))):
                row = rows_by_sample[id(s)]
                row["parsed_answer"] = result.parsed_answer
                row["tags"] = list(result.tags)
                row["tag_evidence"] = result.evidence
    if options.judge is not None:
        _run_judge(runs, rows_by_sample, options, out)

    tables: dict[str, list[dict[str, Any]]] = {
        "scores": [s.to_json() for s in T.scores(runs)],
        "summary": T.summary_rows(runs),
        "by_n_consistent": T.breakdown_rows(runs, "n_consistent"),
        "by_level": T.breakdown_rows(runs, "level"),
    }
    if options.tags:
        from cf_tasks.report.tags import tag_rates

        tables["tags"] = _sorted_group_rows(tag_rates(sample_rows), runs)
    if options.judge is not None:
        tables["judge"] = _sorted_group_rows(judge_rows(sample_rows), runs)
    for name, rows in tables.items():
        write_jsonl(out / "tables" / f"{name}.jsonl", rows)
    write_jsonl(out / "samples.jsonl", sample_rows)

    figures: dict[str, Any] = {}
    if any(r["cf_exact_match"] is not None or r["int_exact_match"] is not None for r in tables["summary"]):
        figures["cf_vs_int"] = plot.plot_cf_vs_int(tables["summary"], out / "cf_vs_int.png", runs=[r.label for r in runs])
    for field_name in ("n_consistent", "level"):
        fig = plot.plot_breakdown(tables[f"by_{field_name}"], out / f"by_{field_name}.png", field_name)
        if fig is not None:
            figures[f"by_{field_name}"] = fig

    text = render_markdown(runs, tables, figures, options)
    report_path = out / "report.md"
    with atomic_write(report_path) as handle:
        handle.write(text)
    return ReportResult(out, report_path, figures, sample_rows, tables)


def _runs_table(runs: Sequence[Run]) -> T.Table:
    table = T.Table("Runs", ["Model", "Backend", "Model args", "Limit", "Tasks", "Samples", "Folder"])
    for run in runs:
        args = run.model_args if isinstance(run.model_args, str) else ",".join(f"{k}={v}" for k, v in sorted((run.model_args or {}).items()))
        limit = run.config.get("limit")
        table.rows.append(
            [
                run.label,
                run.model or "—",
                args or "—",
                "—" if limit is None else (str(int(limit)) if float(limit).is_integer() and limit >= 1 else str(limit)),
                str(len(set(run.tasks) | set(run.samples))),
                str(sum(len(v) for v in run.samples.values())),
                run.path,
            ]
        )
    return table


def render_markdown(runs: Sequence[Run], tables: dict[str, list], figures: dict[str, Any], options: ReportOptions) -> str:
    parts: list[str] = [f"# {options.title}", ""]
    parts += [f"Generated by `cf-report` from {len(runs)} run(s). Exact match (EM) and F1 in %; "
              "**drop** = interventional EM − counterfactual EM, in points.", ""]
    parts += ["## Runs", "", _runs_table(runs).to_markdown(), ""]
    parts += ["## Counterfactual vs interventional", ""]
    if "cf_vs_int" in figures:
        parts += ["![counterfactual vs interventional exact match](cf_vs_int.png)", ""]
    overview = T.overview_table(runs)
    parts += [f"**{overview.title}**", "", overview.to_markdown(), "", overview.note, ""]
    parts += ["## Per family", ""]
    for table in T.family_tables(runs):
        parts += [f"### {table.title}", "", table.to_markdown(), ""]
    for field_name, heading in (
        ("n_consistent", "By number of latent values consistent with the observation (`n_consistent`)"),
        ("level", "By difficulty level"),
    ):
        parts += [f"## {heading}", ""]
        breakdown = T.breakdown_tables(runs, field_name)
        if not breakdown:
            parts += [f"No logged samples with `{field_name}` (run lm_eval with `--log_samples`).", ""]
            continue
        if f"by_{field_name}" in figures:
            parts += [f"![exact match by {field_name}](by_{field_name}.png)", ""]
        elif any(r["variant"] == "counterfactual" for r in tables[f"by_{field_name}"]):
            parts += [f"No figure: no family has two `{field_name}` values in these runs, so a plot would show "
                      "one point per panel (the table has the numbers).", ""]
        for table in breakdown:
            parts += [f"**{table.title}**", "", table.to_markdown(), ""]
    if "tags" in tables:
        from cf_tasks.report.tags import TAGS

        parts += ["## Failure-mode tags (heuristic, no judge)", ""]
        parts += ["Share of responses (%) carrying each tag; rules in `cf_tasks/report/tags.py`. "
                  "`interventional_answer`: the answer equals the prior set (observation ignored) while the gold differs.", ""]
        table = T.Table("tags", ["Model", "Family", "Variant", "n"] + list(TAGS))
        for r in tables["tags"]:
            table.rows.append([r["run"], r["family"], r["variant"], str(r["n"])] + [T.pct(r[t]) for t in TAGS])
        parts += [table.to_markdown(), ""]
    if "judge" in tables:
        parts += ["## Judge scores (1–5)", ""]
        rows = tables["judge"]
        if rows:
            parts += [f"Judge `{rows[0]['judge']}`, rubric `{rows[0]['rubric']}`.", ""]
        table = T.Table("judge", ["Model", "Family", "Variant", "n", "Planning", "Execution", "Unparsed"])
        for r in rows:
            table.rows.append([r["run"], r["family"], r["variant"], str(r["n"]), _fmt_score(r["planning"]),
                               _fmt_score(r["execution"]), str(r["unparsed"])])
        parts += [table.to_markdown(), ""]
    warnings = [(run.label, w) for run in runs for w in run.warnings]
    if warnings:
        parts += ["## Notes on the inputs", ""]
        parts += [f"- {label}: {w}" for label, w in warnings]
        parts += [""]
    parts += ["Files: `samples.jsonl` (per sample), `tables/*.jsonl` (aggregates).", ""]
    return "\n".join(parts)
