"""Set exact match and set F1: the one metric behind evaluation, rewards and reports.

Per item: ``EM = 1[P == G]`` and ``F1 = 2|P ∩ G| / (|P| + |G|)`` (0 when no
answer could be parsed). Extra elements are never rewarded by exact match, so
hedging ("all values in the domain") scores 0 EM and a reduced F1. Benchmarks
average both over items (macro).
"""

from __future__ import annotations

from typing import Any, Iterable

from cf_tasks.answers import canonical_set, parse_answer_set


def set_scores(predicted: frozenset | None, gold: frozenset) -> dict[str, float]:
    if not predicted:
        return {"exact_match": 0.0, "f1": 0.0}
    overlap = len(predicted & gold)
    return {
        "exact_match": float(predicted == gold),
        "f1": 2.0 * overlap / (len(predicted) + len(gold)),
    }


def score_set(response_text: str, gold: Iterable[Any]) -> dict[str, float]:
    """Score one response against a gold answer list (JSON scalars)."""
    return set_scores(parse_answer_set(response_text), canonical_set(gold))
