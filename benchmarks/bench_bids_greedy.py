"""BIDS greedy selection speed: the sorted-columns algorithm vs the naive O(B D V) loop.

Part 1 times the whole selection on a paper-sized matrix (288,000 training rows
x 350 validation columns, float64, budget 15% = 43,200 picks): column z-score,
per-column top-B sort, greedy loop. Goal: under 5 s on CPU.

Part 2 runs the naive loop (recompute every candidate's Delta at every step)
and the fast algorithm on a smaller matrix in the same process, checks that
they pick the same rows in the same order, prints the ratio, and extrapolates
the naive time to the paper size by its B x D x V cost (a lower bound: the
naive loop's working set no longer fits in cache at that size).

The matrix is i.i.d. normal (a real influence matrix has more structure; the
algorithm's cost does not depend on the values except through ties and pointer
moves). Both wall-clock and process CPU time are printed, because the machine
is shared.

    python benchmarks/bench_bids_greedy.py
    python benchmarks/bench_bids_greedy.py --rows 100000 --naive-rows 5000
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def timed(fn, *args, **kwargs):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    from selection.bids.greedy import bids_greedy, bids_greedy_naive, zscore_columns

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=288_000)
    parser.add_argument("--cols", type=int, default=350)
    parser.add_argument("--fraction", type=float, default=0.15)
    parser.add_argument("--naive-rows", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    rng = np.random.default_rng(args.seed)
    D, V = args.rows, args.cols
    B = int(round(args.fraction * D))
    print(f"== paper size: {D:,} x {V} float64 ({D * V * 8 / 2**30:.2f} GiB), budget {args.fraction:.0%} = {B:,}")
    A = rng.standard_normal((D, V))
    Z, zw, zc = timed(zscore_columns, A, out=A)  # in place, as the CLI does on its loaded copy
    result, gw, gc = timed(bids_greedy, Z, B)
    assert len(set(result.indices.tolist())) == B
    total_wall = zw + gw
    print(f"z-score        : {zw:7.2f} s wall  {zc:7.2f} s cpu")
    print(f"greedy (exact) : {gw:7.2f} s wall  {gc:7.2f} s cpu")
    print(f"total          : {total_wall:7.2f} s wall  {zc + gc:7.2f} s cpu   goal < 5 s: "
          f"{'MET' if total_wall < 5 else 'NOT MET (wall)'}{'' if zc + gc < 5 else ', NOT MET (cpu)'}")
    del A, Z

    d, b = args.naive_rows, int(round(args.fraction * args.naive_rows))
    print(f"\n== naive vs fast on {d:,} x {V}, budget {b:,}")
    small = zscore_columns(rng.standard_normal((d, V)))
    fast, fw, fc = timed(bids_greedy, small, b)
    naive, nw, nc = timed(bids_greedy_naive, small, b)
    same = fast.indices.tolist() == naive.indices.tolist() and np.array_equal(fast.gains, naive.gains)
    print(f"fast  : {fw:8.3f} s wall  {fc:8.3f} s cpu")
    print(f"naive : {nw:8.3f} s wall  {nc:8.3f} s cpu")
    print(f"same selection and gains: {same}")
    print(f"speed-up (cpu): {nc / max(fc, 1e-9):.0f}x   (wall): {nw / max(fw, 1e-9):.0f}x")
    scale = (B * D) / (b * d)
    print(f"naive at paper size, extrapolated by B*D*V ({scale:,.0f}x the work): "
          f"~{nc * scale:,.0f} s cpu (~{nc * scale / 3600:.1f} h) vs fast {zc + gc:.2f} s cpu "
          f"-> ~{nc * scale / max(zc + gc, 1e-9):,.0f}x")
    if not same:
        raise SystemExit("fast and naive selections differ")


if __name__ == "__main__":
    main()
