"""GRAPE scoring against an independent brute-force computation on a tiny local GPT-2."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from selection.grape.config import DEFAULT_TEMPLATE, GrapeConfig  # noqa: E402
from selection.grape.plugin import GrapeSelector  # noqa: E402
from selection.grape.prompting import encode_group  # noqa: E402
from selection.grape.scoring_hf import HFScorer, pack  # noqa: E402
from selection.io import build_pool  # noqa: E402

INSTRUCTIONS = [
    "what is 2 + 3?",
    "def f(x, r):\n    if x > 3:\n        return x + r\n    return r - x\nWhat is f(5, 2)?",
    "Reason step by step, then give the final answer as a set of values inside \\boxed{}. " * 4,
    "x",
]
RESPONSES = [
    ["5", "The answer is \\boxed{5}.", "seven", " 2 + 3 = 5, so \\boxed{5}", "5"],
    ["7", "x > 3 so it returns x + r = 7. \\boxed{7}", "def f(x, r): return 7"],
    ["\\boxed{3, 5}", "a", "Reason: the loop runs twice.\nThe answer is \\boxed{3}.", "b c d e f g h i j k l m n"],
    ["only one candidate, fairly long for a tiny prompt " * 3],
]


@pytest.fixture(scope="module")
def lm(tiny_lm_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_lm_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir, dtype=torch.float32).eval()
    return tok, model


def brute_force_mean(tok, model, instruction: str, response: str) -> float:
    """One full forward pass of prompt+response, written independently of the library code.

    Implements the documented rule directly: the prompt is the template up to
    "Answer:", the space goes with the response, only response tokens count.
    """
    prompt = tok(f"Question: {instruction}\nAnswer:")["input_ids"]
    resp = tok(" " + response, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([prompt + resp])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0].double(), dim=-1)
    total = sum(float(logp[len(prompt) - 1 + t, tok_id]) for t, tok_id in enumerate(resp))
    return total / len(resp)


def groups(tok):
    return [encode_group(tok, i, r, template=DEFAULT_TEMPLATE) for i, r in zip(INSTRUCTIONS, RESPONSES)]


def test_encoding_puts_exactly_the_response_after_the_prompt(lm):
    tok, _ = lm
    g = encode_group(tok, "what is 2 + 3?", ["5", "five"], template=DEFAULT_TEMPLATE)
    assert tok.decode(g.prompt_ids) == "Question: what is 2 + 3?\nAnswer:"
    assert [tok.decode(r) for r in g.response_ids] == [" 5", " five"]
    eos = encode_group(tok, "q", ["5"], template=DEFAULT_TEMPLATE, score_eos=True)
    assert eos.response_ids[0][-1] == tok.eos_token_id
    plain = encode_group(tok, "q", ["5"], template=DEFAULT_TEMPLATE)
    forced = encode_group(tok, "q", ["5"], template=DEFAULT_TEMPLATE, bos="always")
    assert forced.prompt_ids == (tok.bos_token_id,) + plain.prompt_ids  # GPT-2 adds no BOS by itself
    empty = encode_group(tok, "", ["5"], template="{instruction}{response}")
    assert empty.prompt_ids == (tok.bos_token_id,)  # an empty prompt gets a BOS to condition on
    with pytest.raises(ValueError, match="empty"):
        encode_group(tok, "", ["5"], template="{instruction}{response}", bos="never")
    chat = encode_group(tok, "hi", ["there"], template=DEFAULT_TEMPLATE, chat_template=True)
    assert tok.decode(chat.prompt_ids) == "<|user|>hi\n<|assistant|>"
    assert tok.decode(chat.response_ids[0]) == "there"


@pytest.mark.parametrize("budget", [16, 200, 100_000])
@pytest.mark.parametrize("reuse", [True, False])
def test_scores_equal_brute_force(lm, budget, reuse):
    tok, model = lm
    scorer = HFScorer(model, max_batch_tokens=budget, prefix_reuse=reuse, pad_token_id=tok.pad_token_id)
    got = scorer.score(groups(tok))
    for instruction, responses, row in zip(INSTRUCTIONS, RESPONSES, got):
        for response, s in zip(responses, row):
            assert s.mean == pytest.approx(brute_force_mean(tok, model, instruction, response), abs=1e-5)


def test_kv_reuse_equals_no_reuse_within_1e4(lm):
    """Stated tolerance: 1e-4 absolute on the mean log-prob in float32 (observed ~1e-7)."""
    tok, model = lm
    g = groups(tok)
    reuse = HFScorer(model, max_batch_tokens=64, prefix_reuse=True, pad_token_id=tok.pad_token_id).score(g)
    full = HFScorer(model, max_batch_tokens=64, prefix_reuse=False, pad_token_id=tok.pad_token_id).score(g)
    diffs = [abs(a.mean - b.mean) for ra, rb in zip(reuse, full) for a, b in zip(ra, rb)]
    assert max(diffs) < 1e-4
    assert [[s.n_tokens for s in row] for row in reuse] == [[s.n_tokens for s in row] for row in full]


def test_selection_equals_brute_force(lm, tiny_lm_dir):
    tok, model = lm
    rows = [(f"mem:{i}", {"instruction": ins, "responses": rs}) for i, (ins, rs) in enumerate(zip(INSTRUCTIONS,
                                                                                             RESPONSES))]
    pool = build_pool(rows)
    for mode, sign in (("best", -1), ("reverse", 1)):
        config = GrapeConfig(model=str(tiny_lm_dir), mode=mode, top_k="2", progress=False, max_batch_tokens=128)
        result = GrapeSelector().run(pool, config, tokenizer=tok)
        for ins, rs, chosen in zip(INSTRUCTIONS, RESPONSES, result.ranked):
            brute = [brute_force_mean(tok, model, ins, r) for r in rs]
            expected = sorted(range(len(rs)), key=lambda j: (sign * brute[j], j))[:2]
            assert chosen == expected
    # identical responses tie exactly; the earlier candidate wins
    assert result.run.scores[0][0].mean == result.run.scores[0][4].mean


def test_pack_respects_budget():
    lengths = [10, 9, 9, 5, 3, 3, 1]
    batches = pack(lengths, 20)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for b in batches:
        assert len(b) == 1 or len(b) * max(lengths[i] for i in b) <= 20
    assert pack([50, 1], 20) == [[0], [1]]  # an over-budget item still runs alone
