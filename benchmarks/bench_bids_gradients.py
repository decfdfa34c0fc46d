"""Per-example LoRA gradient throughput: batched (hooks + einsum) vs one backward per example.

Same locally built random GPT-2 with LoRA adapters (no download), same
examples, same process. Both produce every example's full LoRA gradient; the
batched path does one forward and one backward per batch, the naive path one
per example (what LESS does with batch size 1). The largest difference between
the two is printed as a correctness check. Examples are length-sorted before
batching, as the feature stage does.

    python benchmarks/bench_bids_gradients.py
    python benchmarks/bench_bids_gradients.py --layers 4 --dim 256 --batch 32 --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--lora-r", type=int, default=8)
    parser.add_argument("--examples", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--min-len", type=int, default=32)
    parser.add_argument("--max-len", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=3, help="timed passes of each method (median reported)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()

    import numpy as np
    import torch
    from peft import LoraConfig, get_peft_model

    from helpers.tiny_lm import build_model, build_tokenizer
    from selection.bids.data import Encoded, collate
    from selection.bids.gradients import PerExampleGradients, loop_per_example_gradients

    if args.threads:
        torch.set_num_threads(args.threads)
    tok = build_tokenizer()
    base = build_model(tok, n_layer=args.layers, n_embd=args.dim, n_head=args.heads)
    model = get_peft_model(base, LoraConfig(r=args.lora_r, lora_alpha=2 * args.lora_r, fan_in_fan_out=True,
                                            target_modules=["c_attn", "c_proj"]))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.02)
    model.eval()
    rng = np.random.default_rng(0)
    examples = []
    for _ in range(args.examples):
        n = int(rng.integers(args.min_len, args.max_len + 1))
        ids = rng.integers(0, len(tok) - 2, size=n).tolist()
        examples.append(Encoded(ids, [-100] * (n // 3) + ids[n // 3:]))
    examples.sort(key=lambda e: len(e.input_ids))
    batches = [collate(examples[i:i + args.batch], tok.pad_token_id) for i in range(0, len(examples), args.batch)]
    n_lora = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"model: GPT-2 {args.layers} layers x {args.dim}, LoRA r={args.lora_r} ({n_lora:,} trainable params); "
          f"{args.examples} examples of {args.min_len}-{args.max_len} tokens; batch {args.batch}; "
          f"torch threads {torch.get_num_threads()}")

    batched = PerExampleGradients(model)

    def run_batched():
        return [batched(*b) for b in batches]

    def run_loop():
        return [loop_per_example_gradients(model, *b) for b in batches]

    fast_out, slow_out = run_batched(), run_loop()  # warm-up + correctness
    worst = max(float((f[n] - s[n]).abs().max() / s[n].abs().max().clamp_min(1e-12))
                for f, s in zip(fast_out, slow_out) for n in s)

    def timed(fn):
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return statistics.median(times)

    t_fast, t_slow = timed(run_batched), timed(run_loop)
    n = args.examples
    print(f"batched (hooks+einsum): {n / t_fast:8.1f} examples/s  ({t_fast:.3f} s per pass)")
    print(f"one backward/example  : {n / t_slow:8.1f} examples/s  ({t_slow:.3f} s per pass)")
    ratio = t_slow / t_fast
    print(f"speed-up: {ratio:.1f}x   goal >= 5x: {'MET' if ratio >= 5 else 'NOT MET'}")
    print(f"max relative difference batched vs loop: {worst:.2e}")


if __name__ == "__main__":
    main()
