"""BIDS gradient projection at Llama-3-8B LoRA shapes: the previous, the on-device and the factored projector.

Part 1 (throughput) builds the per-example gradient factors of real Llama-3-8B
LoRA modules (hidden 4096, 8 KV heads of 128, LoRA r = 128 on q/k/v/o: 3,407,872
LoRA parameters per layer, 109,051,904 in 32 layers) for a batch of examples
of ``--tokens`` tokens, on ``--layers`` layer(s), and times what each projector
does per batch:

- ``dense_host`` (the projector before this change): form every module's
  per-example gradient, then multiply by 1024 x k Rademacher blocks drawn with
  a CPU ``torch.Generator`` and copied to the device;
- ``dense`` (on device): the same with blocks hashed on the device;
- ``factored`` (LoGra): from the factors (validation, plain gradients), and for
  training examples, whose Adam transform needs each module's gradient, formed
  one module at a time and Kronecker-projected.

A dense matrix at 8B is 109M x 8192 (3.3 TiB in float32), so no cache holds
it: every batch regenerates all 106,496 blocks. Timing all of them would take
hours here, so the generation and the multiplication are timed on
``--sample-blocks`` blocks and multiplied by the block count (every block costs
the same: same shape, same work). Everything else is timed in full on the
measured layers; all per-batch costs are then scaled to 32 layers. Printed:
examples/s of each and the factored/previous ratio (goal >= 100x).

Part 2 (quality) warms up a LoRA on a small locally built Llama (real
``run_warmup``, so the Adam moments are real), computes the exact influence
``cos(Adam(g_train), g_val)`` from unprojected gradients and the same matrix
with each projector at ``--dim``, and prints the Pearson correlation of all
entries (goal >= 0.95 at k = 8192) and the mean within-column correlation
(what BIDS's per-column z-score sees).

    python benchmarks/bench_bids_projection.py
    python benchmarks/bench_bids_projection.py --device cuda --batch 64 --tokens 1024
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

LLAMA3_8B = {"hidden": 4096, "kv_dim": 1024, "layers": 32}


def llama3_lora_shapes(rank: int, layers: int, hidden: int = 4096, kv_dim: int = 1024):
    """``{name: (out, in)}`` of the LoRA weights of q/k/v/o in ``layers`` Llama layers."""
    shapes = {}
    for layer in range(layers):
        for proj, out in (("q_proj", hidden), ("k_proj", kv_dim), ("v_proj", kv_dim), ("o_proj", hidden)):
            prefix = f"model.layers.{layer}.self_attn.{proj}"
            shapes[f"{prefix}.lora_A.default.weight"] = (rank, hidden)
            shapes[f"{prefix}.lora_B.default.weight"] = (out, rank)
    return shapes


def fake_factors(shapes, batch: int, tokens: int, device):
    """Random inputs/output gradients of every LoRA module; q/k/v's lora_A share one input, as in the model."""
    import torch

    from selection.bids.gradients import LinearFactors

    gen = torch.Generator().manual_seed(0)

    def rand(*size):
        return torch.randn(*size, generator=gen).to(device)

    shared: dict[str, torch.Tensor] = {}
    out = []
    for name, (o, i) in shapes.items():
        layer = name.split(".self_attn.")[0]
        if "lora_A" in name and "o_proj" not in name:
            x = shared.setdefault(layer, rand(batch, tokens, i))
        else:
            x = rand(batch, tokens, i)
        out.append(LinearFactors(name, None, [(x, rand(batch, tokens, o) * 1e-3)], batch, (o, i), torch.device(device)))
    return out


def sync(device):
    import torch

    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device, repeats=1):
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def throughput(args) -> dict[str, float]:
    import torch

    from selection.bids.gradients import AdamMoments, adam_transform_one
    from selection.bids.projection import make_projector

    device = args.device
    shapes = llama3_lora_shapes(args.rank, args.layers)
    full_shapes = llama3_lora_shapes(args.rank, LLAMA3_8B["layers"])
    scale = LLAMA3_8B["layers"] / args.layers
    per_layer = sum(o * i for o, i in shapes.values()) // args.layers
    print(f"Llama-3-8B LoRA shapes: r={args.rank} on q/k/v/o (hidden 4096, k/v 1024): {per_layer:,} LoRA params per "
          f"layer, {per_layer * 32:,} in 32 layers")
    print(f"measured on {args.layers} layer(s), batch {args.batch} x {args.tokens} tokens, k = {args.dim}, device "
          f"{device}, torch threads {torch.get_num_threads()}; per-batch costs scaled x{scale:g} to 32 layers")
    factors = fake_factors(shapes, args.batch, args.tokens, device)
    results: dict[str, float] = {}

    def form_all():
        return [f.weight_gradient() for f in factors]

    t_form = timed(form_all, device)
    print(f"  forming every module's per-example gradient: {t_form * scale:8.2f} s per batch (32 layers)")
    n_blocks = sum(make_projector("dense", full_shapes, args.dim).n_blocks(n) for n in full_shapes)
    name = next(iter(shapes))
    flat = torch.randn(args.batch, 1024, device=device)
    for kind, label in (("dense_host", "previous (CPU generator + copy)"), ("dense", "on-device (hashed)")):
        projector = make_projector(kind, shapes, args.dim, device=device, cache_bytes=0)
        projector.block(name, 0)  # warm-up
        t_gen = statistics.median(timed(lambda b=b: projector.block(name, b % projector.n_blocks(name)), device)
                                  for b in range(1, args.sample_blocks + 1))
        block = projector.block(name, 0)
        t_mm = timed(lambda: flat @ block, device, repeats=args.sample_blocks)
        per_batch = t_form * scale + n_blocks * (t_gen + t_mm)
        results[kind] = args.batch / per_batch
        print(f"{kind:>10} {label}: block {t_gen * 1e3:.1f} ms to generate + {t_mm * 1e3:.1f} ms to apply (median of "
              f"{args.sample_blocks}) x {n_blocks:,} blocks + forming = {per_batch:,.0f} s per batch -> "
              f"{results[kind]:.4f} examples/s")

    projector = make_projector("factored", shapes, args.dim, device=device)
    sum(projector.project_factors(f) for f in factors[:2])  # generate the factor matrices once (cached)
    t_sgd = timed(lambda: sum(projector.project_factors(f) for f in factors), device, repeats=args.repeats)
    results["factored_sgd"] = args.batch / (t_sgd * scale)
    gen = torch.Generator().manual_seed(1)
    moments = AdamMoments({n: (torch.randn(s, generator=gen) * 1e-4).to(device) for n, s in shapes.items()},
                          {n: (torch.rand(s, generator=gen) * 1e-8).to(device) for n, s in shapes.items()})

    def adam_path():
        return sum(projector.project_parameter(f.weight, adam_transform_one(f.weight, f.weight_gradient(), moments))
                   for f in factors)

    t_adam = timed(adam_path, device, repeats=args.repeats)
    results["factored_adam"] = args.batch / (t_adam * scale)
    full = make_projector("factored", full_shapes, args.dim)
    print(f"  factored: Kronecker factors {full.factor_bytes / 2**20:.0f} MiB for all 32 layers, generated once")
    print(f"  factored, plain gradients from the factors (validation): {t_sgd * scale:8.2f} s per batch -> "
          f"{results['factored_sgd']:.3f} examples/s")
    print(f"  factored, Adam (training; gradient formed per module)  : {t_adam * scale:8.2f} s per batch -> "
          f"{results['factored_adam']:.3f} examples/s")
    for kind in ("factored_sgd", "factored_adam"):
        ratio = results[kind] / results["dense_host"]
        print(f"  {kind} / previous projector: {ratio:,.0f}x per example   goal >= 100x: "
              f"{'MET' if ratio >= 100 else 'NOT MET'}   (vs on-device dense: {results[kind] / results['dense']:,.0f}x)")
    return results


def quality(args) -> None:
    import numpy as np
    import torch
    import transformers
    from transformers import LlamaConfig, LlamaForCausalLM

    from helpers.tiny_lm import build_tokenizer
    from selection.bids.checkpoints import load_adam_moments
    from selection.bids.config import DataConfig, WarmupConfig
    from selection.bids.data import collate, encode_rows
    from selection.bids.gradients import PerExampleGradients, adam_transform
    from selection.bids.modeling import attach_adapter, load_base_model
    from selection.bids.projection import l2_normalize, make_projector
    from selection.bids.warmup import run_warmup

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    tok = build_tokenizer()
    torch.manual_seed(0)
    heads = args.q_hidden // 64
    config = LlamaConfig(vocab_size=len(tok), hidden_size=args.q_hidden, intermediate_size=2 * args.q_hidden,
                         num_hidden_layers=args.q_layers, num_attention_heads=heads,
                         num_key_value_heads=max(1, heads // 4), max_position_embeddings=512,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    rng = np.random.default_rng(0)
    templates = [
        lambda a, b: (f"Question: what is {a} + {b}? Answer:", f" {a + b}"),
        lambda a, b: (f"def f(x, r):\n    if x > {a}:", f"\n        return x + {b}\n    return r - x\n"),
        lambda a, b: (f"Reason step by step about {a} and {b}.", f" The answer is \\boxed{{{a * b}}}."),
        lambda a, b: (f"If x = {a} and r = {b}, what does f return?", f" It returns {a - b}, so \\boxed{{{a - b}}}."),
    ]

    def rows(n):
        out = []
        for i in range(n):
            prompt, completion = templates[i % len(templates)](*rng.integers(0, 100, size=2).tolist())
            out.append({"prompt": prompt, "completion": completion})
        return out

    train_rows, val_rows = rows(args.q_train), rows(args.q_val)
    with tempfile.TemporaryDirectory() as tmp:
        LlamaForCausalLM(config).save_pretrained(tmp)
        tok.save_pretrained(tmp)
        train = encode_rows(train_rows, tok, DataConfig())
        val = encode_rows(val_rows, tok, DataConfig())
        warm = WarmupConfig(warmup_fraction=1.0, epochs=1, batch_size=8, micro_batch_size=8, learning_rate=1e-3,
                            lora_r=args.q_rank, lora_alpha=4.0 * args.q_rank, lora_dropout=0.0)
        ckpt = run_warmup(tmp, train, warm, Path(tmp) / "warmup", progress=False)[-1].path
        model = attach_adapter(load_base_model(tmp), ckpt)
        moments = load_adam_moments(ckpt)
        grads = PerExampleGradients(model)
        n_params = sum(o * i for o, i in grads.shapes.values())
        print(f"quality: Llama {args.q_layers} layer(s) x {args.q_hidden} (random init), LoRA r={args.q_rank} on "
              f"q/k/v/o ({n_params:,} params) after one warm-up epoch; {len(train)} train (Adam) x {len(val)} "
              f"validation (plain) examples, k = {args.dim}")

        def gradients(examples, adam):
            ids, mask, labels = collate(examples, tok.pad_token_id)
            g = grads(ids, mask, labels)
            return adam_transform(g, moments) if adam else g

        train_g, val_g = gradients(train, True), gradients(val, False)
        stacked = {n: torch.cat([train_g[n], val_g[n]]) for n in train_g}  # one projection pass per projector

        def cosines(features):
            f = l2_normalize(features.double())
            return (f[:len(train)] @ f[len(train):].T).numpy()

        A_exact = cosines(torch.cat([stacked[n].reshape(len(train) + len(val), -1) for n in sorted(stacked)], 1))
        print(f"  exact cosines: mean {A_exact.mean():.4f}, std {A_exact.std():.4f}, "
              f"within-column std {A_exact.std(axis=0).mean():.4f}")
        for kind in ("dense_host", "dense", "factored"):
            start = time.perf_counter()
            A = cosines(make_projector(kind, grads.shapes, args.dim, seed=0).project(stacked))
            overall = np.corrcoef(A.ravel(), A_exact.ravel())[0, 1]
            columns = np.mean([np.corrcoef(A[:, j], A_exact[:, j])[0, 1] for j in range(A.shape[1])])
            print(f"  {kind:>10}: Pearson r with exact {overall:.4f} (goal >= 0.95: "
                  f"{'MET' if overall >= 0.95 else 'NOT MET'}), mean within-column r {columns:.4f}, max |error| "
                  f"{np.abs(A - A_exact).max():.4f}  ({time.perf_counter() - start:.1f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dim", type=int, default=8192, help="projection dimension k")
    parser.add_argument("--rank", type=int, default=128, help="LoRA rank (the paper's 128)")
    parser.add_argument("--layers", type=int, default=1, help="Llama-3-8B layers measured (scaled to 32)")
    parser.add_argument("--batch", type=int, default=8, help="examples per gradient batch (--grad-batch-size)")
    parser.add_argument("--tokens", type=int, default=512, help="tokens per example")
    parser.add_argument("--sample-blocks", type=int, default=16, help="dense blocks timed (of 106,496)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes of the factored projector (median)")
    parser.add_argument("--q-hidden", type=int, default=1024, help="quality model: hidden size")
    parser.add_argument("--q-layers", type=int, default=1, help="quality model: layers")
    parser.add_argument("--q-rank", type=int, default=64, help="quality model: LoRA rank")
    parser.add_argument("--q-train", type=int, default=48, help="quality: training examples")
    parser.add_argument("--q-val", type=int, default=16, help="quality: validation examples")
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (default 1: the steadiest timing on a shared machine)")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if not args.skip_throughput:
        throughput(args)
    if not args.skip_quality:
        quality(args)


if __name__ == "__main__":
    main()
