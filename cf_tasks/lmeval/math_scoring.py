"""``process_results`` for the math (``gsm``) tasks: accuracy on one exact number.

The gold answer is the single canonical number string of ``doc["answer"]``;
the response's final answer is read by :mod:`cf_tasks.math_answer` (the policy
of ``docs/answers.md``: exact fractions, hedges score 0). The same function
serves as a reward.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Mapping, Sequence

from cf_tasks.lmeval.scoring import gold_answer
from cf_tasks.math_answer import parse_final_number


def gold_number(doc: Mapping[str, Any]) -> Fraction:
    """The gold value of a math document (``answer`` holds exactly one number)."""
    answer = gold_answer(doc)
    if len(answer) != 1:
        raise ValueError(f"math item {doc.get('id', '?')}: field 'answer' must hold one number, got {answer!r}")
    value = answer[0]
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"math item {doc.get('id', '?')}: field 'answer' must hold an int or a number string, "
                         f"got {value!r}")
    try:
        return Fraction(value)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"math item {doc.get('id', '?')}: field 'answer' is not a number: {value!r}") from None


def score_number(response: str, gold: Fraction) -> float:
    predicted = parse_final_number(response) if isinstance(response, str) else None
    return 1.0 if predicted is not None and predicted == gold else 0.0


def process_results(doc: Mapping[str, Any], results: Sequence[Any]) -> dict[str, float]:
    response = results[0] if results else ""
    if not isinstance(response, str):  # e.g. a take_first_k filter hands a list
        response = response[0] if response else ""
    return {"acc": score_number(response, gold_number(doc))}
