"""GRPO reward functions: thin wrappers over the benchmark's own parser and metric.

Why wrappers and not new scoring code: the reward a policy is trained on must be
the number the benchmark reports (Executable Counterfactuals §1.6, §4: the paper's
reward is set exact match), so every function here delegates to
:func:`cf_tasks.metrics.score_set` (or to the family's own scorer, e.g. math).

TRL contract (TRL 1.16, ``GRPOTrainer._calculate_rewards``): each function is
called as ``f(prompts=..., completions=..., completion_ids=..., answer=...,
family=..., <other dataset columns>, trainer_state=..., log_extra=...,
log_metric=...)`` and returns one float per completion. The functions are
module-level (picklable), keep no mutable state beyond a lock-guarded import
cache (safe off the main thread), install no signal handlers, and never execute
or evaluate model text: answers are parsed by the bounded, eval-free parser in
:mod:`cf_tasks.answers`.

Per-family dispatch goes through :data:`SCORERS` (family name -> ``"module:attr"``
of a ``(response_text, gold) -> {"exact_match", "f1"}`` function), so a new
family with its own notion of correctness registers a scorer instead of
adding a branch here.
"""

from __future__ import annotations

import importlib
import json
import logging
import threading
from typing import Any, Callable, Mapping, Sequence

logger = logging.getLogger(__name__)

Scorer = Callable[[str, Any], Mapping[str, float]]
RewardFunc = Callable[..., list]

DEFAULT_SCORER = "training.rewards:score_set_answer"

SCORERS: dict[str, str] = {
    # Math word problems: one exact number, as the lm-eval math task scores it.
    "gsm": "training.rewards:score_math_answer",
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
    """The scorer of a family; the set scorer when the family has none of its own."""
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


def completion_text(completion: Any) -> str:
    """The text of a completion: a string, or the assistant content of a conversational completion."""
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Mapping):
        return _content_text(completion.get("content"))
    if isinstance(completion, Sequence):
        parts = [_content_text(m.get("content")) for m in completion
                 if isinstance(m, Mapping) and m.get("role", "assistant") == "assistant"]
        return "\n".join(parts)
    raise TypeError(f"unsupported completion type {type(completion).__name__}")


def _content_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):  # multimodal parts: [{"type": "text", "text": ...}]
        return "".join(p.get("text", "") for p in content if isinstance(p, Mapping))
    return str(content)


def decode_gold(answer: Any) -> Any:
    """Gold answers travel as JSON text in our datasets (mixed families share one Arrow column)."""
    if isinstance(answer, str):
        try:
            return json.loads(answer)
        except json.JSONDecodeError:
            return answer  # a bare string answer (e.g. a user's JSONL)
    return answer


def _scores(completions: Sequence[Any], answer: Sequence[Any] | None, family: Sequence[Any] | None) -> list[dict | None]:
    if answer is None:
        raise ValueError("reward needs an 'answer' dataset column (the gold set of each prompt)")
    if len(answer) != len(completions):
        raise ValueError(f"got {len(completions)} completions but {len(answer)} answers")
    families = family if family is not None else [None] * len(completions)
    out: list[dict | None] = []
    for i, (completion, gold, fam) in enumerate(zip(completions, answer, families)):
        if gold is None:
            out.append(None)  # not applicable: TRL turns None into NaN and ignores it
            continue
        text = completion_text(completion)
        try:
            out.append(dict(scorer_for(fam)(text, decode_gold(gold))))
        except Exception:  # one malformed row must not end a multi-hour run; it scores 0 and is logged
            logger.warning("scoring completion %d (family %r) failed; reward 0", i, fam, exc_info=True)
            out.append({"exact_match": 0.0, "f1": 0.0})
    return out


def exact_match_reward(completions: Sequence[Any], answer: Sequence[Any] | None = None, **kwargs: Any) -> list:
    """1.0 when the set in the last ``\\boxed{}`` equals the gold set, else 0.0 (the paper's reward)."""
    return [None if s is None else float(s["exact_match"]) for s in _scores(completions, answer, kwargs.get("family"))]


def f1_reward(completions: Sequence[Any], answer: Sequence[Any] | None = None, **kwargs: Any) -> list:
    """Set F1 between the answered and the gold set: partial credit (not in the paper; our option)."""
    return [None if s is None else float(s["f1"]) for s in _scores(completions, answer, kwargs.get("family"))]


def format_reward(completions: Sequence[Any], **kwargs: Any) -> list:
    """1.0 when the completion ends its reasoning with a brace-balanced ``\\boxed{...}`` (our option)."""
    from cf_tasks.answers import last_boxed

    return [0.0 if last_boxed(completion_text(c)) is None else 1.0 for c in completions]


REWARDS: dict[str, RewardFunc] = {
    "exact_match": exact_match_reward,
    "f1": f1_reward,
    "format": format_reward,
}
"""Built-in rewards by config name; a config may also name any ``"module:function"``."""


def resolve_reward(name: str) -> RewardFunc:
    """A reward function from its config name (built-in) or ``"module:function"`` spec."""
    if name in REWARDS:
        return REWARDS[name]
    if ":" in name:
        func = load_object(name)
        if not callable(func):
            raise ValueError(f"reward {name!r} is not callable")
        return func
    raise ValueError(f"unknown reward {name!r}; built-in rewards: {', '.join(sorted(REWARDS))} "
                     "(or give 'module:function')")
