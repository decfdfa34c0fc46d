"""``process_results`` for the code tasks: set exact match and set F1 of the final answer (``docs/answers.md``)."""

from __future__ import annotations

import json
from typing import Any, Mapping, Sequence

from cf_tasks.metrics import score_set


def gold_answer(doc: Mapping[str, Any]) -> list:
    answer = doc["answer"]
    if isinstance(answer, str) and "answer" in (doc.get("json_fields") or ()):
        answer = json.loads(answer)
    return list(answer)


def process_results(doc: Mapping[str, Any], results: Sequence[str]) -> dict[str, float]:
    response = results[0] if results else ""
    if not isinstance(response, str):  # e.g. a take_first_k filter hands a list
        response = response[0] if response else ""
    return score_set(response, gold_answer(doc))
