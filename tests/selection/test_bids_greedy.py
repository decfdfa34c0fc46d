"""BIDS greedy selection and baselines: the fast algorithm against brute force."""

import numpy as np
import pytest

from selection.bids.greedy import (GreedyResult, bids_greedy, bids_greedy_naive, row_scores, select, task_index,
                                   top_b, zscore_columns)


def _same(fast: GreedyResult, naive: GreedyResult) -> None:
    assert fast.indices.tolist() == naive.indices.tolist()
    assert np.array_equal(fast.gains, naive.gains)


@pytest.mark.parametrize("kind", ["normal", "integers", "few_values", "zscored_integers"])
def test_fast_greedy_equals_naive_on_random_matrices(kind):
    rng = np.random.default_rng({"normal": 0, "integers": 1, "few_values": 2, "zscored_integers": 3}[kind])
    for _ in range(150):
        D, V = int(rng.integers(1, 70)), int(rng.integers(1, 9))
        if kind == "normal":
            A = rng.normal(size=(D, V))
        elif kind == "integers":
            A = rng.integers(-4, 5, size=(D, V)).astype(float)
        elif kind == "few_values":  # heavy ties everywhere
            A = rng.integers(0, 2, size=(D, V)).astype(float)
        else:
            A = zscore_columns(rng.integers(0, 3, size=(D, V)).astype(float))
        for B in {1, int(rng.integers(1, D + 1)), D}:
            naive = bids_greedy_naive(A, B)
            _same(bids_greedy(A, B), naive)
            # tiny sorted prefixes force the lazy re-sorting of columns whose pointers run deep
            _same(bids_greedy(A, B, initial_depth=int(rng.integers(1, 4))), naive)


def test_fast_greedy_equals_naive_on_a_larger_matrix():
    rng = np.random.default_rng(7)
    A = zscore_columns(rng.normal(size=(600, 40)))
    naive = bids_greedy_naive(A, 200)
    _same(bids_greedy(A, 200), naive)
    _same(bids_greedy(A, 200, initial_depth=2), naive)


def test_deep_pointers_on_a_dominated_matrix():
    # Rows 0..59 beat every other row on every column, so all column pointers must pass 60+ selected rows.
    rng = np.random.default_rng(11)
    A = rng.normal(size=(300, 12))
    A[:60] += 10.0
    naive = bids_greedy_naive(A, 120)
    _same(bids_greedy(A, 120, initial_depth=4), naive)
    assert sorted(naive.indices[:60].tolist()) == list(range(60))


def test_rounding_ties_resolve_like_the_naive_loop():
    # After the first pick m = 1e6, and 1.0 - m == (1.0 + 2**-52) - m in float64: rows 1 and 2 tie
    # although row 2 holds the larger value; the naive loop takes the lower index, and so must we.
    A = np.array([[1e6], [1.0], [1.0 + 2**-52]])
    assert (A[1, 0] - 1e6) == (A[2, 0] - 1e6) and A[1, 0] < A[2, 0]
    naive = bids_greedy_naive(A, 3)
    assert naive.indices.tolist() == [0, 1, 2]
    _same(bids_greedy(A, 3), naive)
    _same(bids_greedy(A, 3, initial_depth=1), naive)


def test_greedy_semantics_by_hand():
    # Column 0 is easy to serve, column 1 is not: after row 0 (best on col 0), the mean on col 1 is
    # low, so BIDS serves column 1 next even though row 1 scores higher on column 0.
    A = np.array([[5.0, -3.0], [4.0, -2.0], [0.0, 1.0], [-1.0, 0.0]])
    result = bids_greedy(A, 3)
    # pick 1: max_j A = 5 (row 0). m = (5, -3): Delta = (-1, 1), (-5, 4), (-6, 3) -> row 2.
    # pick 2 done; m = (2.5, -1): Delta row 1 = max(1.5, -1) = 1.5, row 3 = max(-3.5, 1) = 1 -> row 1.
    assert result.indices.tolist() == [0, 2, 1]
    assert result.gains.tolist() == [5.0, 4.0, 1.5]


def test_first_pick_is_argmax_of_row_max_with_lowest_index():
    A = np.array([[1.0, 3.0], [3.0, 0.0], [2.0, 2.0]])
    assert bids_greedy(A, 1).indices.tolist() == [0]  # rows 0 and 1 both reach 3: lowest index wins


def test_zscore_columns_uses_sample_std_and_zeroes_constant_columns():
    A = np.array([[1.0, 5.0, 2.0], [2.0, 5.0, 4.0], [3.0, 5.0, 9.0]])
    Z = zscore_columns(A)
    assert np.allclose(Z.mean(axis=0), 0.0)
    assert np.allclose(Z[:, [0, 2]].std(axis=0, ddof=1), 1.0)
    assert np.array_equal(Z[:, 1], np.zeros(3))
    assert np.allclose(Z[:, 0], [-1.0, 0.0, 1.0])
    assert np.array_equal(A[:, 0], [1.0, 2.0, 3.0])  # not modified unless out=A


def test_baselines_match_brute_force():
    rng = np.random.default_rng(3)
    A = rng.integers(-3, 4, size=(50, 6)).astype(float)
    names, ids = task_index(["a", "a", "b", "b", "b", "c"])
    assert names == ["a", "b", "c"] and ids.tolist() == [0, 0, 1, 1, 1, 2]
    means = np.stack([A[:, :2].mean(1), A[:, 2:5].mean(1), A[:, 5]], axis=1)
    assert np.allclose(row_scores(A, "task_max", ids), means.max(1))
    assert np.array_equal(row_scores(A, "instance_max"), A.max(1))
    assert np.allclose(row_scores(A, "sum"), A.sum(1))
    for method in ("task_max", "instance_max", "sum"):
        scores = row_scores(A, method, ids)
        expected = sorted(range(50), key=lambda i: (-scores[i], i))[:12]
        assert select(A, 12, method, task_ids=ids).indices.tolist() == expected


def test_top_b_breaks_ties_by_lowest_index():
    assert top_b(np.array([1.0, 2.0, 2.0, 0.0, 2.0]), 3).tolist() == [1, 2, 4]


def test_random_baseline_is_seeded_and_without_repeats():
    A = np.zeros((100, 3))
    a = select(A, 30, "random", seed=1).indices
    assert a.tolist() == select(A, 30, "random", seed=1).indices.tolist()
    assert a.tolist() != select(A, 30, "random", seed=2).indices.tolist()
    assert len(set(a.tolist())) == 30


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="budget"):
        bids_greedy(np.zeros((3, 2)), 4)
    with pytest.raises(ValueError, match="method"):
        select(np.zeros((3, 2)), 1, "nope")
    with pytest.raises(ValueError, match="task of validation column 1"):
        task_index(["a", ""])
