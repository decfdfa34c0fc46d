"""How items become lm-eval documents and back.

Arrow (behind ``datasets``) needs one type per column, but items hold nested,
per-item structures (latent domains, inputs, answers whose element types may
differ across user records). Every list or dict field is therefore stored as
canonical JSON text, and ``json_fields`` names those fields; :func:`decode_doc`
restores the item. Scalar fields (``id``, ``family``, ``variant``, ``level``,
``n_consistent``, ``prompt``...) stay as they are, so logged samples remain
readable.
"""

from __future__ import annotations

import json
from typing import Any, Iterable, Mapping

from cf_tasks.answers import format_answer
from cf_tasks.jsonl import dumps


def encode_doc(item: Mapping[str, Any]) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    json_fields = []
    for key, value in item.items():
        if isinstance(value, (list, dict, tuple)):
            doc[key] = dumps(value)
            json_fields.append(key)
        else:
            doc[key] = value
    doc["json_fields"] = sorted(json_fields)
    if "target" not in doc and "answer" in item and item["answer"] is not None:
        doc["target"] = format_answer(item["answer"])
    return doc


def decode_doc(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The item behind an lm-eval document (idempotent on already-decoded items)."""
    fields = doc.get("json_fields") or ()
    out = {k: v for k, v in doc.items() if k != "json_fields"}
    for key in fields:
        value = out.get(key)
        if isinstance(value, str):
            try:
                out[key] = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"field {key!r}: invalid JSON text ({exc.msg})") from None
    return out


def flatten_responses(value: Any) -> list[str]:
    """All response strings in lm-eval's ``resps`` / ``filtered_resps`` (lists per request and repeat)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [text for item in value for text in flatten_responses(item)]
    return []


def to_dataset_dict(items: Iterable[Mapping[str, Any]], split: str = "test"):
    """A ``DatasetDict`` with one split; every row shares the same columns (missing ones are None)."""
    import datasets

    docs = [encode_doc(item) for item in items]
    columns: dict[str, None] = {}
    for doc in docs:
        for key in doc:
            columns.setdefault(key, None)
    rows = {key: [doc.get(key) for doc in docs] for key in columns}
    return datasets.DatasetDict({split: datasets.Dataset.from_dict(rows)})
