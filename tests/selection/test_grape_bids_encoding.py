"""BIDS encodes selection rows with the shared joint encoder, exactly as GRAPE scored them."""

from selection.bids.config import DataConfig
from selection.bids.data import IGNORE, encode_row


def test_grape_selection_rows_are_encoded_as_they_were_scored(tmp_path):
    """A selection row's ``formatted`` record wins over its raw columns: BIDS gradients cover the scored tokens
    (before: the raw instruction and response were concatenated, 'What is 2 + 3?The answer is 5.<|endoftext|>')."""
    from helpers.tiny_lm import build_tokenizer
    from selection.grape.prompting import encode_candidate, format_candidate

    for kind in ("byte_level", "legacy"):
        tok = build_tokenizer(kind=kind)
        example = format_candidate(tok, "What is 2 + 3?", "The answer is 5.", template="Question: {instruction}\nAnswer: {response}")
        row = {"instruction": "What is 2 + 3?", "response": "The answer is 5.", "formatted": example.to_record()}
        enc = encode_row(row, tok, DataConfig())
        scored = encode_candidate(tok, example)
        assert enc.input_ids == [*scored.prompt_ids, *scored.completion_ids, tok.eos_token_id]
        assert enc.labels == [IGNORE] * len(scored.prompt_ids) + [*scored.completion_ids, tok.eos_token_id]
        assert tok.decode(enc.input_ids, skip_special_tokens=True).endswith("Question: What is 2 + 3?\nAnswer: The answer is 5.")


def test_prompt_completion_rows_have_no_spurious_sentencepiece_token():
    from helpers.tiny_lm import build_tokenizer

    tok = build_tokenizer(kind="legacy")
    enc = encode_row({"prompt": "Question: what is 2 + 3?\nAnswer:", "completion": " 5"}, tok, DataConfig())
    trained = tok.convert_ids_to_tokens([t for t, lab in zip(enc.input_ids, enc.labels) if lab != IGNORE])
    assert trained == ["\u25815", "</s>"]  # separately encoded, " 5" was ["▁", "▁5"]
