"""Encoding rows for BIDS: exactly the response tokens carry labels."""

import pytest

from selection.bids.config import DataConfig
from selection.bids.data import IGNORE, collate, encode_row


@pytest.fixture(scope="module")
def tokenizer(tiny_lm_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_lm_dir)


def _trained_text(tok, enc):
    return tok.decode([t for t, lab in zip(enc.input_ids, enc.labels) if lab != IGNORE])


def test_prompt_completion_labels_only_the_completion_and_eos(tokenizer):
    enc = encode_row({"prompt": "Question: what is 2 + 3?", "completion": " Answer: 5"}, tokenizer, DataConfig())
    assert _trained_text(tokenizer, enc) == " Answer: 5" + tokenizer.eos_token
    assert enc.labels[0] == IGNORE and enc.input_ids[-1] == tokenizer.eos_token_id
    assert all(lab in (IGNORE, tok) for tok, lab in zip(enc.input_ids, enc.labels))  # labels are the ids


def test_instruction_response_rows_are_accepted(tokenizer):
    enc = encode_row({"instruction": "def f(x):", "response": " return x"}, tokenizer, DataConfig())
    assert _trained_text(tokenizer, enc) == " return x" + tokenizer.eos_token


def test_chat_rows_train_assistant_turns_only(tokenizer):
    messages = [{"role": "user", "content": "what is 2 + 3?"}, {"role": "assistant", "content": "5"},
                {"role": "user", "content": "and 3 + 4?"}, {"role": "assistant", "content": "\\boxed{7}"}]
    enc = encode_row({"messages": messages}, tokenizer, DataConfig())
    trained = _trained_text(tokenizer, enc)
    assert "5" in trained and "\\boxed{7}" in trained
    assert "what is" not in trained and "<|user|>" not in trained and "<|assistant|>" not in trained


def test_chat_rows_without_template_use_less_format(tokenizer):
    tok = type(tokenizer).from_pretrained(tokenizer.name_or_path)
    tok.chat_template = None
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
    enc = encode_row({"messages": messages}, tok, DataConfig())
    assert tok.decode(enc.input_ids) == f"<|user|>\nhi\n<|assistant|>\nhello{tok.eos_token}\n"
    assert _trained_text(tok, enc) == "hello" + tok.eos_token


def test_truncation_and_bad_rows(tokenizer):
    enc = encode_row({"prompt": "a b c d e f g", "completion": " h i j"}, tokenizer, DataConfig(max_length=3))
    assert len(enc.input_ids) == 3
    with pytest.raises(ValueError, match="train.jsonl:4: row needs"):
        encode_row({"text": "x"}, tokenizer, DataConfig(), where="train.jsonl:4")
    with pytest.raises(ValueError, match="no assistant message"):
        encode_row({"messages": [{"role": "user", "content": "x"}]}, tokenizer, DataConfig())
    with pytest.raises(ValueError, match="'completion' must be a string"):
        encode_row({"prompt": "x", "completion": 3}, tokenizer, DataConfig())


def test_collate_pads_on_the_right(tokenizer):
    a = encode_row({"prompt": "a", "completion": " b"}, tokenizer, DataConfig())
    b = encode_row({"prompt": "a b c d", "completion": " e f"}, tokenizer, DataConfig())
    ids, mask, labels = collate([a, b], 7)
    assert ids[0, : len(a.input_ids)].tolist() == a.input_ids and ids[0, len(a.input_ids):].eq(7).all()
    assert mask[0].sum() == len(a.input_ids) and labels[0, len(a.input_ids):].eq(IGNORE).all()
