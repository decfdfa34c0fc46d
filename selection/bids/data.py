"""Rows -> token ids and loss labels, and padded batches of them.

Rows are selection rows carrying a ``formatted`` record (written by GRAPE:
the exact prompt/completion text that was scored and how it was tokenized),
chat ``messages`` (loss on the assistant turns) or prompt/completion pairs
(loss on the completion and EOS), as in LESS. Labels are ``-100`` outside the
trained span, so warm-up training, the per-example gradients and any later SFT
score exactly the same tokens.

Chat rows use the tokenizer's chat template when it has one: the text of each
assistant turn is located by rendering the conversation prefix by prefix (the
open-instruct technique), then the whole conversation is tokenised once and
every token whose characters start inside an assistant turn is trained. Without
a chat template, LESS's format ``<|user|>\\n...\\n<|assistant|>\\n...EOS`` is used.
Formatted and prompt/completion rows go through the shared joint encoder
(:mod:`selection.tokenization`, also used by GRAPE and SFT): the text
``prompt + completion + end`` is tokenized once with the tokenizer's special
tokens (e.g. BOS) and split at the character boundary, so a SentencePiece
tokenizer gives the completion no spurious ``"▁"`` token; ``end`` (EOS, or the
chat turn's end) is trained too.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Sequence

from selection.bids.config import DataConfig
from selection.tokenization import FORMATTED_FIELD, FormattedExample, PairIds, encode_example, text_example

logger = logging.getLogger(__name__)

IGNORE = -100
# Rows written by GRAPE / ``selection.io`` carry ``instruction`` and ``response``; accepted when the
# configured prompt/completion columns are absent.
FALLBACK_FIELDS = ("instruction", "response")


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]

    @property
    def n_label_tokens(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE)


def encode_row(row: dict[str, Any], tokenizer, config: DataConfig, *, where: str = "row") -> Encoded:
    """Encode one row; ``where`` (e.g. ``train.jsonl:12``) prefixes error messages."""
    if row.get(FORMATTED_FIELD) is not None:  # a selection row: train exactly what the selector scored
        example = FormattedExample.from_record(row[FORMATTED_FIELD], where)
        return _truncate(_labelled(encode_example(tokenizer, example)), config.max_length)
    messages = row.get(config.messages_field)
    if messages is not None:
        return _truncate(_encode_messages(messages, tokenizer, where, config.messages_field), config.max_length)
    for prompt_field, completion_field in ((config.prompt_field, config.completion_field), FALLBACK_FIELDS):
        if prompt_field in row and completion_field in row:
            break
    else:
        raise ValueError(
            f"{where}: row needs a {config.messages_field!r} list or both {config.prompt_field!r} and "
            f"{config.completion_field!r} fields (or {FALLBACK_FIELDS[0]!r}/{FALLBACK_FIELDS[1]!r}); "
            f"it has {sorted(row)}"
        )
    prompt, completion = row[prompt_field], row[completion_field]
    for name, value in ((prompt_field, prompt), (completion_field, completion)):
        if not isinstance(value, str):
            raise ValueError(f"{where}: field {name!r} must be a string, got {type(value).__name__}")
    enc = _labelled(encode_example(tokenizer, text_example(tokenizer, prompt, completion)))
    return _truncate(enc, config.max_length)


def _labelled(ids: PairIds) -> Encoded:
    trained = [*ids.completion_ids, *ids.end_ids]
    return Encoded(ids.input_ids, [IGNORE] * len(ids.prompt_ids) + trained)


def _check_messages(messages: Any, where: str, field_name: str) -> None:
    if not isinstance(messages, list) or not messages:
        raise ValueError(f"{where}: field {field_name!r} must be a non-empty list of messages")
    for k, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str) \
                or not isinstance(message.get("content"), str):
            raise ValueError(f"{where}: {field_name}[{k}] must be an object with string 'role' and 'content'")
    if not any(m["role"] == "assistant" for m in messages):
        raise ValueError(f"{where}: {field_name!r} has no assistant message to train on")


def _encode_messages(messages: list, tokenizer, where: str, field_name: str) -> Encoded:
    _check_messages(messages, where, field_name)
    if getattr(tokenizer, "chat_template", None):
        return _encode_with_template(messages, tokenizer, where)
    return _encode_less_format(messages, tokenizer)


def _encode_with_template(messages: list, tokenizer, where: str) -> Encoded:
    full = tokenizer.apply_chat_template(messages, tokenize=False)
    spans = []
    for k, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = tokenizer.apply_chat_template(messages[:k], tokenize=False, add_generation_prompt=True) if k else ""
        through = tokenizer.apply_chat_template(messages[: k + 1], tokenize=False)
        if not through.startswith(before) or not full.startswith(through):
            raise ValueError(
                f"{where}: the chat template does not render conversations prefix by prefix, so assistant "
                "turns cannot be located; use prompt/completion rows instead"
            )
        spans.append((len(before), len(through)))
    enc = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    labels = []
    for token, (start, _end) in zip(enc["input_ids"], enc["offset_mapping"]):
        inside = any(lo <= start < hi for lo, hi in spans)
        labels.append(token if inside else IGNORE)
    return Encoded(list(enc["input_ids"]), labels)


def _encode_less_format(messages: list, tokenizer) -> Encoded:
    ids: list[int] = []
    labels: list[int] = []
    eos = tokenizer.eos_token or ""
    for message in messages:
        role, content = message["role"], message["content"]
        if role == "assistant":
            head = tokenizer("<|assistant|>\n", add_special_tokens=False)["input_ids"]
            body = tokenizer(content + eos, add_special_tokens=False)["input_ids"]
            ids += head + body
            labels += [IGNORE] * len(head) + body
            tail = tokenizer("\n", add_special_tokens=False)["input_ids"]
        else:
            tail = tokenizer(f"<|{role}|>\n{content}\n", add_special_tokens=False)["input_ids"]
        ids += tail
        labels += [IGNORE] * len(tail)
    return Encoded(ids, labels)


def _truncate(enc: Encoded, max_length: int) -> Encoded:
    if len(enc.input_ids) <= max_length:
        return enc
    return Encoded(enc.input_ids[:max_length], enc.labels[:max_length])


def encode_rows(rows: Sequence[dict[str, Any]], tokenizer, config: DataConfig, *,
                source: str = "rows") -> list[Encoded]:
    """Encode every row; warn once about rows left with no trained token (their gradient is zero)."""
    out = [encode_row(row, tokenizer, config, where=f"{source}:{i + 1}") for i, row in enumerate(rows)]
    empty = [i for i, e in enumerate(out) if e.n_label_tokens == 0]
    if empty:
        logger.warning("%s: %d row(s) have no trained token after truncation to %d tokens (first: row %d); "
                       "their gradient features are zero", source, len(empty), config.max_length, empty[0] + 1)
    return out


def collate(batch: Sequence[Encoded], pad_id: int):
    """Right-padded ``input_ids``, ``attention_mask`` and ``labels`` tensors.

    Right padding matters: with causal attention the real tokens never see the
    padding, so a padded example's logits and gradients equal its unpadded ones.
    """
    import torch

    width = max(len(e.input_ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
    labels = torch.full((len(batch), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for row, e in enumerate(batch):
        n = len(e.input_ids)
        ids[row, :n] = torch.tensor(e.input_ids, dtype=torch.long)
        labels[row, :n] = torch.tensor(e.labels, dtype=torch.long)
        mask[row, :n] = 1
    return ids, mask, labels


def pad_token_id(tokenizer) -> int:
    if tokenizer.pad_token_id is not None:
        return int(tokenizer.pad_token_id)
    if tokenizer.eos_token_id is not None:
        return int(tokenizer.eos_token_id)
    return 0
