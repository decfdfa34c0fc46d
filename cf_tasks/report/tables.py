"""Aggregate tables: exact match, F1 and the counterfactual drop per family and variant.

Numbers come from the results JSON when lm-eval wrote one (those are the
numbers lm-eval printed, with its stderr) and are recomputed from the logged
samples otherwise, so partial runs still report. Every table is a plain
:class:`Table` (title, headers, rows of cells) rendered to markdown by the CLI
and written as JSONL rows; values are fractions internally, percent on screen.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from statistics import fmean
from typing import Any, Callable, Iterable, Sequence

from cf_tasks.report.loader import Run, Sample, order_families

_NUMERIC_RE = re.compile(r"^(?:—|[-+]?\d+(?:\.\d+)?(?: \([^)]*\))?)$")
VARIANT_SHORT = {"counterfactual": "CF", "interventional": "Int."}


@dataclass(frozen=True)
class Score:
    """Exact match / F1 of one run on one family and variant."""

    run: str
    family: str
    variant: str
    em: float | None
    f1: float | None
    n: int | None
    em_stderr: float | None
    source: str  # "results" or "samples"

    def to_json(self) -> dict[str, Any]:
        return {
            "run": self.run,
            "family": self.family,
            "variant": self.variant,
            "exact_match": self.em,
            "f1": self.f1,
            "n": self.n,
            "exact_match_stderr": self.em_stderr,
            "source": self.source,
        }


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    note: str = ""

    def to_markdown(self) -> str:
        def esc(cell: str) -> str:
            return str(cell).replace("|", "\\|").replace("\n", " ")

        lines = [f"| {' | '.join(esc(h) for h in self.headers)} |"]
        # Right-align columns whose cells are all numbers ("25.0", "+50.0", "25.0 (4)", "—").
        align = []
        for i in range(len(self.headers)):
            cells = [row[i] for row in self.rows if i < len(row)]
            numeric = bool(cells) and i > 0 and all(_NUMERIC_RE.match(str(c)) for c in cells)
            align.append("---:" if numeric else "---")
        lines.append(f"| {' | '.join(align)} |")
        for row in self.rows:
            lines.append(f"| {' | '.join(esc(c) for c in row)} |")
        return "\n".join(lines)


def pct(value: float | None, digits: int = 1) -> str:
    return "—" if value is None else f"{100 * value:.{digits}f}"


def pts(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:+.1f}"


def _mean(values: Iterable[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return fmean(vals) if vals else None


# ---------------------------------------------------------------------------
# scores
# ---------------------------------------------------------------------------
def scores(runs: Sequence[Run]) -> list[Score]:
    """One :class:`Score` per (run, family, variant) present in the run."""
    out: list[Score] = []
    for run in runs:
        keys: dict[tuple[str, str], Score] = {}
        for result in run.tasks.values():
            keys[(result.family, result.variant)] = Score(
                run.label,
                result.family,
                result.variant,
                result.em,
                result.f1,
                result.n,
                next((result.stderr[m] for m in ("exact_match", "acc") if m in result.stderr), None),
                "results",
            )
        by_kind: dict[tuple[str, str], list[Sample]] = {}
        for sample in run.all_samples():
            by_kind.setdefault((sample.family, sample.variant), []).append(sample)
        for key, group in by_kind.items():
            if key in keys:
                continue
            ems = [s.em for s in group if s.em is not None]
            em = fmean(ems) if ems else None
            stderr = None
            if ems and len(ems) > 1:
                stderr = math.sqrt(em * (1 - em) / (len(ems) - 1)) if em is not None else None
            keys[key] = Score(run.label, key[0], key[1], em, _mean(s.f1 for s in group), len(group), stderr, "samples")
        for family in order_families({k[0] for k in keys}):
            for variant in ("counterfactual", "interventional"):
                if (family, variant) in keys:
                    out.append(keys[(family, variant)])
        for key in sorted(k for k in keys if k[1] not in VARIANT_SHORT):
            out.append(keys[key])
    return out


def summary_rows(runs: Sequence[Run]) -> list[dict[str, Any]]:
    """Per (run, family): counterfactual and interventional EM/F1 and the drop (Int. EM - CF EM)."""
    index = {(s.run, s.family, s.variant): s for s in scores(runs)}
    rows: list[dict[str, Any]] = []
    for run in runs:
        for family in order_families({f for (r, f, _v) in index if r == run.label}):
            cf = index.get((run.label, family, "counterfactual"))
            it = index.get((run.label, family, "interventional"))
            drop = it.em - cf.em if cf and it and cf.em is not None and it.em is not None else None
            rows.append(
                {
                    "run": run.label,
                    "family": family,
                    "cf_exact_match": cf.em if cf else None,
                    "cf_f1": cf.f1 if cf else None,
                    "cf_n": cf.n if cf else None,
                    "int_exact_match": it.em if it else None,
                    "int_f1": it.f1 if it else None,
                    "int_n": it.n if it else None,
                    "drop": drop,
                }
            )
    return rows


def _n(v: int | None) -> str:
    return "—" if v is None else str(v)


def family_tables(runs: Sequence[Run]) -> list[Table]:
    """One table per family: a row per model with CF/Int. EM and F1 and the drop."""
    rows = summary_rows(runs)
    tables = []
    for family in order_families({r["family"] for r in rows}):
        table = Table(
            f"{family}",
            ["Model", "CF EM", "CF F1", "Int. EM", "Int. F1", "Drop (pts)", "n CF", "n Int."],
        )
        for r in rows:
            if r["family"] != family:
                continue
            table.rows.append(
                [
                    r["run"],
                    pct(r["cf_exact_match"]),
                    pct(r["cf_f1"]),
                    pct(r["int_exact_match"]),
                    pct(r["int_f1"]),
                    pts(r["drop"]),
                    _n(r["cf_n"]),
                    _n(r["int_n"]),
                ]
            )
        tables.append(table)
    return tables


def overview_table(runs: Sequence[Run]) -> Table:
    """Counterfactual EM with the drop in brackets, one column per family (the paper's Figure 5 view)."""
    rows = summary_rows(runs)
    families = order_families({r["family"] for r in rows})
    table = Table(
        "Counterfactual exact match % (drop vs interventional, pts)",
        ["Model"] + families,
        note="Drop = interventional EM - counterfactual EM; positive means the counterfactual question is harder.",
    )
    for run in runs:
        cells = [run.label]
        for family in families:
            r = next((x for x in rows if x["run"] == run.label and x["family"] == family), None)
            if r is None:
                cells.append("—")
                continue
            cell = pct(r["cf_exact_match"]) if r["cf_exact_match"] is not None else "—"
            if r["drop"] is not None:
                cell += f" ({pts(r['drop'])})"
            cells.append(cell)
        table.rows.append(cells)
    return table


# ---------------------------------------------------------------------------
# breakdowns
# ---------------------------------------------------------------------------
def pow2_bucket(value: Any) -> tuple[int, str] | None:
    """1, 2, 3-4, 5-8, 9-16, ...: keeps the informative small counts exact, bounds the rest."""
    try:
        n = int(value)
    except (TypeError, ValueError):
        return None
    if n <= 2:
        return (n, str(n))
    hi = 1 << (n - 1).bit_length()
    lo = hi // 2 + 1
    return (lo, f"{lo}–{hi}")


def exact_bucket(value: Any) -> tuple[Any, str] | None:
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (value, str(value))
    return (float("inf"), str(value))


LEVEL_ORDER = ("trivial", "easy", "medium", "hard", "expert")


def level_bucket(value: Any) -> tuple[Any, str] | None:
    """Named levels in difficulty order (easy < medium < hard), numbers numerically, others last."""
    if isinstance(value, str) and value.lower() in LEVEL_ORDER:
        return (LEVEL_ORDER.index(value.lower()), value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return (len(LEVEL_ORDER) + value, str(value))
    return exact_bucket(value)


BUCKETS: dict[str, Callable[[Any], tuple[Any, str] | None]] = {
    "n_consistent": pow2_bucket,
    "level": level_bucket,
}


def breakdown_rows(runs: Sequence[Run], field_name: str) -> list[dict[str, Any]]:
    """Mean EM per (run, family, variant, bucket of doc[field_name]) from the logged samples."""
    bucket = BUCKETS.get(field_name, exact_bucket)
    groups: dict[tuple, list[Sample]] = {}
    order: dict[str, Any] = {}
    for run in runs:
        for s in run.all_samples():
            b = bucket(s.doc.get(field_name))
            if b is None or s.em is None:
                continue
            order[b[1]] = b[0]
            groups.setdefault((run.label, s.family, s.variant, b[1]), []).append(s)
    rows = []
    run_order = {r.label: i for i, r in enumerate(runs)}
    fam_order = {f: i for i, f in enumerate(order_families({k[1] for k in groups}))}
    for key in sorted(groups, key=lambda k: (fam_order[k[1]], _sortable(order[k[3]]), k[3], k[2], run_order[k[0]])):
        group = groups[key]
        rows.append(
            {
                "run": key[0],
                "family": key[1],
                "variant": key[2],
                "field": field_name,
                "bucket": key[3],
                "exact_match": fmean(s.em for s in group),
                "f1": _mean(s.f1 for s in group),
                "n": len(group),
            }
        )
    return rows


def _sortable(v: Any) -> tuple:
    return (0, v, "") if isinstance(v, (int, float)) else (1, 0, str(v))


def breakdown_tables(runs: Sequence[Run], field_name: str) -> list[Table]:
    """Per family: a row per bucket, a column per (model, variant) with 'EM% (n)'."""
    rows = breakdown_rows(runs, field_name)
    tables = []
    for family in order_families({r["family"] for r in rows}):
        fam_rows = [r for r in rows if r["family"] == family]
        variants = [v for v in ("counterfactual", "interventional") if any(r["variant"] == v for r in fam_rows)]
        columns = [(run.label, v) for run in runs for v in variants if any(r["run"] == run.label and r["variant"] == v for r in fam_rows)]
        buckets: list[str] = []
        for r in fam_rows:
            if r["bucket"] not in buckets:
                buckets.append(r["bucket"])
        table = Table(
            f"{family}: exact match % by {field_name} (n)",
            [field_name] + [f"{label} {VARIANT_SHORT.get(v, v)}" for label, v in columns],
        )
        cell = {(r["run"], r["variant"], r["bucket"]): r for r in fam_rows}
        for b in buckets:
            line = [b]
            for label, v in columns:
                r = cell.get((label, v, b))
                line.append("—" if r is None else f"{pct(r['exact_match'])} ({r['n']})")
            table.rows.append(line)
        tables.append(table)
    return tables
