"""What a selection looks like per task: the paper's AID and THI diagnostics, as JSON, text and a PNG.

- ``average_influence``: the selected set's mean influence on each task (the
  AID, the mean selected row, averaged over each task's columns), next to the
  same average over the whole pool for reference;
- ``task_histogram``: how many selected rows have each task as their argmax
  (THI). For the instance-wise methods a row's task is the task of its argmax
  validation column; for ``task_max`` it is the task with the highest mean, as
  in the paper.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np

from selection.bids.greedy import task_means


def compute_diagnostics(M: np.ndarray, indices: Sequence[int], task_names: Sequence[str], task_ids: np.ndarray, *,
                        method: str, normalized: bool) -> dict[str, Any]:
    """Diagnostics of ``indices`` on ``M`` (the matrix the method selected on)."""
    idx = np.asarray(indices, dtype=np.int64)
    K = len(task_names)
    selected_rows = np.asarray(M[np.sort(idx)], dtype=np.float64)
    per_task_selected = task_means(selected_rows, task_ids, K)  # (B, K)
    pool_task = np.zeros(K)
    for start in range(0, M.shape[0], 65536):
        pool_task += task_means(np.asarray(M[start:start + 65536]), task_ids, K).sum(axis=0)
    pool_task /= M.shape[0]
    if method == "task_max":
        row_task = per_task_selected.argmax(axis=1)
    else:
        row_task = task_ids[selected_rows.argmax(axis=1)]
    hist = np.bincount(row_task, minlength=K)
    return {
        "matrix": "zscore" if normalized else "raw",
        "tasks": list(task_names),
        "average_influence": {t: float(v) for t, v in zip(task_names, per_task_selected.mean(axis=0))},
        "pool_average_influence": {t: float(v) for t, v in zip(task_names, pool_task)},
        "task_histogram": {t: int(c) for t, c in zip(task_names, hist)},
        "histogram_rule": "argmax task (per-task mean)" if method == "task_max" else "task of argmax column",
    }


def format_diagnostics(diag: dict[str, Any]) -> str:
    """A small text table: task, selected count, selected-set and pool average influence."""
    width = max(4, *(len(t) for t in diag["tasks"]))
    lines = [f"{'task':<{width}}  {'selected':>8}  {'avg infl (sel)':>14}  {'avg infl (pool)':>15}"]
    for task in diag["tasks"]:
        lines.append(f"{task:<{width}}  {diag['task_histogram'][task]:>8d}  "
                     f"{diag['average_influence'][task]:>14.4f}  {diag['pool_average_influence'][task]:>15.4f}")
    lines.append(f"(influence on the {diag['matrix']} matrix; histogram: {diag['histogram_rule']})")
    return "\n".join(lines)


def diagnostics_figure(diag: dict[str, Any], *, title: str = ""):
    """Two panels: task histogram (integer ticks) and per-task average influence, selected vs pool.

    The pool's average is drawn as a dashed level line, not a bar: on the
    z-scored matrix it is exactly 0 for every task, and a bar of height 0
    cannot be seen.
    """
    from matplotlib.figure import Figure  # no pyplot: no global backend state, renders with Agg
    from matplotlib.ticker import MaxNLocator

    tasks = diag["tasks"]
    x = np.arange(len(tasks))
    fig = Figure(figsize=(max(8.0, 2.4 * len(tasks)), 4.0))
    ax1, ax2 = fig.subplots(1, 2)
    counts = [diag["task_histogram"][t] for t in tasks]
    bars = ax1.bar(x, counts, color="tab:blue")
    ax1.bar_label(bars, labels=[str(c) for c in counts])
    ax1.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax1.set_ylim(0, max(1, max(counts)) * 1.15)
    ax1.set_title("selected rows by argmax task")
    ax1.set_xticks(x, tasks, rotation=30, ha="right")
    ax1.set_ylabel("rows")
    selected = [diag["average_influence"][t] for t in tasks]
    pool_values = [diag["pool_average_influence"][t] for t in tasks]
    ax2.bar(x, selected, 0.6, label="selected", color="tab:orange")
    pool = "pool (z-scored: 0)" if diag["matrix"] == "zscore" else "pool"
    ax2.hlines(pool_values, x - 0.4, x + 0.4, colors="black", linestyles="--", linewidth=2, label=pool, zorder=3)
    low, high = min(0.0, *selected, *pool_values), max(0.0, *selected, *pool_values)
    span = (high - low) or 1.0
    ax2.set_ylim(low - 0.05 * span, high + 0.3 * span)  # headroom for the legend
    ax2.axhline(0.0, color="gray", linewidth=0.5)
    ax2.set_title(f"average influence per task ({diag['matrix']})")
    ax2.set_xticks(x, tasks, rotation=30, ha="right")
    ax2.legend(loc="upper right", ncol=2)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def plot_diagnostics(diag: dict[str, Any], path: str | Path, *, title: str = "") -> Path:
    """:func:`diagnostics_figure` saved as a PNG, written atomically."""
    from cf_tasks.jsonl import atomic_write

    fig = diagnostics_figure(diag, title=title)
    path = Path(path)
    with atomic_write(path, "wb") as handle:
        fig.savefig(handle, format="png", dpi=100)
    return path
