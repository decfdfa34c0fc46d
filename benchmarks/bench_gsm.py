"""GSM family throughput: generation (items/s) and scoring (responses/s), each against a naive baseline.

Generation: ``GsmFamily.generate_items`` (sympy solves each graph *structure* once,
then evaluates the cached closed form exactly) vs. the same pipeline calling
``sympy.solve`` on every item's substituted equation. Scoring:
``math_scoring.process_results`` (regex + Fraction, Math-Verify only for LaTeX
arithmetic) vs. Math-Verify ``parse`` + ``verify`` on every response.

    python benchmarks/bench_gsm.py [--n 2000] [--level medium]
"""

from __future__ import annotations

import argparse
import random
import time

from cf_tasks.families.gsm import FAMILY
from cf_tasks.families.gsm import solver as gsm_solver
from cf_tasks.families.gsm.family import build_item, dedup_key, item_stream, propose, stream_key
from cf_tasks.lmeval.math_scoring import process_results


def naive_generate(n: int, seed: int, config, level: str) -> list[dict]:
    """The same draws and filters, with a fresh sympy solve per candidate."""
    items, keys = [], set()
    key = stream_key(level, config)
    for index in range(n):
        rng = item_stream(key, seed, index)
        for _ in range(config.max_attempts):
            cand = propose(rng, config, naive_solver=True)
            if cand.reject is None and dedup_key(cand) not in keys:
                keys.add(dedup_key(cand))
                items.append(build_item(cand, variant="counterfactual", seed=seed, index=index, level=level,
                                        config={}))
                break
    return items


def responses(items: list[dict], rng: random.Random) -> list[tuple[dict, str]]:
    styles = ["Step 1 ... so the total is \\boxed{%s}.", "The answer is \\boxed{\\$%s}", "\\boxed{%s \\text{ dollars}}",
              "I get \\boxed{%s or 3}", "... therefore \\boxed{%s}"]
    return [(item, rng.choice(styles) % item["answer"][0]) for item in items]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--level", default="medium", choices=sorted(FAMILY.levels))
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    config = FAMILY.config(args.level)
    n = args.n

    gsm_solver._CACHE.clear()
    start = time.perf_counter()
    result = FAMILY.generate_items(variant="counterfactual", n=n, seed=args.seed, config=config, level=args.level)
    cold = n / (time.perf_counter() - start)
    start = time.perf_counter()
    FAMILY.generate_items(variant="counterfactual", n=n, seed=args.seed + 1, config=config, level=args.level)
    warm = n / (time.perf_counter() - start)
    n_naive = max(50, n // 10)
    start = time.perf_counter()
    naive_items = naive_generate(n_naive, args.seed, config, args.level)
    naive = n_naive / (time.perf_counter() - start)
    assert [i["prompt"] for i in naive_items] == [i["prompt"] for i in result.items[:n_naive]]
    print(f"generation ({args.level}, 1 process): {cold:,.0f} items/s cold cache, {warm:,.0f} items/s warm; "
          f"naive per-item sympy.solve: {naive:,.0f} items/s; ratio {cold / naive:.1f}x cold, {warm / naive:.1f}x warm")
    print(f"  structures solved symbolically: {len(gsm_solver._CACHE)}; rejected: {result.report['rejected']}")

    pairs = responses(result.items, random.Random(0))
    start = time.perf_counter()
    ours = [process_results(item, [text])["acc"] for item, text in pairs]
    fast = len(pairs) / (time.perf_counter() - start)
    from math_verify import parse, verify

    m = min(len(pairs), 300)
    start = time.perf_counter()
    theirs = [float(verify(parse(item["answer"][0], parsing_timeout=None), parse(text, parsing_timeout=None),
                           timeout_seconds=None)) for item, text in pairs[:m]]
    slow = m / (time.perf_counter() - start)
    agree = sum(a == b for a, b in zip(ours, theirs)) / m
    print(f"scoring: {fast:,.0f} responses/s; Math-Verify parse+verify: {slow:,.0f} responses/s; "
          f"ratio {fast / slow:.0f}x (accuracy {sum(ours) / len(ours):.2f}; same verdict as Math-Verify on "
          f"{agree:.0%} of {m})")


if __name__ == "__main__":
    main()
