"""Exact match of the four reference solvers per code family and level, against the unfiltered pipeline.

What a benchmark score means depends on what shortcuts score: ``cf_echo``
(answer the observed output) and ``cf_one_latent`` (assume one consistent
latent, the "arbitrary latent assumed" failure) must score low, ``cf_oracle``
100% and ``cf_no_abduction`` 0% on counterfactual items. The shipped levels
are tuned so that, on every code family's counterfactual variant at the medium
level (what the shipped tasks use):

    cf_echo <= 5%    cf_one_latent <= 50%    cf_no_abduction = 0%    cf_oracle = 100%

The baseline, measured in the same run, is the same generator with the
shortcut filters off and one query per program (what the pipeline did before
they existed): there echo and one-latent score far higher.

``n`` items per cell (default 2000) make the standard error of each
percentage at most 0.5 / sqrt(n) = 1.1 points. Exit status 1 if a bound fails.

    python benchmarks/bench_baselines.py
    python benchmarks/bench_baselines.py --n 400 --levels medium --families while
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cf_tasks.reference import SOLVERS, reference_scores  # noqa: E402
from plugins.registry import FAMILIES  # noqa: E402

BOUNDS = {"cf_echo": (None, 0.05), "cf_one_latent": (None, 0.50), "cf_no_abduction": (0.0, 0.0),
          "cf_oracle": (1.0, 1.0)}
UNFILTERED = {"reject_echo": False, "multi_gold_prob": 0.0, "min_consistent": 1, "min_gold_size": 1,
              "max_midrun_abs": None, "query_inputs": 2, "queries_per_program": 1}
"""The pipeline without the shortcut filters: one random query per program, as before they existed."""


def scores(family: str, level: str, n: int, seed: int, variant: str = "counterfactual", **overrides) -> dict:
    fam = FAMILIES.get(family)
    items = fam.generate_items(variant=variant, n=n, seed=seed, config=fam.config(level, **overrides),
                               level=level).items
    return {solver: metrics["exact_match"] for solver, metrics in reference_scores(items).items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", nargs="+", default=["if_else", "if_else_long", "while", "multi_r"])
    ap.add_argument("--levels", nargs="+", default=["easy", "medium", "hard"])
    ap.add_argument("--n", type=int, default=2000, help="items per family and level")
    ap.add_argument("--seed", type=int, default=1234, help="the shipped tasks' seed")
    ap.add_argument("--no-baseline", action="store_true", help="skip the unfiltered pipeline")
    args = ap.parse_args(argv)

    se = 50 / math.sqrt(args.n)
    print(f"counterfactual variant, n={args.n} items per row (standard error <= {se:.1f} points); exact match in %")
    header = f"{'family':<13}{'level':<8}{'pipeline':<12}" + "".join(f"{s:>17}" for s in SOLVERS)
    print(header)
    failures = []
    start = time.perf_counter()
    for family in args.families:
        for level in args.levels:
            rows = [("shipped", scores(family, level, args.n, args.seed))]
            if not args.no_baseline:
                rows.append(("unfiltered", scores(family, level, args.n, args.seed, **UNFILTERED)))
            for label, row in rows:
                print(f"{family:<13}{level:<8}{label:<12}" + "".join(f"{100 * row[s]:>17.1f}" for s in SOLVERS))
                if label == "shipped" and level == "medium":
                    for solver, (low, high) in BOUNDS.items():
                        if (low is not None and row[solver] < low) or row[solver] > high:
                            failures.append(f"{family} medium: {solver} = {100 * row[solver]:.1f}%")
    print(f"({time.perf_counter() - start:.0f}s)")
    print("bounds on every family's medium level: cf_echo <= 5%, cf_one_latent <= 50%, cf_no_abduction = 0%, "
          "cf_oracle = 100%: " + ("all met" if not failures else "FAILED: " + "; ".join(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
