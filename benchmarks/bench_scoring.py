"""Scoring throughput: parsed and scored responses per second (goal: at least 100,000/s).

Baseline in the same run: a straightforward implementation that finds every
``\\boxed{`` with a regex, parses the last box with ``ast.literal_eval`` (a
common "safe" choice) and compares sets. Our scorer locates the final box list
with reverse searches and reads a plain ``3, 7`` with one regular expression;
only other answers go through the token reader (``docs/answers.md``). It never
builds Python objects from model text.

A second workload is the labelled answer corpus (``tests/answers/corpus``:
realistic answers in many styles, most of which need the token reader): its
throughput, and how many labels each scorer agrees with.

Run: ``python benchmarks/bench_scoring.py [--n 200000]``
"""

from __future__ import annotations

import argparse
import ast
import random
import re
import sys
import time
from pathlib import Path

from cf_tasks.metrics import score_set


def naive_score(response: str, gold: list) -> dict:
    boxes = re.findall(r"\\boxed\{(.*?)\}(?!\})", response, flags=re.S)
    if not boxes:
        return {"exact_match": 0.0, "f1": 0.0}
    content = boxes[-1].strip().strip("{}[]")
    try:
        value = ast.literal_eval("[" + content + "]")
        predicted = {v for v in value if isinstance(v, (int, float))}
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return {"exact_match": 0.0, "f1": 0.0}
    gold_set = set(gold)
    if not predicted:
        return {"exact_match": 0.0, "f1": 0.0}
    overlap = len(predicted & gold_set)
    return {"exact_match": float(predicted == gold_set), "f1": 2 * overlap / (len(predicted) + len(gold_set))}


def make_responses(n: int, seed: int = 0) -> list[tuple[str, list]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        gold = sorted(rng.sample(range(-50, 50), rng.randint(1, 4)))
        guess = gold if rng.random() < 0.5 else gold + [99]
        reasoning = " ".join(f"Step {i}: r = {rng.randint(0, 9)} gives y = {rng.randint(-9, 99)}." for i in range(12))
        out.append((f"{reasoning}\nSo the answer is \\boxed{{{', '.join(map(str, guess))}}}.", gold))
    return out


def rate(fn, data) -> float:
    start = time.perf_counter()
    for response, gold in data:
        fn(response, gold)
    return len(data) / (time.perf_counter() - start)


def corpus_workload(repeat: int) -> None:
    """Throughput and label agreement on the labelled corpus (set answers), ours vs the baseline."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "answers"))
    import answer_corpus as corpus

    entries = [e for e in corpus.load() if e.kind == "set"]
    data = [(e.response, list(e.gold)) for e in entries] * repeat
    ours_ok = sum(score_set(e.response, list(e.gold))["exact_match"] == e.score for e in entries)
    naive_ok = sum(naive_score(e.response, list(e.gold))["exact_match"] == e.score for e in entries)
    ours, naive = rate(score_set, data), rate(naive_score, data)
    print(f"labelled corpus ({len(entries)} set answers x {repeat}): agree with the labels: "
          f"executable-cf {ours_ok}/{len(entries)}, baseline {naive_ok}/{len(entries)}")
    print(f"executable-cf score_set : {ours:12,.0f} responses/s")
    print(f"naive regex+literal_eval: {naive:12,.0f} responses/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--corpus-repeat", type=int, default=50, help="passes over the labelled corpus")
    args = parser.parse_args()
    data = make_responses(args.n)
    mean_chars = sum(len(r) for r, _ in data) / len(data)
    agree = sum(score_set(r, g) == naive_score(r, g) for r, g in data[:2000])
    ours = rate(score_set, data)
    naive = rate(naive_score, data)
    print(f"responses: {args.n}, mean length {mean_chars:.0f} chars; agreement with baseline on 2000: {agree}/2000")
    print(f"executable-cf score_set : {ours:12,.0f} responses/s  (goal >= 100,000/s, single core)")
    print(f"naive regex+literal_eval: {naive:12,.0f} responses/s")
    print(f"ratio: {ours / naive:.2f}x")
    corpus_workload(args.corpus_repeat)


if __name__ == "__main__":
    main()
