"""The one prompt+completion encoder shared by GRAPE scoring, BIDS gradients and SFT training.

Why one encoder: a data selector's score is only meaningful for the tokens the
model is later trained on. GRAPE scores a completion given a prompt, BIDS takes
gradients of the same tokens, SFT trains on them; if any of the three builds its
token ids differently, what was selected is not what is trained.

How an example is built and encoded (lm-eval's ``loglikelihood`` rule, made exact):

1. Plain-text examples (:func:`text_example`) move the prompt's trailing
   whitespace to the front of the completion (``"Answer: " + "5"`` ->
   ``"Answer:" + " 5"``), so the completion starts with an ordinary ``" 5"`` /
   ``"▁5"`` token rather than a lone space. Chat examples keep the generation
   prompt verbatim (its final newline is part of the template).
2. :func:`encode_pair` tokenizes the *joint* text ``prompt + completion + end``
   once, so every tokenizer (byte-level BPE, Metaspace, legacy SentencePiece
   ``Prepend("▁")`` normalizers) produces the tokens it would produce for the
   whole sequence. Encoding the pieces separately gives a legacy SentencePiece
   tokenizer a spurious ``"▁"`` at the start of every completion.
3. The ids are split at the character boundaries with the fast tokenizer's
   offset mapping: a token belongs to the prompt when it ends at or before the
   prompt's last character, to the completion when it ends inside the
   completion (a token that straddles the boundary therefore counts as
   completion: it carries completion characters), and to ``end`` after that.
   Tokens the tokenizer adds itself (BOS at the start, EOS at the end for
   tokenizers configured so) go to the prompt and to ``end``. Slow tokenizers
   without offsets fall back to lm-eval's rule: the prompt's own encoding
   length (its common prefix with the joint encoding) marks the boundary.

``end`` is text trained after the completion but never scored: the EOS token
for plain templates, the chat template's end-of-turn for chat rows.

A :class:`FormattedExample` (prompt text, completion text, :class:`TextFormat`)
is what selection files record for every selected row (``formatted``), so SFT
and BIDS replay exactly the text and special-token settings GRAPE scored.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping, Sequence

FORMATTED_FIELD = "formatted"
"""Column of a selection file holding each row's :class:`FormattedExample` record."""

STYLES = ("template", "chat", "text")


@dataclass(frozen=True)
class TextFormat:
    """How an example's text was built and tokenized (recorded with each selected row)."""

    style: str
    """``template`` (a plain prompt template), ``chat`` (the tokenizer's chat template) or ``text`` (as given)."""
    add_special_tokens: bool = True
    """Encode the joint text with the tokenizer's own special tokens (e.g. a Llama BOS); False for chat text."""
    force_bos: bool = False
    """Prepend the BOS id when the encoding does not already start with it."""
    end: str | None = None
    """Text after the completion: trained by SFT and BIDS, never scored (EOS, or the chat turn's end);
    None = the EOS text of whichever tokenizer encodes the example."""
    template: str | None = None
    """The prompt template (``template`` style), for the record."""
    tokenizer: str | None = None
    """``name_or_path`` of the tokenizer that rendered the text, for the record."""

    def __post_init__(self) -> None:
        if self.style not in STYLES:
            raise ValueError(f"format style must be one of {', '.join(STYLES)}, got {self.style!r}")


@dataclass(frozen=True)
class FormattedExample:
    """The exact prompt and completion strings of one example and how to tokenize them."""

    prompt: str
    completion: str
    format: TextFormat

    def to_record(self) -> dict[str, Any]:
        return {"prompt": self.prompt, "completion": self.completion, "format": asdict(self.format)}

    @classmethod
    def from_record(cls, value: Any, where: str = "row") -> "FormattedExample":
        """Read a ``formatted`` record back; errors name ``where`` and the field."""
        if not isinstance(value, Mapping):
            raise ValueError(f"{where}: field {FORMATTED_FIELD!r} must be an object, got {type(value).__name__}")
        for key in ("prompt", "completion"):
            if not isinstance(value.get(key), str):
                raise ValueError(f"{where}: field {FORMATTED_FIELD}.{key} must be a string")
        fmt = value.get("format")
        if not isinstance(fmt, Mapping):
            raise ValueError(f"{where}: field {FORMATTED_FIELD}.format must be an object")
        known = {f.name for f in fields(TextFormat)}
        unknown = sorted(set(fmt) - known)
        if unknown:
            raise ValueError(f"{where}: field {FORMATTED_FIELD}.format has unknown key(s) {', '.join(unknown)}; "
                             f"known: {', '.join(sorted(known))}")
        types = {"style": (str,), "add_special_tokens": (bool,), "force_bos": (bool,), "end": (str, type(None)),
                 "template": (str, type(None)), "tokenizer": (str, type(None))}
        for key, allowed in types.items():
            if key in fmt and not isinstance(fmt[key], allowed):
                raise ValueError(f"{where}: field {FORMATTED_FIELD}.format.{key}: expected "
                                 f"{' or '.join('null' if t is type(None) else t.__name__ for t in allowed)}, "
                                 f"got {fmt[key]!r}")
        try:
            text_format = TextFormat(**fmt)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{where}: field {FORMATTED_FIELD}.format: {exc}") from None
        return cls(value["prompt"], value["completion"], text_format)


@dataclass(frozen=True)
class PairIds:
    """Token ids of one example, split into prompt, completion (the scored part) and end."""

    prompt_ids: tuple[int, ...]
    completion_ids: tuple[int, ...]
    end_ids: tuple[int, ...] = ()
    straddles: bool = False
    """A token spans the prompt/completion boundary (it is scored with the completion)."""

    @property
    def input_ids(self) -> list[int]:
        return [*self.prompt_ids, *self.completion_ids, *self.end_ids]


def move_trailing_whitespace(prompt: str, completion: str) -> tuple[str, str]:
    """``("Answer: ", "5")`` -> ``("Answer:", " 5")`` (lm-eval's ``_encode_pair``)."""
    stripped = prompt.rstrip()
    if not stripped:
        return prompt, completion  # an all-whitespace prompt is kept as the context
    return stripped, prompt[len(stripped):] + completion


def bos_id(tokenizer: Any) -> int | None:
    return getattr(tokenizer, "bos_token_id", None)


def encode_pair(tokenizer: Any, prompt: str, completion: str, *, add_special_tokens: bool = True,
                force_bos: bool = False, end: str = "") -> PairIds:
    """Encode ``prompt + completion + end`` jointly and split the ids at the character boundaries."""
    if getattr(tokenizer, "is_fast", False):
        ids = _split_by_offsets(tokenizer, prompt, completion, end, add_special_tokens)
    else:
        ids = _split_by_prefix(tokenizer, prompt, completion, end, add_special_tokens)
    bos = bos_id(tokenizer)
    if force_bos and bos is not None and (ids.input_ids[:1] != [bos]):
        ids = PairIds((bos, *ids.prompt_ids), ids.completion_ids, ids.end_ids, ids.straddles)
    return ids


def encode_example(tokenizer: Any, example: FormattedExample, *, with_end: bool = True) -> PairIds:
    fmt = example.format
    end = (eos_text(tokenizer) if fmt.end is None else fmt.end) if with_end else ""
    return encode_pair(tokenizer, example.prompt, example.completion, add_special_tokens=fmt.add_special_tokens,
                       force_bos=fmt.force_bos, end=end)


def _split_by_offsets(tokenizer: Any, prompt: str, completion: str, end: str, add_special: bool) -> PairIds:
    text = prompt + completion + end
    enc = tokenizer(text, add_special_tokens=add_special, return_offsets_mapping=True)
    ids, offsets = list(enc["input_ids"]), list(enc["offset_mapping"])
    b1, b2 = len(prompt), len(prompt) + len(completion)
    last_real = max((i for i, (s, e) in enumerate(offsets) if e > s), default=-1)
    segment: list[int] = []  # 0 prompt, 1 completion, 2 end; never decreasing along the sequence
    straddles = False
    for i, (start, stop) in enumerate(offsets):
        current = segment[-1] if segment else 0
        if stop <= start:  # no characters: a token the tokenizer adds (BOS first, EOS last) or a zero-width one
            segment.append(2 if i > last_real >= 0 else current)
        elif stop <= b1:
            segment.append(current)
        elif stop <= b2 or start < b2:
            straddles = straddles or start < b1
            segment.append(max(current, 1))
        else:
            segment.append(2)
    if completion and 1 not in segment:
        raise ValueError(f"completion {completion[:40]!r} encodes to no token of its own")
    parts: list[list[int]] = [[], [], []]
    for token, seg in zip(ids, segment):
        parts[seg].append(token)
    return PairIds(tuple(parts[0]), tuple(parts[1]), tuple(parts[2]), straddles)


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def _split_by_prefix(tokenizer: Any, prompt: str, completion: str, end: str, add_special: bool) -> PairIds:
    """lm-eval's rule for tokenizers without offsets: the prompt's encoding length marks the boundary."""

    def encode(text: str) -> list[int]:
        return list(tokenizer(text, add_special_tokens=add_special)["input_ids"]) if text or add_special else []

    whole = encode(prompt + completion + end)
    n_prompt = _common_prefix(encode(prompt), whole)
    n_through = _common_prefix(encode(prompt + completion), whole) if end else len(whole)
    straddles = n_prompt < len(encode(prompt))
    return PairIds(tuple(whole[:n_prompt]), tuple(whole[n_prompt:n_through]), tuple(whole[n_through:]), straddles)


# -- building formatted examples ----------------------------------------------------------------------------------

def eos_text(tokenizer: Any) -> str:
    return getattr(tokenizer, "eos_token", None) or ""


def text_example(tokenizer: Any, prompt: str, completion: str, *, style: str = "text",
                 template: str | None = None, add_special_tokens: bool = True, force_bos: bool = False,
                 end: str | None = None) -> FormattedExample:
    """A plain-text example; ``end`` defaults to the tokenizer's EOS text (what SFT appends).

    ``tokenizer`` may be None (a selection made without a model): ``end`` is
    then left to the EOS of the tokenizer that later encodes the example.
    """
    if end is None and tokenizer is not None:
        end = eos_text(tokenizer)
    prompt, completion = move_trailing_whitespace(prompt, completion)
    fmt = TextFormat(style=style, add_special_tokens=add_special_tokens, force_bos=force_bos, end=end,
                     template=template, tokenizer=getattr(tokenizer, "name_or_path", None) or None)
    return FormattedExample(prompt, completion, fmt)


def chat_example(tokenizer: Any, messages: Sequence[Mapping[str, Any]], response: str, *,
                 force_bos: bool = False) -> FormattedExample:
    """The conversation ``messages`` answered by ``response``, as the tokenizer's chat template renders it.

    The prompt is the generation prompt (``add_generation_prompt=True``), the
    text the model conditions on when it answers. The completion is what the
    template renders for the assistant turn up to the end of the response
    (template text before the response, such as Llama-2's leading space, is
    part of it); ``end`` is the rest of the turn (e.g. ``<|im_end|>\\n``).
    Templates that render the prompt differently alone and inside the full
    conversation fall back to the raw response and the EOS text as ``end``.
    """
    if getattr(tokenizer, "chat_template", None) is None:
        raise ValueError("the tokenizer has no chat template")
    messages = [dict(m) for m in messages]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(messages + [{"role": "assistant", "content": response}], tokenize=False)
    completion, end = response, eos_text(tokenizer)
    if full.startswith(prompt):
        rest = full[len(prompt):]
        for content in (response, response.strip()):
            at = rest.find(content) if content else -1
            if at >= 0:
                completion, end = rest[: at + len(content)], rest[at + len(content):]
                break
    fmt = TextFormat(style="chat", add_special_tokens=False, force_bos=force_bos, end=end,
                     tokenizer=getattr(tokenizer, "name_or_path", None) or None)
    return FormattedExample(prompt, completion, fmt)
