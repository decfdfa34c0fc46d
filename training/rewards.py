"""GRPO reward functions: thin wrappers over the benchmark's own parser and metric.

Why wrappers and not new scoring code: the reward a policy is trained on must be
the number the benchmark reports (*Executable Counterfactuals*, ICLR 2026: the paper's
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

Per-family dispatch goes through :data:`cf_tasks.scoring.SCORERS` (family name ->
``"module:attr"`` of a ``(response_text, gold) -> {"exact_match", "f1"}`` function),
shared with lm-eval, the pool, collect, the report and the integrations.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Mapping, Sequence

# One scorer for every consumer lives in cf_tasks.scoring; re-exported for reward configs and old imports.
from cf_tasks.scoring import (DEFAULT_SCORER, SCORERS, Scorer, decode_gold, load_object,  # noqa: F401
                              score_math_answer, score_set_answer, scorer_for)

logger = logging.getLogger(__name__)

RewardFunc = Callable[..., list]


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
    """1.0 when the final answer's set equals the gold set, else 0.0 (the paper's reward; ``docs/answers.md``)."""
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
