"""Per-example LoRA gradients, the Adam transform and the random projection, on a real tiny model."""

import math

import numpy as np
import pytest
import torch

from selection.bids.data import Encoded, collate
from selection.bids.gradients import (AdamMoments, PerExampleGradients, adam_transform, loop_per_example_gradients,
                                      per_example_loss)
from selection.bids.projection import l2_normalize


@pytest.fixture(scope="module")
def lora_model(tiny_lm_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_lm_dir)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn", "c_proj"],
                                            fan_in_fan_out=True, lora_dropout=0.1))
    with torch.no_grad():  # B starts at zero; make both factors non-trivial so every gradient is non-zero
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.05)
    model.eval()
    return model


def _batch(vocab: int, pad: int):
    rng = np.random.default_rng(0)
    examples = []
    for n, prompt in [(9, 3), (17, 5), (5, 2), (12, 12), (14, 1)]:  # (12, 12): no label token at all
        ids = rng.integers(0, vocab - 2, size=n).tolist()
        examples.append(Encoded(ids, [-100] * prompt + ids[prompt:]))
    return collate(examples, pad)


def test_batched_per_example_gradients_match_one_backward_per_example(lora_model):
    ids, mask, labels = _batch(lora_model.config.vocab_size, 0)
    fast = PerExampleGradients(lora_model)(ids, mask, labels)
    slow = loop_per_example_gradients(lora_model, ids, mask, labels)
    assert sorted(fast) == sorted(slow) and len(fast) == 12  # 2 layers x 3 modules x (lora_A, lora_B)
    for name in slow:
        assert fast[name].shape == slow[name].shape
        torch.testing.assert_close(fast[name], slow[name], rtol=1e-4, atol=1e-6)
    norms = torch.stack([torch.cat([g[i].flatten() for g in fast.values()]).norm() for i in range(5)])
    assert (norms[[0, 1, 2, 4]] > 0).all() and norms[3] == 0  # the example without labels has no gradient


def test_gradients_cover_only_lora_parameters(lora_model):
    names = PerExampleGradients(lora_model).names
    assert names and all("lora_" in n for n in names)


def test_non_linear_trainable_parameter_is_refused(tiny_lm_dir):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir)
    for name, p in model.named_parameters():
        p.requires_grad_("ln_f" in name)
    with pytest.raises(TypeError, match="LayerNorm"):
        PerExampleGradients(model)


def test_per_example_loss_is_mean_over_label_tokens():
    logits = torch.zeros(1, 4, 3)
    logits[0, 0, 2] = math.log(2.0)  # predicts token at position 1
    labels = torch.tensor([[-100, 2, -100, 1]])
    # position 1: p(2) = 2/4; position 3: uniform 1/3
    expected = (-math.log(0.5) - math.log(1 / 3)) / 2
    assert per_example_loss(logits, labels).item() == pytest.approx(expected)


def test_adam_transform_matches_hand_computation():
    g = torch.tensor([[2.0, -1.0, 0.0]])
    moments = AdamMoments({"w": torch.tensor([0.5, 0.1, -0.2])}, {"w": torch.tensor([0.25, 0.04, 0.0])},
                          beta1=0.9, beta2=0.999, eps=1e-8)
    out = adam_transform({"w": g}, moments)["w"][0].tolist()
    # m' = 0.9 m + 0.1 g ; v' = 0.999 v + 0.001 g^2 ; G = m' / sqrt(v' + eps)
    expected = [
        (0.45 + 0.2) / math.sqrt(0.24975 + 0.004 + 1e-8),
        (0.09 - 0.1) / math.sqrt(0.03996 + 0.001 + 1e-8),
        (-0.18 + 0.0) / math.sqrt(0.0 + 0.0 + 1e-8),
    ]
    assert out == pytest.approx(expected, rel=1e-6)


def test_adam_transform_is_per_example():
    g = torch.tensor([[1.0], [3.0]])
    moments = AdamMoments({"w": torch.tensor([0.0])}, {"w": torch.tensor([0.0])}, 0.9, 0.999, 1e-8)
    out = adam_transform({"w": g}, moments)["w"].flatten().tolist()
    assert out == pytest.approx([0.1 / math.sqrt(0.001 + 1e-8), 0.3 / math.sqrt(0.009 + 1e-8)], rel=1e-6)


def test_l2_normalize_keeps_zero_rows():
    x = torch.tensor([[3.0, 4.0], [0.0, 0.0]])
    out = l2_normalize(x)
    assert out[0].tolist() == pytest.approx([0.6, 0.8]) and out[1].tolist() == [0.0, 0.0]
