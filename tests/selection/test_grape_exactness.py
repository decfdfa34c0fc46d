"""GRAPE scores exactly the response tokens of the joint encoding, for three tokenizer pipelines.

The reference is written independently of the library: lm-eval's
``loglikelihood`` rule (move the prompt's trailing whitespace to the response,
encode the whole text, split at the prompt's own token count) and one plain
forward pass per (prompt, response) pair. The tokenizers are built locally: a
byte-level BPE (GPT-2 style), a Metaspace SentencePiece-style BPE and a legacy
SentencePiece conversion with a ``Prepend("▁")`` normalizer, which is the one
whose separately encoded responses got a spurious leading ``"▁"`` token.
"""

from __future__ import annotations

import json

import pytest

torch = pytest.importorskip("torch")

from helpers.tiny_lm import TOKENIZER_KINDS, save_tiny_lm  # noqa: E402
from selection.grape.config import DEFAULT_TEMPLATE, GrapeConfig  # noqa: E402
from selection.grape.plugin import GrapeSelector  # noqa: E402
from selection.grape.scoring_hf import HFScorer  # noqa: E402
from selection.io import build_pool  # noqa: E402

INSTRUCTIONS = [
    "what is 2 + 3?",
    "def f(x, r):\n    if x > 3:\n        return x + r\n    return r - x\nWhat is f(5, 2)?",
    "Reason step by step, then give the final answer inside \\boxed{}. " * 3,
    "Caf\u00e9 \u20ac?",
]
RESPONSES = [
    ["5", "The answer is \\boxed{5}.", "seven", " 2 + 3 = 5, so \\boxed{5}", "5"],
    ["7", "x > 3 so it returns x + r = 7. \\boxed{7}", "\nreturn 7", "def f(x, r): return 7"],
    ["\\boxed{3, 5}", "a", "Reason: the loop runs twice.\nThe answer is \\boxed{3}.", "b c d e f g h"],
    ["\u00e9\u20ac 5", "no", "  two leading spaces"],
]


@pytest.fixture(scope="module", params=TOKENIZER_KINDS)
def lm(request, tmp_path_factory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = save_tiny_lm(tmp_path_factory.mktemp(f"lm_{request.param}"), tokenizer_kind=request.param)
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    return request.param, path, tok, model


def reference_split(tok, context: str, response: str, *, chat: bool, messages=None) -> tuple[list[int], list[int]]:
    """lm-eval's rule, written out: whitespace to the continuation, encode the whole, split at len(context ids)."""
    continuation = response
    if chat:  # the continuation is what the chat template renders for the answer, up to its end
        full = tok.apply_chat_template(messages + [{"role": "assistant", "content": response}], tokenize=False)
        assert full.startswith(context)
        rest = full[len(context):]
        continuation = rest[: rest.index(response) + len(response)]
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        continuation, context = context[-n_spaces:] + continuation, context[:-n_spaces]
    special = not chat
    whole = tok(context + continuation, add_special_tokens=special)["input_ids"]
    ctx = tok(context, add_special_tokens=special)["input_ids"]
    assert whole[: len(ctx)] == ctx, "the test data must not merge tokens across the boundary"
    return ctx, whole[len(ctx):]


def reference_mean(tok, model, instruction: str, response: str, *, chat: bool) -> float:
    """One forward pass of the whole sequence per pair; mean log-prob of the continuation tokens."""
    if chat:
        messages = [{"role": "user", "content": instruction}]
        context = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    else:
        messages, context = None, DEFAULT_TEMPLATE[: DEFAULT_TEMPLATE.index("{response}")].format(instruction=instruction)
    ctx, cont = reference_split(tok, context, response, chat=chat, messages=messages)
    ids = torch.tensor([ctx + cont])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0].double(), dim=-1)
    return sum(float(logp[len(ctx) - 1 + t, tok_id]) for t, tok_id in enumerate(cont)) / len(cont)


def pool():
    return build_pool([(f"mem:{i}", {"instruction": ins, "responses": rs})
                       for i, (ins, rs) in enumerate(zip(INSTRUCTIONS, RESPONSES))])


@pytest.mark.parametrize("chat", [False, True], ids=["template", "chat"])
def test_scores_and_selections_equal_one_forward_per_pair(lm, chat):
    kind, path, tok, model = lm
    config = GrapeConfig(model=str(path), top_k="2", chat_template=chat, progress=False, max_batch_tokens=96)
    scorer = HFScorer(model, max_batch_tokens=96, pad_token_id=tok.pad_token_id)
    result = GrapeSelector().run(pool(), config, tokenizer=tok, scorer=scorer)
    worst = 0.0
    for i, (instruction, responses) in enumerate(zip(INSTRUCTIONS, RESPONSES)):
        reference = [reference_mean(tok, model, instruction, r, chat=chat) for r in responses]
        got = [result.mean(i, j) for j in range(len(responses))]
        worst = max(worst, max(abs(a - b) for a, b in zip(got, reference)))
        expected = sorted(range(len(responses)), key=lambda j: (-reference[j], j))[:2]
        assert result.ranked[i] == expected, (kind, instruction)
    assert worst <= 1e-5, f"{kind}: max |score - reference| = {worst:.2e}"


def test_the_legacy_tokenizer_reproduces_the_separate_encoding_defect(lm):
    """Sanity check of the test tokenizers: encoding the response alone adds a '▁' token only for legacy."""
    kind, _, tok, _ = lm
    alone = tok.convert_ids_to_tokens(tok(" 5", add_special_tokens=False)["input_ids"])
    joint = tok.convert_ids_to_tokens(tok("Answer: 5", add_special_tokens=False)["input_ids"])
    assert (alone[0] == "\u2581" and len(alone) == 2) == (kind == "legacy")
    assert joint[-1] in ("\u0120" + "5", "\u2581" + "5")


def test_selected_rows_record_the_scored_text(lm, tmp_path):
    """The ``formatted`` record replays to exactly the ids that were scored."""
    from selection.grape.prompting import encode_candidate
    from selection.tokenization import FormattedExample, encode_example

    kind, path, tok, model = lm
    config = GrapeConfig(model=str(path), progress=False)
    result = GrapeSelector().run(pool(), config, tokenizer=tok, scorer=HFScorer(model, pad_token_id=tok.pad_token_id))
    rows = list(result.selected_rows())
    assert len(rows) == len(INSTRUCTIONS)
    for i, row in enumerate(rows):
        record = json.loads(json.dumps(row["formatted"]))  # survives a JSONL round trip
        example = FormattedExample.from_record(record)
        assert example.prompt == f"Question: {INSTRUCTIONS[i]}\nAnswer:" and example.completion == " " + row["response"]
        assert record["format"]["style"] == "template" and record["format"]["end"] == tok.eos_token
        ids = encode_candidate(tok, example)
        assert sum(1 for _ in ids.completion_ids) == result.run.scores[i][row["response_index"]].score.n_tokens
        replay = encode_example(tok, example)
        assert replay.end_ids == (tok.eos_token_id,)
        assert list(replay.prompt_ids) + list(replay.completion_ids) == list(ids.prompt_ids) + list(ids.completion_ids)
