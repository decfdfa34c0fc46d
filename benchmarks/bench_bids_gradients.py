"""Per-example LoRA gradient throughput: batched (hooks + einsum) vs one backward per example.

Same locally built random GPT-2 with LoRA adapters (no download), same
examples, same process. Both produce every example's full LoRA gradient; the
batched path does one forward and one backward per batch, the naive path one
per example (what LESS does with batch size 1). The largest difference between
the two is printed as a correctness check. Examples are length-sorted before
batching, as the feature stage does.

The ratio depends on how much of the naive loop is per-call overhead (Python,
dispatch, thread synchronisation) rather than arithmetic: both paths do the
same FLOPs. A plain batched forward/backward (the batch's summed gradient, no
per-example gradients) is timed too: no batched per-example method can beat
it, so loop time / plain time is the ceiling of the achievable speed-up.
Overhead depends on threading, so the timing is repeated with torch's default
thread count and with one thread. The default model is the tests' tiny GPT-2 (2 x 64);
larger models on CPU are compute-bound and gain less (try --layers 4 --dim 128).

    python benchmarks/bench_bids_gradients.py
    python benchmarks/bench_bids_gradients.py --layers 4 --dim 128 --threads 1
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
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--heads", type=int, default=2)
    parser.add_argument("--lora-r", type=int, default=8)
    parser.add_argument("--examples", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--min-len", type=int, default=32)
    parser.add_argument("--max-len", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=3, help="timed passes of each method (median reported)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: measure with torch's default and with 1)")
    args = parser.parse_args()

    import numpy as np
    import torch
    from peft import LoraConfig, get_peft_model

    from helpers.tiny_lm import build_model, build_tokenizer
    from selection.bids.data import Encoded, collate
    from selection.bids.gradients import PerExampleGradients, loop_per_example_gradients, per_example_loss

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
          f"{args.examples} examples of {args.min_len}-{args.max_len} tokens; batch {args.batch}")

    batched = PerExampleGradients(model)

    def run_batched():
        return [batched(*b) for b in batches]

    def run_loop():
        return [loop_per_example_gradients(model, *b) for b in batches]

    lora_params = [p for p in model.parameters() if p.requires_grad]

    def run_plain():  # the batch's summed gradient only: the floor for any batched per-example method
        out = []
        for ids, mask, labels in batches:
            logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
            out.append(torch.autograd.grad(per_example_loss(logits, labels).sum(), lora_params))
        return out

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

    thread_counts = [args.threads] if args.threads else sorted({torch.get_num_threads(), 1}, reverse=True)
    for threads in thread_counts:
        torch.set_num_threads(threads)
        run_batched()  # warm-up at this thread count
        t_fast, t_slow, t_plain = timed(run_batched), timed(run_loop), timed(run_plain)
        n = args.examples
        ratio = t_slow / t_fast
        print(f"[torch threads {threads}]")
        print(f"  batched (hooks+einsum): {n / t_fast:8.1f} examples/s  ({t_fast:.3f} s per pass)")
        print(f"  one backward/example  : {n / t_slow:8.1f} examples/s  ({t_slow:.3f} s per pass)")
        print(f"  plain batched fwd+bwd : {n / t_plain:8.1f} examples/s  ({t_plain:.3f} s per pass; summed "
              f"gradient only = ceiling for any batched method: {t_slow / t_plain:.1f}x)")
        print(f"  speed-up: {ratio:.1f}x   goal >= 5x: {'MET' if ratio >= 5 else 'NOT MET'}; "
              f"batched per-example runs at {t_plain / t_fast:.0%} of the plain batched ceiling")
    print(f"max relative difference batched vs loop: {worst:.2e}")


if __name__ == "__main__":
    main()
