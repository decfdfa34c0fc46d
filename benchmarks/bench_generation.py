"""Verified items per second for each code family, against a naive baseline in the same run.

"Verified" means every item's gold answer came from executing its program at
every latent assignment and passed all quality and shortcut filters. The
pipeline batches (``window`` items propose at once, ``programs_per_job``
candidates per executor job, each candidate's whole table in one call); the
baseline is the same pipeline with ``window=1, programs_per_job=1``: one
executor call per candidate and one executor call-slot per program run. Both
produce identical items (checked).

Two more rows put the shortcut filters in perspective, measured in the same run:
``1 query/program`` keeps every filter but tabulates two inputs and draws one
query per program (plain rejection sampling: what the pipeline would cost
without query tables), and ``unfiltered`` turns the shortcut filters off (the
items the pipeline made before they existed).

"Per core" divides by CPU seconds actually used (the generating process plus
the executor's worker processes), so it does not depend on how many cores the
machine has or how busy it is; wall-clock items/s is printed too.

    python benchmarks/bench_generation.py                    # medium level, all code families
    python benchmarks/bench_generation.py --n 20000 --level easy --families if_else while
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cf_tasks.executor import Executor  # noqa: E402
from cf_tasks.generation import generate_code_items  # noqa: E402
from plugins.registry import FAMILIES  # noqa: E402

GOAL_PER_CORE = 5000
SINGLE_LATENT = ("if_else", "if_else_long", "while")
UNFILTERED = {"reject_echo": False, "multi_gold_prob": 0.0, "min_consistent": 1, "min_gold_size": 1,
              "max_midrun_abs": None, "query_inputs": 2, "queries_per_program": 1}


def _children_cpu() -> float | None:
    """CPU seconds of all executor workers so far, including recycled (exited) ones.

    Live workers are read with psutil; workers the pool has recycled were reaped,
    so their time is in ``RUSAGE_CHILDREN``. A worker moves from the first sum to
    the second with its whole CPU time, so differences stay exact.
    """
    import resource

    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil is in the test extra
        return None
    dead = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = dead.ru_utime + dead.ru_stime
    for child in psutil.Process().children(recursive=True):
        try:
            t = child.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def measure(fam, cfg, level, n, seed, executor, **kw) -> dict:
    c0, p0, w0 = _children_cpu(), time.process_time(), time.perf_counter()
    res = generate_code_items(fam, variant="counterfactual", n=n, seed=seed, config=cfg, level=level,
                              executor=executor, **kw)
    wall = time.perf_counter() - w0
    parent = time.process_time() - p0
    c1 = _children_cpu()
    workers = (c1 - c0) if c0 is not None and c1 is not None else None
    cpu = parent + (workers or 0.0)
    return {"items": res.items, "report": res.report, "wall": wall, "parent_cpu": parent, "workers_cpu": workers,
            "per_s": n / wall, "per_cpu_s": n / cpu if cpu > 0 else float("nan")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--families", nargs="+", default=["if_else", "if_else_long", "while", "multi_r"])
    ap.add_argument("--level", default="medium")
    ap.add_argument("--n", type=int, default=5000, help="items per family for the batched pipeline")
    ap.add_argument("--baseline-n", type=int, default=300, help="items per family for the naive baseline")
    ap.add_argument("--workers", type=int, default=None, help="executor workers (default: os.cpu_count())")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--compare-n", type=int, default=1000, help="items for the 1-query and unfiltered rows (0: skip)")
    args = ap.parse_args(argv)

    workers = args.workers or os.cpu_count() or 1
    print(f"machine: {os.cpu_count()} logical cores; executor workers: {workers} (+1 generating process); "
          f"level={args.level}; n={args.n}, baseline n={args.baseline_n}")
    header = (f"{'family':<13}{'items/s':>9}{'items/cpu-s':>13}{'parent us/it':>14}{'workers us/it':>15}"
              f"{'accept':>8}{'base items/s':>14}{'base /cpu-s':>13}{'ratio(cpu)':>11}{'ratio(wall)':>12}")
    rows = []
    with Executor(workers=workers) as ex:
        for name in args.families:
            fam = FAMILIES.get(name)
            cfg = fam.config(args.level)
            generate_code_items(fam, variant="counterfactual", n=50, seed=args.seed + 1000, config=cfg,
                                executor=ex)  # warm the workers
            fast = measure(fam, cfg, args.level, args.n, args.seed, ex)
            base = measure(fam, cfg, args.level, args.baseline_n, args.seed, ex, window=1, programs_per_job=1)
            if base["items"] != fast["items"][: args.baseline_n]:
                raise SystemExit(f"{name}: baseline and pipeline disagree; benchmark invalid")
            extra = {}
            if args.compare_n:
                for label, overrides in (("1 query/program", {"query_inputs": 2, "queries_per_program": 1}),
                                         ("unfiltered", UNFILTERED)):
                    extra[label] = measure(fam, fam.config(args.level, **overrides), args.level, args.compare_n,
                                           args.seed, ex)
            rows.append((name, fast, base, extra))
    print(header)
    for name, fast, base, _ in rows:
        rep = fast["report"]
        wk = fast["workers_cpu"]
        print(f"{name:<13}{fast['per_s']:>9.0f}{fast['per_cpu_s']:>13.0f}"
              f"{fast['parent_cpu'] / args.n * 1e6:>14.1f}"
              f"{(wk / args.n * 1e6) if wk is not None else float('nan'):>15.1f}"
              f"{rep['acceptance_rate']:>8.2f}{base['per_s']:>14.0f}{base['per_cpu_s']:>13.0f}"
              f"{fast['per_cpu_s'] / base['per_cpu_s']:>10.1f}x{fast['per_s'] / base['per_s']:>11.1f}x")
    if args.compare_n:
        print()
        print(f"same filters without query tables, and no shortcut filters ({args.compare_n} items each):")
        print(f"{'family':<13}{'shipped /cpu-s':>15}{'1 query/program /cpu-s':>24}{'table gain':>12}"
              f"{'unfiltered /cpu-s':>19}{'filter cost':>13}")
        for name, fast, _, extra in rows:
            one, raw = extra["1 query/program"], extra["unfiltered"]
            print(f"{name:<13}{fast['per_cpu_s']:>15.0f}{one['per_cpu_s']:>24.0f}"
                  f"{fast['per_cpu_s'] / one['per_cpu_s']:>11.1f}x{raw['per_cpu_s']:>19.0f}"
                  f"{raw['per_cpu_s'] / fast['per_cpu_s']:>12.1f}x")
    print()
    print("where the generating process's wall time went (batched pipeline):")
    for name, fast, _, _ in rows:
        st = fast["report"]["seconds_by_stage"]
        total = sum(st.values()) or 1.0
        parts = ", ".join(f"{k} {v / total:.0%}" for k, v in st.items())
        print(f"  {name:<13}{parts}; {fast['report']['program_runs'] / args.n:.0f} program runs per item")
    print()
    for name, fast, _, _ in rows:
        if name in SINGLE_LATENT:
            verdict = "meets" if fast["per_cpu_s"] >= GOAL_PER_CORE else "misses"
            print(f"goal {GOAL_PER_CORE}/s per core on {name}: {verdict} ({fast['per_cpu_s']:.0f} items per CPU-second)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
