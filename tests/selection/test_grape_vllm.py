"""vLLM backend agrees with the transformers backend (runs only where vLLM is importable)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.vllm


def test_vllm_scores_match_transformers(tmp_path):
    pytest.importorskip("vllm")
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from helpers.tiny_lm import save_tiny_lm
    from selection.grape.config import DEFAULT_TEMPLATE
    from selection.grape.prompting import encode_group
    from selection.grape.scoring_hf import HFScorer
    from selection.grape.scoring_vllm import VLLMScorer

    # head_dim 64: the vLLM CPU attention kernel rejects very small heads
    path = save_tiny_lm(tmp_path / "lm", n_embd=128, n_head=2)
    tok = AutoTokenizer.from_pretrained(path)
    groups = [
        encode_group(tok, "what is 2 + 3?", ["5", "The answer is \\boxed{5}.", "seven"], template=DEFAULT_TEMPLATE),
        encode_group(tok, "Reason step by step. " * 10, ["a", "b c d e f"], template=DEFAULT_TEMPLATE),
    ]
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    hf = HFScorer(model, pad_token_id=tok.pad_token_id).score(groups)
    vl = VLLMScorer.from_pretrained(str(path), dtype="float32", gpu_memory_utilization=0.3,
                                    max_model_len=512).score(groups)
    for row_hf, row_vl in zip(hf, vl):
        for a, b in zip(row_hf, row_vl):
            assert a.n_tokens == b.n_tokens
            assert abs(a.mean - b.mean) < 1e-3  # stated tolerance between backends (float32)
