"""The shared joint prompt+completion encoder (``selection.tokenization``) on three tokenizer pipelines."""

from __future__ import annotations

import pytest

from helpers.tiny_lm import TOKENIZER_KINDS, build_tokenizer
from selection.tokenization import (FormattedExample, TextFormat, chat_example, encode_example, encode_pair,
                                    text_example)

PAIRS = [
    ("Question: what is 2 + 3?\nAnswer: ", "5"),
    ("def f(x, r):\n    return x + r\n", "f(1, 2) = 3"),
    ("Caf\u00e9 ", "\u20ac\u00e9 5"),
    ("x", "\n\nThe answer is \\boxed{7}."),
]


@pytest.fixture(scope="module", params=TOKENIZER_KINDS)
def tok(request):
    return build_tokenizer(kind=request.param)


class SlowView:
    """The same tokenizer seen as a slow one (no offsets), to exercise the fallback rule."""

    is_fast = False

    def __init__(self, tok):
        self._tok = tok

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": self._tok(text, add_special_tokens=add_special_tokens)["input_ids"]}

    def __getattr__(self, name):
        return getattr(self._tok, name)


@pytest.mark.parametrize("prompt,completion", PAIRS)
def test_joint_split_decodes_to_the_two_texts(tok, prompt, completion):
    example = text_example(tok, prompt, completion)
    ids = encode_example(tok, example)
    assert example.prompt == prompt.rstrip() and example.completion == prompt[len(prompt.rstrip()):] + completion
    assert ids.end_ids == (tok.eos_token_id,)
    joint = tok(example.prompt + example.completion + tok.eos_token)["input_ids"]
    assert list(ids.input_ids) == joint  # exactly the joint encoding, nothing added or lost
    text = tok.decode(list(ids.completion_ids))
    # a token spanning the boundary (here a merged "r\n" of the SentencePiece vocabularies) is scored with the
    # completion; otherwise the completion ids are exactly the completion's text
    assert text.strip().endswith(completion.strip()) and ids.straddles == (text.strip() != completion.strip())
    if not ids.straddles:  # the fallback for slow tokenizers gives the same split
        assert encode_example(SlowView(tok), example) == ids


def test_a_token_merging_across_the_boundary_is_scored_with_the_completion():
    tok = build_tokenizer()  # byte-level: "Answer" is one token of its vocabulary
    ids = encode_pair(tok, "Question: q\nAnsw", "er: 5", add_special_tokens=False)
    assert ids.straddles
    assert tok.decode(list(ids.prompt_ids)) == "Question: q\n"
    assert tok.decode(list(ids.completion_ids)) == "Answer: 5"


def test_bos_handling():
    tok = build_tokenizer(kind="legacy")
    with_bos = encode_pair(tok, "a", " b")
    assert with_bos.prompt_ids[0] == tok.bos_token_id
    without = encode_pair(tok, "a", " b", add_special_tokens=False)
    assert tok.bos_token_id not in without.prompt_ids
    forced = encode_pair(tok, "a", " b", add_special_tokens=False, force_bos=True)
    assert forced.prompt_ids == (tok.bos_token_id, *without.prompt_ids)
    assert encode_pair(tok, "a", " b", force_bos=True) == with_bos  # never two BOS


@pytest.mark.parametrize("kind", TOKENIZER_KINDS)
def test_chat_example_is_what_the_template_renders(kind):
    tok = build_tokenizer(kind=kind)
    messages = [{"role": "user", "content": "what is 2 + 3?"}]
    example = chat_example(tok, messages, "\\boxed{5}")
    full = tok.apply_chat_template(messages + [{"role": "assistant", "content": "\\boxed{5}"}], tokenize=False)
    assert example.prompt + example.completion + example.format.end == full
    assert example.completion.endswith("\\boxed{5}") and example.format.add_special_tokens is False
    ids = encode_example(tok, example)
    assert list(ids.input_ids) == tok(full, add_special_tokens=False)["input_ids"]
    assert tok.decode(list(ids.completion_ids)).strip() == "\\boxed{5}"


def test_formatted_record_round_trip_and_errors():
    example = FormattedExample("Q:", " 5", TextFormat(style="template", end="</s>", template="Q:{response}"))
    assert FormattedExample.from_record(example.to_record()) == example
    with pytest.raises(ValueError, match=r"sel.jsonl:3: field formatted.format.force_bos: expected bool"):
        FormattedExample.from_record({"prompt": "Q:", "completion": " 5",
                                      "format": {"style": "template", "force_bos": "yes"}}, "sel.jsonl:3")
    with pytest.raises(ValueError, match=r"formatted.completion must be a string"):
        FormattedExample.from_record({"prompt": "Q:", "format": {"style": "chat"}})
    with pytest.raises(ValueError, match=r"unknown key\(s\) stlye"):
        FormattedExample.from_record({"prompt": "Q:", "completion": "", "format": {"stlye": "chat"}})
    with pytest.raises(ValueError, match="style must be one of"):
        TextFormat(style="jinja")
