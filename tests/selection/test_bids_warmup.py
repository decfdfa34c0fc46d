"""Warm-up schedule, subset and checkpoint weights."""

import math

import numpy as np
import pytest

from selection.bids.checkpoints import CheckpointInfo, checkpoint_weights
from selection.bids.config import WarmupConfig
from selection.bids.warmup import lr_at, warmup_subset


def test_epoch_average_lrs_reproduce_the_less_readme_weights():
    # LESS README: checkpoints at steps 105/211/317/420 (linear schedule, 3% warm-up, peak 2e-5)
    # have average learning rates 1.6877e-05 1.2859e-05 7.7030e-06 2.5616e-06.
    total, bounds = 420, [0, 105, 211, 317, 420]
    warm = math.ceil(total * 0.03)
    ours = [2e-5 * np.mean([lr_at(s, total, warm, "linear") for s in range(a, b)]) for a, b in zip(bounds, bounds[1:])]
    assert ours == pytest.approx([1.6877e-05, 1.2859e-05, 7.7030e-06, 2.5616e-06], rel=0.015)


def test_schedules():
    assert lr_at(0, 100, 10, "linear") == 0.0
    assert lr_at(5, 100, 10, "linear") == 0.5
    assert lr_at(10, 100, 10, "linear") == 1.0 == lr_at(10, 100, 10, "cosine")
    assert lr_at(55, 100, 10, "linear") == pytest.approx(0.5) == lr_at(55, 100, 10, "cosine")
    assert lr_at(100, 100, 10, "cosine") == pytest.approx(0.0)
    with pytest.raises(ValueError, match="lr_scheduler"):
        lr_at(0, 10, 0, "constant")


def test_checkpoint_weights_are_normalised_average_lrs(tmp_path):
    infos = [CheckpointInfo(tmp_path, e, {"avg_lr": lr}) for e, lr in enumerate([3e-5, 1e-5], start=1)]
    assert checkpoint_weights(infos) == pytest.approx([0.75, 0.25])


def test_a_warmup_too_short_for_its_schedule_says_what_to_change(tmp_path):
    """One optimizer step of a linear schedule has rate 0: the error names the cause and the options to raise."""
    with pytest.raises(ValueError, match=r"1 warm-up epoch.*too few optimizer steps.*--warmup-fraction.*--epochs"):
        checkpoint_weights([CheckpointInfo(tmp_path, 1, {"avg_lr": 0.0})])


def test_warmup_subset_is_a_seeded_prefix_of_a_permutation():
    cfg = WarmupConfig(warmup_fraction=0.05, warmup_data_seed=3)
    subset = warmup_subset(1000, cfg)
    assert len(subset) == 50 and len(set(subset.tolist())) == 50
    assert subset.tolist() == np.random.default_rng(3).permutation(1000)[:50].tolist()
    assert len(warmup_subset(3, cfg)) == 1


def test_config_validation_names_the_field():
    with pytest.raises(ValueError, match="warmup_fraction"):
        WarmupConfig(warmup_fraction=0).validate()
    with pytest.raises(ValueError, match="micro_batch_size"):
        WarmupConfig(micro_batch_size=0).validate()


def _tiny_examples(tiny_lm_dir):
    from selection.bids.config import DataConfig
    from selection.bids.data import encode_rows
    from selection.bids.modeling import load_tokenizer

    rows = [{"prompt": f"Question: what is {i} + 3? Answer:", "completion": f" {i + 3}"} for i in range(8)]
    return encode_rows(rows, load_tokenizer(str(tiny_lm_dir)), DataConfig())


def _adapter(ckpt):
    from safetensors.torch import load_file

    return load_file(str(ckpt.path / "adapter_model.safetensors"))


def test_gradient_checkpointing_and_bf16_autocast(tiny_lm_dir, tmp_path):
    import torch

    from selection.bids.warmup import run_warmup

    examples = _tiny_examples(tiny_lm_dir)
    base = dict(warmup_fraction=1.0, epochs=1, batch_size=4, micro_batch_size=2, learning_rate=1e-3, lora_r=4,
                lora_alpha=16, target_modules=["c_attn"])
    plain = run_warmup(str(tiny_lm_dir), examples, WarmupConfig(**base), tmp_path / "plain", progress=False)[-1]
    checkpointed = run_warmup(str(tiny_lm_dir), examples, WarmupConfig(**base, gradient_checkpointing=True),
                              tmp_path / "ckpt", progress=False)[-1]
    a, b = _adapter(plain), _adapter(checkpointed)
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-7) for k in a)
    assert plain.state["settings"] == checkpointed.state["settings"]  # same result, so a folder stays reusable
    bf16 = run_warmup(str(tiny_lm_dir), examples, WarmupConfig(**base, mixed_precision="bf16"), tmp_path / "bf16",
                      progress=False)[-1]
    c = _adapter(bf16)
    assert all(c[k].dtype == torch.float32 for k in c)  # LoRA master weights stay float32 under autocast
    assert np.isfinite(bf16.state["mean_loss"]) and abs(bf16.state["mean_loss"] - plain.state["mean_loss"]) < 0.05
    assert any(not torch.equal(a[k], c[k]) for k in a)  # bf16 arithmetic did run
