"""The per-GPU memory estimate of ``--dry-run``: the paper recipes, the formula's terms, the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.config import GRPORunConfig, LoraSpec, SFTRunConfig, load_run_config
from training.memory import (GIB, Distribution, ModelShape, distribution_from_accelerate_config, estimate,
                             model_shape, trl_settings)

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "training" / "configs"
QWEN_7B = ModelShape(params=7_615_616_512, hidden=3584, layers=28, vocab=152064)  # Qwen2.5-7B's config


def lines(est):
    return {name: b / GIB for name, b, _ in est.lines}


def test_the_old_paper_grpo_recipe_is_flagged_and_the_new_one_fits():
    """Before: plain DDP and TRL's float32 load needed ~122 GB per GPU for the model states alone."""
    config = load_run_config(GRPORunConfig, CONFIGS / "grpo_paper_qwen2.5_7b.yaml")
    old_trl = {k: v for k, v in trl_settings(config).items()}
    old_trl["model_init_kwargs"] = None
    ddp = distribution_from_accelerate_config(CONFIGS / "accelerate" / "multi_gpu.yaml")
    old = estimate(QWEN_7B, ddp, old_trl, lora=False, trainer="grpo")
    states = lines(old)["weights"] + lines(old)["gradients"] + lines(old)["optimizer (AdamW)"]
    assert states * GIB / 1e9 == pytest.approx(121.8, abs=0.1)  # 16 bytes x 7.62B
    assert any("exceeds the 80 GiB card" in w for w in old.warnings)

    zero3 = distribution_from_accelerate_config(CONFIGS / "accelerate" / "deepspeed_zero3.yaml")
    assert (zero3.strategy, zero3.num_gpus) == ("zero3", 8)
    new = estimate(QWEN_7B, zero3, trl_settings(config), lora=False, trainer="grpo")
    assert config.trl["model_init_kwargs"] == {"dtype": "bfloat16"}
    assert lines(new)["vLLM (colocated)"] == pytest.approx(24.0)
    assert new.total_bytes < 0.75 * 80 * GIB and new.warnings == [], new.render()


def test_the_paper_sft_recipe_fits():
    config = load_run_config(SFTRunConfig, CONFIGS / "sft_paper_qwen2.5_7b.yaml")
    zero3 = distribution_from_accelerate_config(CONFIGS / "accelerate" / "deepspeed_zero3.yaml")
    est = estimate(QWEN_7B, zero3, trl_settings(config), lora=False, trainer="sft")
    assert est.total_bytes < 0.5 * 80 * GIB and est.warnings == [], est.render()


def test_terms_of_the_formula():
    shape = ModelShape(params=10**9, hidden=1024, layers=8, vocab=32000, lora_params=10**7)
    trl = {"per_device_train_batch_size": 2, "max_completion_length": 100, "gradient_checkpointing": True,
           "model_init_kwargs": {"dtype": "bfloat16"}, "beta": 0.04}
    ddp = lines(estimate(shape, Distribution("ddp", 4), trl, lora=False, trainer="grpo"))
    assert ddp["weights"] == pytest.approx(2e9 / GIB) and ddp["optimizer (AdamW)"] == pytest.approx(4e9 / GIB)
    assert ddp["reference model"] == pytest.approx(2e9 / GIB)
    z2 = lines(estimate(shape, Distribution("zero2", 4), trl, lora=False, trainer="grpo"))
    assert z2["weights"] == pytest.approx(2e9 / GIB) and z2["gradients"] == pytest.approx(0.5e9 / GIB)
    lora = lines(estimate(shape, Distribution("zero3", 4), trl, lora=True, trainer="grpo"))
    assert lora["optimizer (AdamW)"] == pytest.approx(12e7 / 4 / GIB) and "reference model" not in lora
    warned = estimate(shape, Distribution(), {**trl, "use_vllm": True, "vllm_gpu_memory_utilization": 0.01},
                      lora=False, trainer="grpo")
    assert any("cannot hold the bf16 weights" in w for w in warned.warnings)
    assert any("keeps no fp32 master copy" in w for w in warned.warnings)


def test_lora_parameters_are_counted_exactly(tiny_lm_dir):
    shape = model_shape(str(tiny_lm_dir), LoraSpec(r=4, target_modules=["c_attn"]))
    n_embd, n_layer = 64, 2
    assert shape.lora_params == n_layer * 4 * (n_embd + 3 * n_embd)
    assert (shape.hidden, shape.layers) == (n_embd, n_layer)


def test_dry_run_prints_the_estimate_and_warns_above_the_card(tiny_lm_dir, capsys):
    from training.cli import main

    rc = main(["grpo", "--config", "grpo_tiny_cpu.yaml", "--set", f"model={tiny_lm_dir}", "--dry-run",
               "--accelerate-config", "accelerate/deepspeed_zero3.yaml", "--num-gpus", "2",
               "--gpu-memory-gib", "0.0001"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "memory estimate per GPU:" in out and "DeepSpeed ZeRO-3 over 2 GPU(s)" in out
    for term in ("weights", "gradients", "optimizer (AdamW)", "logits (one micro-batch)", "total"):
        assert f"  {term}" in out
    assert "WARNING: the estimate" in out and "exceeds the 0.0001 GiB card" in out
