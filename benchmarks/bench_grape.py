"""GRAPE scoring throughput: the transformers backend vs a naive one-example-at-a-time loop.

Both score the same pool with the same locally built random GPT-2 (no
download) in the same run; tokens/s counts prompt + response tokens of every
candidate (the work a naive scorer does), so the ratio is a pure time ratio.
The pool is GRAPE-shaped: long shared prompts, many candidates of varied
length per instruction. Also printed: the batched path without KV reuse (to
separate the two effects) and the largest score difference to the naive loop.

Also measured: the cost of the joint prompt+response encoding (every candidate's
whole text tokenized once, split at the character boundary) against the
separate encoding it replaced (prompt once per instruction, each response
alone), in the same run, as a share of the scoring time.

    python benchmarks/bench_grape.py                 # defaults: 4 layers x 256 dims
    python benchmarks/bench_grape.py --instructions 48 --candidates 16 --threads 2
    python benchmarks/bench_grape.py --tokenizer legacy   # a SentencePiece-style tokenizer
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

WORDS = ("the answer is value loop returns step reason because first then total sum if else while "
         "def return x r f boxed set of values final check").split()


def make_texts(n_instructions: int, n_candidates: int, prompt_words: int, resp_words: tuple[int, int], seed: int):
    rng = random.Random(seed)
    texts = []
    for _ in range(n_instructions):
        instruction = " ".join(rng.choice(WORDS) for _ in range(prompt_words))
        responses = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(*resp_words)))
                     for _ in range(n_candidates)]
        texts.append((instruction, responses))
    return texts


def encode_joint(tok, texts):
    from selection.grape.config import DEFAULT_TEMPLATE
    from selection.grape.prompting import encode_group

    return [encode_group(tok, instruction, responses, template=DEFAULT_TEMPLATE) for instruction, responses in texts]


def encode_separately(tok, texts):
    """The encoding GRAPE used before (baseline): the prompt once, each response alone (wrong for SentencePiece)."""
    out = []
    for instruction, responses in texts:
        prompt = tok(f"Question: {instruction}\nAnswer:")["input_ids"]
        out.append((prompt, [tok(" " + r, add_special_tokens=False)["input_ids"] for r in responses]))
    return out


def naive_scores(model, groups):
    """The baseline: one forward pass per (prompt + response), full logits, batch size 1."""
    import torch

    out = []
    with torch.inference_mode():
        for g in groups:
            row = []
            for r in g.response_ids:
                ids = torch.tensor([list(g.prompt_ids) + list(r)])
                logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
                p = len(g.prompt_ids)
                pos = torch.arange(p - 1, p - 1 + len(r))
                row.append(float(logp[pos, torch.tensor(r)].double().sum()) / len(r))
            out.append(row)
    return out


def timed(fn, repeats: int):
    best, result = float("inf"), None
    for _ in range(repeats):
        t0 = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t0)
    return best, result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--dims", type=int, default=256)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--vocab-size", type=int, default=32000,
                    help="model vocabulary (embedding/LM-head rows; Mistral-7B has 32000, Llama-3 128256). The "
                         "tiny test tokenizer only uses the first few hundred ids; the rest make the LM head as "
                         "costly as a real model's. 0 = the tokenizer's own size")
    ap.add_argument("--instructions", type=int, default=24)
    ap.add_argument("--candidates", type=int, default=8)
    ap.add_argument("--prompt-words", type=int, default=120, help="instruction length in words")
    ap.add_argument("--response-words", type=int, nargs=2, default=(15, 60), metavar=("MIN", "MAX"))
    ap.add_argument("--max-batch-tokens", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads; 1 by default because on a shared, oversubscribed CPU more threads make "
                         "timings erratic (0 = torch's choice)")
    ap.add_argument("--repeats", type=int, default=2, help="best of N timings")
    ap.add_argument("--tokenizer", default="byte_level", choices=("byte_level", "metaspace", "legacy"),
                    help="tokenizer pipeline of the test helpers (byte-level BPE, or SentencePiece-style)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import torch

    from helpers.tiny_lm import build_model, build_tokenizer
    from selection.grape.scoring_hf import HFScorer

    if args.threads:
        torch.set_num_threads(args.threads)
    tok = build_tokenizer(kind=args.tokenizer)
    model = build_model(tok, n_layer=args.layers, n_embd=args.dims, n_head=args.heads, n_positions=2048)
    if args.vocab_size and args.vocab_size > len(tok):
        model.resize_token_embeddings(args.vocab_size, mean_resizing=False)
    texts = make_texts(args.instructions, args.candidates, args.prompt_words, tuple(args.response_words), args.seed)
    joint_t, groups = timed(lambda: encode_joint(tok, texts), args.repeats)
    separate_t, _ = timed(lambda: encode_separately(tok, texts), args.repeats)
    tokens = sum(g.n_tokens for g in groups)
    n_cand = sum(len(g.response_ids) for g in groups)
    prompt_len = sum(len(g.prompt_ids) for g in groups) / len(groups)
    resp_len = sum(len(r) for g in groups for r in g.response_ids) / n_cand
    print(f"model: GPT-2 {args.layers} layers x {args.dims} dims, model vocab {model.config.vocab_size} "
          f"(tokenizer {len(tok)}), float32, "
          f"{torch.get_num_threads()} torch thread(s)")
    print(f"pool: {len(groups)} instructions x {args.candidates} candidates; mean prompt {prompt_len:.0f} tok, "
          f"mean response {resp_len:.0f} tok; {tokens} prompt+response tokens in all")

    reused = sum(len(g.prompt_ids) + sum(len(r) - 1 for r in g.response_ids) for g in groups)
    print(f"token positions run through the model: naive {tokens}, with prompt reuse {reused} "
          f"({tokens / reused:.2f}x fewer)")
    naive_t, naive = timed(lambda: naive_scores(model, groups), args.repeats)
    reuse = HFScorer(model, max_batch_tokens=args.max_batch_tokens, prefix_reuse=True, pad_token_id=tok.pad_token_id)
    reuse_t, fast = timed(lambda: reuse.score(groups), args.repeats)
    full = HFScorer(model, max_batch_tokens=args.max_batch_tokens, prefix_reuse=False, pad_token_id=tok.pad_token_id)
    full_t, batched = timed(lambda: full.score(groups), args.repeats)

    diff = max(abs(a.mean - b) for ra, rb in zip(fast, naive) for a, b in zip(ra, rb))
    diff_full = max(abs(a.mean - b) for ra, rb in zip(batched, naive) for a, b in zip(ra, rb))
    print(f"naive loop (batch 1, prompt+response):  {tokens / naive_t:10.0f} tok/s  ({naive_t:.2f}s)")
    print(f"hf backend, batched, no KV reuse:        {tokens / full_t:10.0f} tok/s  ({full_t:.2f}s)  "
          f"x{naive_t / full_t:.2f}  max|diff| {diff_full:.2e}")
    print(f"hf backend, batched + prompt KV reuse:   {tokens / reuse_t:10.0f} tok/s  ({reuse_t:.2f}s)  "
          f"x{naive_t / reuse_t:.2f}  max|diff| {diff:.2e}")
    print(f"speedup of the transformers backend over the naive loop: {naive_t / reuse_t:.2f}x (goal >= 3x)")
    print(f"encoding ({args.tokenizer}): joint prompt+response {joint_t * 1e3:.1f} ms vs separate (baseline) "
          f"{separate_t * 1e3:.1f} ms: x{joint_t / separate_t:.2f}, {100 * joint_t / reuse_t:.1f}% of the scoring time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
