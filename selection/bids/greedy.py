"""BIDS selection and the paper's baselines on an influence matrix ``A`` (train x validation).

BIDS (Dai et al., 2025, Algorithm 1): z-score every column of ``A`` over all
training rows, then greedily add the row ``i`` maximising
``Delta_i = max_j (Z[i, j] - m[j])`` where ``m`` is the mean row of the rows
selected so far (``m = 0`` before the first pick, so the first pick is
``argmax_i max_j Z[i, j]``). Ties go to the lowest row index.

Why the fast version is exact: ``max_i max_j (Z[i, j] - m[j])`` equals
``max_j (max_{i unselected} Z[i, j] - m[j])``, and floating-point subtraction is
monotonic, so the best value per column comes from the column's best unselected
row. Each column keeps its rows sorted best first and a pointer to its best
unselected row; only a prefix is sorted up front and extended when a pointer
runs deep (never past ``B`` rows: at most ``B - 1`` are selected before the
last pick). A step costs O(V) plus amortised pointer moves, instead of the
naive O(D V). Rows whose value rounds to the same
difference as the column's best (``fl(a - m) == fl(b - m)`` for ``a != b``) are
collected explicitly, so ties are resolved exactly as the naive loop resolves
them, bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from cf_tasks.progress import progress_bar

METHODS = ("bids", "task_max", "instance_max", "sum", "random")
# The paper normalises for BIDS only; its Task-max/Instance-max/Sum baselines use the raw matrix.
DEFAULT_NORMALIZE = {"bids": True, "task_max": False, "instance_max": False, "sum": False, "random": False}

_COLUMN_BLOCK = 8  # columns transposed to contiguous memory at a time (small: cache-friendly copy)
_ROW_CHUNK = 65536  # rows per chunk for the column statistics (bounded temporary memory)


@dataclass
class GreedyResult:
    """Selected row indices in selection order and the gain ``Delta`` of each pick."""

    indices: np.ndarray
    gains: np.ndarray


def check_matrix(A: np.ndarray, name: str = "influence matrix") -> None:
    """Raise ``ValueError`` for a matrix the selection cannot use (wrong rank, empty, NaN/inf)."""
    if A.ndim != 2:
        raise ValueError(f"{name} must be 2-D (train x validation), got shape {A.shape}")
    if A.shape[0] == 0 or A.shape[1] == 0:
        raise ValueError(f"{name} is empty: shape {A.shape}")
    for start in range(0, A.shape[0], _ROW_CHUNK):
        block = np.asarray(A[start:start + _ROW_CHUNK])
        if not np.isfinite(block).all():
            bad = start + int(np.argwhere(~np.isfinite(block))[0][0])
            raise ValueError(f"{name} has a non-finite value in row {bad}")


def zscore_columns(A: np.ndarray, *, out: np.ndarray | None = None) -> np.ndarray:
    """Column z-scores over all rows (sample standard deviation, ``ddof=1``), as float64.

    ``out`` may be ``A`` itself (float64) for an in-place transform. A constant
    column (or a single row) has no spread; it becomes all zeros rather than NaN,
    so it can never be the arg-max of a pick by itself.
    """
    D, V = A.shape
    if out is None:
        out = np.array(A, dtype=np.float64, copy=True)
    elif out is not A:
        out[...] = A
    mean = np.zeros(V, dtype=np.float64)
    for start in range(0, D, _ROW_CHUNK):
        mean += out[start:start + _ROW_CHUNK].sum(axis=0)
    mean /= D
    sq = np.zeros(V, dtype=np.float64)
    for start in range(0, D, _ROW_CHUNK):
        block = out[start:start + _ROW_CHUNK]
        block -= mean
        sq += np.einsum("ij,ij->j", block, block)
    std = np.sqrt(sq / (D - 1)) if D > 1 else np.zeros(V)
    scale = np.divide(1.0, std, out=np.zeros(V), where=std > 0)
    for start in range(0, D, _ROW_CHUNK):
        out[start:start + _ROW_CHUNK] *= scale
    return out


def _top_rows(col: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` largest entries of ``col``, sorted by (value desc, index asc)."""
    D = col.shape[0]
    if k < D:
        threshold = np.partition(col, D - k)[D - k]  # the k-th largest value
        cand = np.flatnonzero(col >= threshold)  # ascending indices
        if cand.size > k:  # ties at the threshold: keep the lowest-index ones
            above = np.flatnonzero(col > threshold)
            tied = np.flatnonzero(col == threshold)[: k - above.size]
            cand = np.sort(np.concatenate([above, tied]))
    else:
        cand = np.arange(D)
    values = col[cand]
    order = np.argsort(-values)  # quicksort: fast, but arbitrary among equal values
    ranked = values[order]
    if ranked.size > 1 and not (ranked[1:] != ranked[:-1]).all():
        order = np.argsort(-values, kind="stable")  # equal values present: keep ascending index order
    return cand[order]


def sorted_top_rows(Z: np.ndarray, k: int) -> list[np.ndarray]:
    """Per column, the row indices of its top ``k`` values, best first (ties: lowest index first)."""
    D, V = Z.shape
    k = min(k, D)
    out: list[np.ndarray] = []
    for j0 in range(0, V, _COLUMN_BLOCK):
        block = np.ascontiguousarray(np.asarray(Z[:, j0:j0 + _COLUMN_BLOCK]).T)
        out.extend(_top_rows(col, k) for col in block)
    return out


class _Columns:
    """Each column's rows sorted best first, materialised lazily.

    Only the first ``initial`` rows of a column are sorted up front; a pointer
    that runs past them triggers a re-sort of a 4x longer prefix (the same
    ordering, so positions stay valid), up to ``limit`` = the budget, which no
    pointer can pass. Pointers rarely go deep (a column's pointer only moves
    past rows already selected), so this keeps the set-up near O(D V).
    """

    def __init__(self, Z: np.ndarray, limit: int, initial: int):
        self.Z = Z
        self.limit = min(limit, Z.shape[0])
        self.orders = sorted_top_rows(Z, min(initial, self.limit))

    def row(self, j: int, p: int) -> int:
        """Row at position ``p`` of column ``j``, or -1 past the limit."""
        order = self.orders[j]
        if p >= order.size:
            if order.size >= self.limit:
                return -1
            order = _top_rows(np.ascontiguousarray(self.Z[:, j]), min(self.limit, 4 * order.size))
            self.orders[j] = order
        return int(order[p])


def bids_greedy(Z: np.ndarray, budget: int, *, progress: bool = False, initial_depth: int = 1024) -> GreedyResult:
    """The BIDS greedy loop on an already normalised matrix; exact.

    Cost: O(D V) to find each column's top rows, plus O(B V) for the picks and
    amortised pointer moves (the naive loop is O(B D V)).
    """
    Z = np.asarray(Z, dtype=np.float64)
    D, V = Z.shape
    B = int(budget)
    if not 1 <= B <= D:
        raise ValueError(f"budget must be between 1 and the number of rows {D}, got {B}")
    # At most B - 1 rows are selected before the last pick, so a pointer never passes position B - 1.
    columns = _Columns(Z, B, initial_depth)
    cols = np.arange(V)
    ptr = np.zeros(V, dtype=np.int64)
    cur_rows = np.array([columns.row(j, 0) for j in range(V)], dtype=np.int64)
    cur_vals = Z[cur_rows, cols]
    selected = np.zeros(D, dtype=bool)
    total = np.zeros(V, dtype=np.float64)
    mean = np.zeros(V, dtype=np.float64)
    key = np.empty(V, dtype=np.float64)
    indices = np.empty(B, dtype=np.int64)
    gains = np.empty(B, dtype=np.float64)
    bar = progress_bar(progress, total=B, desc="BIDS greedy", unit="pick", mininterval=1.0)
    for t in range(B):
        if t:
            np.divide(total, t, out=mean)
        np.subtract(cur_vals, mean, out=key)
        j_best = int(key.argmax())
        best = key[j_best]
        tied_cols = np.flatnonzero(key == best)
        if tied_cols.size == 1:
            i = _rows_at_value(Z, columns, ptr, selected, j_best, mean[j_best], best)
        else:
            i = min(_rows_at_value(Z, columns, ptr, selected, int(j), mean[j], best) for j in tied_cols)
        indices[t] = i
        gains[t] = best
        selected[i] = True
        total += Z[i]
        for j in np.flatnonzero(cur_rows == i):
            p = int(ptr[j]) + 1
            row = columns.row(j, p)
            while row >= 0 and selected[row]:
                p += 1
                row = columns.row(j, p)
            ptr[j] = p
            cur_rows[j] = row
            # every reachable row of this column is taken (only possible at the very end): never the max again
            cur_vals[j] = Z[row, j] if row >= 0 else -np.inf
        bar.update(1)
    bar.close()
    return GreedyResult(indices, gains)


def _rows_at_value(Z, columns: _Columns, ptr, selected, j, m_j, best) -> int:
    """Lowest unselected row ``i`` with ``Z[i, j] - m_j == best`` (``best`` is column ``j``'s maximum).

    Usually just the pointer's row; more only when several rows of the column
    give the same difference (equal values, or rounding in the subtraction).
    """
    p = int(ptr[j])
    lowest = columns.row(j, p)
    while True:
        p += 1
        row = columns.row(j, p)
        if row < 0:
            break
        if selected[row]:
            continue
        if Z[row, j] - m_j != best:
            return lowest
        lowest = min(lowest, row)
    # Every reachable row still tied: scan the whole column (practically never happens).
    hits = np.flatnonzero((Z[:, j] - m_j == best) & ~selected)
    return int(hits.min())


def bids_greedy_naive(Z: np.ndarray, budget: int) -> GreedyResult:
    """The reference loop, O(B D V): recompute every candidate's ``Delta`` at every step."""
    Z = np.asarray(Z, dtype=np.float64)
    D, V = Z.shape
    B = int(budget)
    if not 1 <= B <= D:
        raise ValueError(f"budget must be between 1 and the number of rows {D}, got {B}")
    available = np.ones(D, dtype=bool)
    total = np.zeros(V, dtype=np.float64)
    indices = np.empty(B, dtype=np.int64)
    gains = np.empty(B, dtype=np.float64)
    for t in range(B):
        mean = total / t if t else np.zeros(V)
        delta = (Z - mean).max(axis=1)
        delta[~available] = -np.inf
        i = int(np.argmax(delta))  # first maximum = lowest index
        indices[t] = i
        gains[t] = delta[i]
        available[i] = False
        total += Z[i]
    return GreedyResult(indices, gains)


def task_index(tasks: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """Task names in order of first appearance and each column's task id."""
    names: list[str] = []
    position: dict[str, int] = {}
    ids = np.empty(len(tasks), dtype=np.int64)
    for j, task in enumerate(tasks):
        if not isinstance(task, str) or not task:
            raise ValueError(f"task of validation column {j} must be a non-empty string, got {task!r}")
        if task not in position:
            position[task] = len(names)
            names.append(task)
        ids[j] = position[task]
    return names, ids


def task_means(M: np.ndarray, task_ids: np.ndarray, n_tasks: int) -> np.ndarray:
    """``(D, K)``: each row's mean influence over the columns of each task."""
    counts = np.bincount(task_ids, minlength=n_tasks).astype(np.float64)
    avg = np.zeros((len(task_ids), n_tasks), dtype=np.float64)
    avg[np.arange(len(task_ids)), task_ids] = 1.0 / counts[task_ids]
    out = np.empty((M.shape[0], n_tasks), dtype=np.float64)
    for start in range(0, M.shape[0], _ROW_CHUNK):
        out[start:start + _ROW_CHUNK] = np.asarray(M[start:start + _ROW_CHUNK], dtype=np.float64) @ avg
    return out


def row_scores(M: np.ndarray, method: str, task_ids: np.ndarray | None = None) -> np.ndarray:
    """One score per row for the top-B baselines.

    ``task_max`` is LESS's rule: the mean over each task's validation columns,
    then the max over tasks (equal to the paper's max of per-task sums when the
    tasks have equal sizes, and the sensible choice when they do not).
    """
    if method == "instance_max":
        return np.concatenate([np.asarray(M[s:s + _ROW_CHUNK]).max(axis=1) for s in range(0, M.shape[0], _ROW_CHUNK)])
    if method == "sum":
        return np.concatenate([np.asarray(M[s:s + _ROW_CHUNK]).sum(axis=1) for s in range(0, M.shape[0], _ROW_CHUNK)])
    if method == "task_max":
        if task_ids is None:
            raise ValueError("method 'task_max' needs the task of every validation column")
        return task_means(M, task_ids, int(task_ids.max()) + 1).max(axis=1)
    raise ValueError(f"unknown scoring method {method!r}; choose from {', '.join(METHODS)}")


def top_b(scores: np.ndarray, budget: int) -> np.ndarray:
    """Indices of the ``budget`` highest scores, best first, ties to the lowest index."""
    return np.argsort(-scores, kind="stable")[:budget]


def select(M: np.ndarray, budget: int, method: str = "bids", *, task_ids: np.ndarray | None = None,
           seed: int = 0, progress: bool = False) -> GreedyResult:
    """Run ``method`` on ``M`` (already normalised or not, as the caller decided)."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    D = M.shape[0]
    if not 1 <= budget <= D:
        raise ValueError(f"budget must be between 1 and the number of rows {D}, got {budget}")
    if method == "bids":
        return bids_greedy(M, budget, progress=progress)
    if method == "random":
        idx = np.random.default_rng(seed).permutation(D)[:budget]
        return GreedyResult(idx.astype(np.int64), np.full(budget, np.nan))
    scores = row_scores(M, method, task_ids)
    idx = top_b(scores, budget)
    return GreedyResult(idx.astype(np.int64), scores[idx])
