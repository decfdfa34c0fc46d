"""Figures: counterfactual vs interventional exact match (the paper's Figure 5 view).

Matplotlib runs on the Agg backend through an explicit ``Figure`` (no
``pyplot`` global state), so plotting works headless and in threads. The
plotting functions return where each bar landed in the PNG (pixel boxes), so
tests -- and anyone post-processing the image -- can check the picture itself
rather than trust that a file exists.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any, Sequence

from cf_tasks.jsonl import atomic_write

COLORS = {"counterfactual": "#D55E00", "interventional": "#0072B2"}  # colour-blind safe pair
LABELS = {"counterfactual": "counterfactual", "interventional": "interventional"}


@dataclass(frozen=True)
class BarBox:
    """One drawn bar: what it shows and its pixel box in the PNG (origin top-left)."""

    run: str
    family: str
    variant: str
    value: float
    color: str
    left: float
    top: float
    right: float
    bottom: float


@dataclass(frozen=True)
class Figure:
    path: str
    width: int
    height: int
    bars: list[BarBox]


def _figure(width_in: float, height_in: float, dpi: int):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure as MplFigure

    fig = MplFigure(figsize=(width_in, height_in), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def _save(fig, path: str | os.PathLike, rects: list[tuple[Any, dict]]) -> Figure:
    fig.canvas.draw()
    width, height = (int(round(v)) for v in fig.canvas.get_width_height())
    bars = []
    for rect, meta in rects:
        box = rect.get_window_extent()
        bars.append(
            BarBox(
                meta["run"],
                meta["family"],
                meta["variant"],
                meta["value"],
                meta["color"],
                left=float(box.x0),
                top=float(height - box.y1),
                right=float(box.x1),
                bottom=float(height - box.y0),
            )
        )
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=fig.dpi)
    return Figure(str(path), width, height, bars)


def _finish(fig, title: str, handles, labels) -> None:
    """Title top-left, legend top-right, panels packed below with a fixed header height."""
    header_in = 0.3
    top = 1 - header_in / fig.get_figheight()
    fig.suptitle(title, fontsize=11, x=0.01, y=1 - 0.08 / fig.get_figheight(), ha="left", va="top")
    if handles:
        fig.legend(handles, labels, loc="upper right", bbox_to_anchor=(0.995, 1 - 0.04 / fig.get_figheight()),
                   ncols=min(len(labels), 4), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, top))


def plot_cf_vs_int(
    summary: Sequence[dict[str, Any]],
    path: str | os.PathLike,
    runs: Sequence[str] | None = None,
    families: Sequence[str] | None = None,
    title: str = "Counterfactual vs interventional exact match",
    dpi: int = 100,
) -> Figure:
    """Grouped bars: one panel per family, one group per model, CF and Int. bars side by side.

    ``summary`` rows are :func:`cf_tasks.report.tables.summary_rows` (fractions);
    missing values get no bar and an "n/a" mark.
    """
    if runs is None:
        runs = list(dict.fromkeys(r["run"] for r in summary))
    if families is None:
        from cf_tasks.report.loader import order_families

        families = order_families({r["family"] for r in summary})
    if not families or not runs:
        raise ValueError("summary: nothing to plot (no family/run with scores)")
    index = {(r["run"], r["family"]): r for r in summary}
    ncols = min(len(families), 5)
    nrows = math.ceil(len(families) / ncols)
    panel_w = max(2.8, 0.9 * len(runs) + 1.0)
    fig = _figure(panel_w * ncols, 3.0 * nrows + 0.7, dpi)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    rects: list[tuple[Any, dict]] = []
    width = 0.38
    for k, family in enumerate(families):
        ax = axes[k // ncols][k % ncols]
        for i, run in enumerate(runs):
            row = index.get((run, family), {})
            for j, variant in enumerate(("counterfactual", "interventional")):
                key = "cf_exact_match" if variant == "counterfactual" else "int_exact_match"
                value = row.get(key)
                x = i + (j - 0.5) * width
                if value is None:
                    ax.text(x, 2, "n/a", ha="center", va="bottom", fontsize=7, color="0.4", rotation=90)
                    continue
                (rect,) = ax.bar([x], [100 * value], width=width, color=COLORS[variant], edgecolor="none")
                rects.append((rect, {"run": run, "family": family, "variant": variant, "value": value, "color": COLORS[variant]}))
                ax.text(x, 100 * value + 1.5, f"{100 * value:.0f}", ha="center", va="bottom", fontsize=7)
        ax.set_title(family, fontsize=10)
        ax.set_xticks(range(len(runs)))
        ax.set_xticklabels(runs, rotation=20 if len(runs) > 2 else 0, ha="right" if len(runs) > 2 else "center", fontsize=8)
        ax.set_ylim(0, 110)
        ax.set_xlim(-0.6, len(runs) - 0.4)
        ax.set_ylabel("exact match (%)", fontsize=8)
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(axis="y", color="0.9", linewidth=0.6)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    for k in range(len(families), nrows * ncols):
        axes[k // ncols][k % ncols].set_visible(False)
    from matplotlib.patches import Patch

    handles = [Patch(color=COLORS[v], label=LABELS[v]) for v in COLORS]
    _finish(fig, title, handles, [LABELS[v] for v in COLORS])
    return _save(fig, path, rects)


def breakdown_is_informative(rows: Sequence[dict[str, Any]]) -> bool:
    """True when at least one family has two or more buckets to compare."""
    buckets: dict[str, set] = {}
    for r in rows:
        buckets.setdefault(r["family"], set()).add(r["bucket"])
    return any(len(b) >= 2 for b in buckets.values())


def plot_breakdown(
    rows: Sequence[dict[str, Any]],
    path: str | os.PathLike,
    field_name: str,
    variant: str = "counterfactual",
    dpi: int = 100,
) -> Figure | None:
    """Exact match by bucket of ``field_name`` (one line per model, one panel per family).

    None when the figure would carry no information: no rows, or every family
    has a single bucket (one point per panel; the table says the same).
    """
    rows = [r for r in rows if r["variant"] == variant]
    if not breakdown_is_informative(rows):
        return None
    from cf_tasks.report.loader import order_families

    families = order_families({r["family"] for r in rows})
    runs = list(dict.fromkeys(r["run"] for r in rows))
    ncols = min(len(families), 5)
    nrows = math.ceil(len(families) / ncols)
    fig = _figure(3.2 * ncols, 3.0 * nrows + 0.5, dpi)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for k, family in enumerate(families):
        ax = axes[k // ncols][k % ncols]
        fam = [r for r in rows if r["family"] == family]
        buckets = list(dict.fromkeys(r["bucket"] for r in fam))
        for run in runs:
            pts = [(buckets.index(r["bucket"]), 100 * r["exact_match"]) for r in fam if r["run"] == run]
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=run)
        ax.set_xticks(range(len(buckets)))
        ax.set_xticklabels(buckets, fontsize=8)
        ax.set_ylim(-5, 105)
        ax.set_title(family, fontsize=10)
        ax.set_xlabel(field_name, fontsize=8)
        ax.set_ylabel(f"{variant} EM (%)", fontsize=8)
        ax.grid(color="0.9", linewidth=0.6)
    for k in range(len(families), nrows * ncols):
        axes[k // ncols][k % ncols].set_visible(False)
    handles, labels = axes[0][0].get_legend_handles_labels()
    _finish(fig, f"{variant.capitalize()} exact match by {field_name}", handles, labels)
    return _save(fig, path, [])
