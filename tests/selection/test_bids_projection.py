"""Projections of per-example gradients: the hashed Rademacher generator, dense and factored projectors."""

import math

import numpy as np
import pytest
import torch

from selection.bids.data import Encoded, collate
from selection.bids.gradients import (AdamMoments, PerExampleGradients, adam_transform, loop_per_example_gradients)
from selection.bids.projection import (PROJECTIONS, DenseProjector, FactoredProjector, KroneckerSplit, hash_words,
                                       kronecker_split, make_projector, rademacher)


def _np_lowbias32(x):
    x = x ^ (x >> np.uint32(16))
    x = x * np.uint32(0x7FEB352D)
    x = x ^ (x >> np.uint32(15))
    x = x * np.uint32(0x846CA68B)
    return x ^ (x >> np.uint32(16))


def _np_words(key, n):
    """Independent reference: NumPy uint32 arithmetic wraps modulo 2**32 by definition."""
    counter = np.arange(n, dtype=np.uint32)
    k0, k1 = np.uint32(key & 0xFFFFFFFF), np.uint32(key >> 32)
    with np.errstate(over="ignore"):
        return _np_lowbias32(_np_lowbias32(counter ^ k0) ^ k1)


@pytest.mark.parametrize("key", [0, 1, 0x9E3779B97F4A7C15, (1 << 64) - 1])
def test_hash_words_match_an_independent_uint32_implementation(key):
    ours = hash_words(key, 5000).numpy()
    assert ours.min() >= 0 and ours.max() < 1 << 32
    assert np.array_equal(ours.astype(np.uint32), _np_words(key, 5000))


def test_rademacher_bits_follow_the_documented_layout():
    key, rows, cols = 123456789, 7, 70  # 70 columns: 3 words per row, the last one cut
    signs = rademacher(key, rows, cols).numpy()
    words = _np_words(key, rows * 3).reshape(rows, 3)
    for r in range(rows):
        for c in range(cols):
            bit = (int(words[r, c // 32]) >> (c % 32)) & 1
            assert signs[r, c] == (1.0 if bit else -1.0)


def test_rademacher_columns_are_balanced_and_nearly_orthogonal():
    P = rademacher(42, 4096, 256)
    assert set(P.unique().tolist()) == {-1.0, 1.0}
    gram = (P.T @ P / 4096).numpy()
    off = gram[~np.eye(256, dtype=bool)]
    # Independent signs: off-diagonal entries ~ N(0, 1/4096), so |x| < 6 sigma; means near zero.
    assert np.abs(off).max() < 6 / 64 and abs(off.mean()) < 0.005
    assert abs(P.mean().item()) < 0.01
    other = rademacher(43, 4096, 256)
    assert abs((P * other).mean().item()) < 0.01  # another key is an unrelated matrix


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_rademacher_is_identical_on_cpu_and_cuda():
    for key in (0, 7, (1 << 64) - 1):
        assert torch.equal(rademacher(key, 1024, 8192), rademacher(key, 1024, 8192, device="cuda").cpu())


SHAPES = {"layer.lora_A.weight": (4, 60), "layer.lora_B.weight": (48, 4), "head.bias": (50,)}


def _grads(batch=6, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return {name: torch.randn(batch, *shape, generator=gen) for name, shape in SHAPES.items()}


@pytest.mark.parametrize("kind", sorted(PROJECTIONS))
def test_projectors_are_seeded_cache_and_batch_independent(kind):
    grads = _grads()
    p1 = make_projector(kind, SHAPES, 1024, seed=0).project(grads)
    p2 = make_projector(kind, SHAPES, 1024, seed=0, cache_bytes=0).project(grads)
    torch.testing.assert_close(p1, p2)  # same matrix with or without the cache
    half = make_projector(kind, SHAPES, 1024, seed=0).project({n: g[:3] for n, g in grads.items()})
    torch.testing.assert_close(half, p1[:3])  # independent of the batch it is applied to
    assert not torch.allclose(p1, make_projector(kind, SHAPES, 1024, seed=1).project(grads))
    flat = torch.cat([g.reshape(6, -1) for g in grads.values()], dim=1)
    exact, approx = flat @ flat.T, p1 @ p1.T
    # Inner products are preserved up to the JL error (~ |g| |h| sqrt(2 / dim) for these shapes).
    assert torch.allclose(approx, exact, atol=0.2 * exact.diag().max().item())
    with pytest.raises(KeyError, match="lack"):
        make_projector(kind, SHAPES, 64).project({"head.bias": grads["head.bias"]})


@pytest.mark.parametrize("kind", sorted(PROJECTIONS))
def test_projections_are_unbiased_over_seeds(kind):
    """E[<Pg, Ph>] = <g, h>: the mean over 300 seeds lands within 4 standard errors."""
    grads = _grads(batch=2, seed=3)
    flat = torch.cat([g.reshape(2, -1) for g in grads.values()], dim=1).double()
    exact = float(flat[0] @ flat[1])
    samples = []
    for seed in range(300):
        p = make_projector(kind, SHAPES, 16, seed=seed, cache_bytes=0).project(grads).double()
        samples.append(float(p[0] @ p[1]))
    samples = np.array(samples)
    assert abs(samples.mean() - exact) < 4 * samples.std() / math.sqrt(len(samples))


def test_kronecker_split():
    assert kronecker_split(128, 4096, 8192) == KroneckerSplit(128, 64, "out")  # lora_A: rank side exact
    assert kronecker_split(4096, 128, 8192) == KroneckerSplit(64, 128, "in")  # lora_B
    assert kronecker_split(1024, 128, 8192) == KroneckerSplit(64, 128, "in")  # lora_B of k/v (GQA)
    assert kronecker_split(4096, 4096, 8192) == KroneckerSplit(128, 64, None)  # full weights: both random
    assert kronecker_split(96, 4096, 8192) == KroneckerSplit(64, 128, None)  # 96 does not divide 8192
    for split in (kronecker_split(o, i, d) for o in (1, 3, 8, 64) for i in (2, 64, 500) for d in (16, 64, 8192)):
        assert split.k_out * split.k_in in (16, 64, 8192)


def test_factored_projection_of_factors_equals_projection_of_the_formed_gradient(lora_model):
    grads_fn = PerExampleGradients(lora_model)
    ids, mask, labels = _batch(lora_model.config.vocab_size)
    projector = FactoredProjector(grads_fn.shapes, 256, seed=5)
    factors = grads_fn.factors(ids, mask, labels)
    from_factors = sum(projector.project_factors(f) for f in factors)
    full = loop_per_example_gradients(lora_model, ids, mask, labels)
    torch.testing.assert_close(from_factors, projector.project(full), rtol=1e-4, atol=1e-6)
    assert all(split.identity for split in projector.splits.values())  # r = 4 divides 256: rank side exact


@pytest.mark.parametrize("kind", ["dense", "factored"])
def test_featurizer_matches_projecting_reference_gradients(lora_model, kind):
    """The feature stage's per-module streaming equals projecting whole reference gradients (SGD and Adam)."""
    from selection.bids.features import GradientFeaturizer

    grads_fn = PerExampleGradients(lora_model)
    projector = make_projector(kind, grads_fn.shapes, 128, seed=2)
    ids, mask, labels = _batch(lora_model.config.vocab_size)
    full = loop_per_example_gradients(lora_model, ids, mask, labels)
    gen = torch.Generator().manual_seed(0)
    moments = AdamMoments({n: torch.randn(s, generator=gen) * 1e-3 for n, s in grads_fn.shapes.items()},
                          {n: torch.rand(s, generator=gen) * 1e-6 for n, s in grads_fn.shapes.items()})
    for mom, expected in ((None, full), (moments, adam_transform(full, moments))):
        featurizer = GradientFeaturizer(lora_model, projector, batch_size=8, pad_id=0, moments=mom)
        torch.testing.assert_close(featurizer.project_batch(ids, mask, labels), projector.project(expected),
                                   rtol=1e-4, atol=1e-5)


def test_unknown_projection_is_refused():
    with pytest.raises(ValueError, match="projection must be one of"):
        make_projector("sparse", SHAPES, 64)
    assert isinstance(make_projector("dense", SHAPES, 64), DenseProjector)


@pytest.fixture(scope="module")
def lora_model(tiny_lm_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(tiny_lm_dir)
    model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn", "c_proj"],
                                            fan_in_fan_out=True))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.05)
    model.eval()
    return model


def _batch(vocab: int):
    rng = np.random.default_rng(0)
    examples = []
    for n, prompt in [(9, 3), (17, 5), (5, 2), (12, 12)]:
        ids = rng.integers(0, vocab - 2, size=n).tolist()
        examples.append(Encoded(ids, [-100] * prompt + ids[prompt:]))
    return collate(examples, 0)
