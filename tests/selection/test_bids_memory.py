"""``cf-select bids --dry-run``: per-GPU memory estimate from the model's config alone."""

import pytest

from selection.bids.config import BidsConfig, FeatureConfig, WarmupConfig
from selection.bids.memory import features_estimate, model_sizes, warmup_estimate
from selection.cli import main as cf_select


def test_parameter_counts_are_exact_for_llama3_8b_with_the_paper_lora(tmp_path):
    from transformers import LlamaConfig

    LlamaConfig(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                num_attention_heads=32, num_key_value_heads=8).save_pretrained(tmp_path)
    sizes = model_sizes(str(tmp_path), BidsConfig())
    assert sizes.n_params == 8_030_261_248 and sizes.n_lora == 109_051_904  # 3,407,872 per layer x 32
    assert sizes.kv_width == 1024 and sizes.largest_lora == 128 * 4096
    default = warmup_estimate(sizes, BidsConfig())
    lean = BidsConfig(warmup=WarmupConfig(micro_batch_size=2, gradient_checkpointing=True, mixed_precision="bf16"),
                      features=FeatureConfig(torch_dtype="bfloat16", projection="factored", grad_batch_size=4))
    small = warmup_estimate(sizes, lean)
    assert sum(small.values()) < 30 * 2**30 < 80 * 2**30 < sum(default.values())
    assert small["base weights (bfloat16)"] * 2 == default["base weights (float32)"]
    feats = features_estimate(sizes, lean)
    assert feats["projection (factored)"] < 300 * 2**20  # the Kronecker factors of all 32 layers
    assert sum(feats.values()) < 80 * 2**30


def test_dry_run_counts_the_real_lora_and_warns_above_the_card(tiny_lm_dir, capsys):
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    from selection.bids.modeling import lora_config

    base = AutoModelForCausalLM.from_pretrained(tiny_lm_dir)
    n_base = sum(p.numel() for p in base.parameters())
    model = get_peft_model(base, lora_config(base, r=4, alpha=16, dropout=0.1, target_modules=["c_attn"]))
    n_lora = sum(p.numel() for p in model.parameters() if p.requires_grad)
    args = ["bids", "--model", str(tiny_lm_dir), "--dry-run", "--lora-r", "4", "--target-modules", "c_attn"]
    assert cf_select(args) == 0
    captured = capsys.readouterr()
    assert f"{n_base:,} parameters, {n_lora:,} LoRA parameters" in captured.out
    assert "warm-up: estimated per-GPU memory" in captured.out and "fits" in captured.out
    assert "every batch regenerates" not in captured.out  # a tiny dense matrix fits the cache
    assert cf_select(args + ["--gpu-memory-gb", "0.0001"]) == 0
    captured = capsys.readouterr()
    assert "EXCEEDS the card" in captured.out and "warning: the warm-up stage needs more than" in captured.err


def test_dry_run_needs_a_model(capsys):
    assert cf_select(["bids", "--dry-run"]) == 2
    assert "--dry-run estimates the memory of a model" in capsys.readouterr().err
    with pytest.raises(ValueError, match="gpu_memory_gb"):
        BidsConfig(model="m", dry_run=True, gpu_memory_gb=0).validate()
