"""Family-aware scoring of one response against one gold answer: the entry every consumer shares.

lm-eval's ``process_results``, the GRPO rewards, ``cf-select pool``,
``cf-train collect``, ``cf-report`` and the framework integrations all score a
response here, so a number means the same thing wherever it is reported.
Code families use set exact match and F1 (:func:`cf_tasks.metrics.score_set`);
a family with its own notion of correctness registers a scorer in
:data:`SCORERS` (``gsm``: one exact number) instead of adding a branch.

Gold answers reach readers in two formats: a list (``data.jsonl``, program
records) or JSON text (lm-eval documents, where mixed families share one Arrow
column); :func:`decode_gold` accepts both.
"""

from __future__ import annotations

import importlib
import json
import logging
import threading
from typing import Any, Callable, Mapping

logger = logging.getLogger(__name__)

Scorer = Callable[[str, Any], Mapping[str, float]]

DEFAULT_SCORER = "cf_tasks.scoring:score_set_answer"

SCORERS: dict[str, str] = {
    # Math word problems: one exact number, as the lm-eval math task scores it.
    "gsm": "cf_tasks.scoring:score_math_answer",
}
"""Family name -> ``"module:attr"`` of its scorer; families not listed use :data:`DEFAULT_SCORER`."""

_cache: dict[str, Scorer] = {}
_cache_lock = threading.Lock()


def load_object(spec: str) -> Any:
    """Import ``"package.module:attr"``; the error names the spec."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"expected 'module:attribute', got {spec!r}")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(f"cannot import {module_name!r} (from {spec!r}): {exc}") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ImportError(f"{module_name!r} has no attribute {attr!r} (from {spec!r})") from None
    return obj


def scorer_for(family: str | None) -> Scorer:
    """The scorer of a family; the set scorer when the family has none of its own (thread-safe)."""
    spec = SCORERS.get(family or "", DEFAULT_SCORER)
    with _cache_lock:
        scorer = _cache.get(spec)
        if scorer is None:
            try:
                scorer = load_object(spec)
            except ImportError:
                if spec == DEFAULT_SCORER:
                    raise
                logger.warning("scorer %s for family %r is not importable; using the set scorer", spec, family)
                scorer = load_object(DEFAULT_SCORER)
            _cache[spec] = scorer
    return scorer


def decode_gold(answer: Any) -> Any:
    """A gold answer from either format: a list as is, JSON text decoded (a bare string stays a string)."""
    if isinstance(answer, str):
        try:
            return json.loads(answer)
        except json.JSONDecodeError:
            return answer  # a bare string answer (e.g. a user's JSONL)
    return answer


def score_response(family: str | None, response: str, answer: Any) -> dict[str, float]:
    """``{"exact_match", "f1"}`` of ``response`` against ``answer`` (either format) under the family's scorer."""
    return {k: float(v) for k, v in scorer_for(family)(response, decode_gold(answer)).items()}


def score_set_answer(response_text: str, gold: Any) -> Mapping[str, float]:
    """:func:`cf_tasks.metrics.score_set`, accepting a scalar gold answer as a one-element set."""
    from cf_tasks.metrics import score_set

    if isinstance(gold, (str, int, float)) or gold is None:
        gold = [gold]
    return score_set(response_text, gold)


def score_math_answer(response_text: str, gold: Any) -> Mapping[str, float]:
    """Accuracy of a math item (one number, exact fractions) via the lm-eval math task's own scorer.

    Reported as both ``exact_match`` and ``f1`` so every set reward has a meaning on math items.
    """
    from cf_tasks.lmeval.math_scoring import gold_number, score_number

    answer = list(gold) if isinstance(gold, (list, tuple)) else [gold]
    score = float(score_number(response_text, gold_number({"answer": answer})))
    return {"exact_match": score, "f1": score}
