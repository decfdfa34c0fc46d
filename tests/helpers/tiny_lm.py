"""Tiny, locally built causal LMs for tests (no hub downloads).

The model and tokenizer are real transformers objects saved with
``save_pretrained``, so every code path is the one users run with a hub model.
The tokenizer is byte-level BPE trained in-process on a fixed corpus, so it
is deterministic and can encode any text.
"""

from __future__ import annotations

from pathlib import Path

CORPUS = [
    "Question: what is 2 + 3? Answer: 5",
    "def f(x, r):\n    if x > 3:\n        return x + r\n    return r - x\n",
    "The answer is \\boxed{7}. The answer is \\boxed{3, 5}.",
    "Reason step by step, then give the final answer as a set of values inside \\boxed{}.",
] * 20

SPECIAL = ["<|endoftext|>", "<|pad|>"]


def build_tokenizer(vocab_size: int = 400):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token="<|endoftext|>", bos_token="<|endoftext|>", pad_token="<|pad|>",
        unk_token=None,
    )
    fast.chat_template = (
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    return fast


def build_model(tokenizer, *, n_layer: int = 2, n_embd: int = 64, n_head: int = 2, n_positions: int = 1024,
                seed: int = 0):
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=n_positions, n_embd=n_embd, n_layer=n_layer, n_head=n_head,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return GPT2LMHeadModel(config).eval()


def save_tiny_lm(path: str | Path, **model_kwargs) -> Path:
    """Build and save a tiny model + tokenizer; returns the directory (usable as ``pretrained=``)."""
    path = Path(path)
    tokenizer = build_tokenizer()
    model = build_model(tokenizer, **model_kwargs)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def build_llama(tokenizer, *, n_layer: int = 2, hidden_size: int = 128, n_head: int = 2, n_kv_head: int | None = None,
                intermediate_size: int = 256, max_position_embeddings: int = 1024, seed: int = 0):
    """A tiny random Llama: an architecture vLLM serves, with head_dim = hidden_size / n_head (64 by default,
    the smallest the vLLM CPU attention kernels accept)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=intermediate_size,
        num_hidden_layers=n_layer, num_attention_heads=n_head, num_key_value_heads=n_kv_head or n_head,
        max_position_embeddings=max_position_embeddings, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False,
    )
    return LlamaForCausalLM(config).eval()


def save_tiny_llama(path: str | Path, *, dtype: str = "float32", **model_kwargs) -> Path:
    """Like :func:`save_tiny_lm` with a Llama saved in ``dtype`` (recorded in its config, as hub checkpoints do)."""
    import torch

    path = Path(path)
    tokenizer = build_tokenizer()
    model = build_llama(tokenizer, **model_kwargs).to(getattr(torch, dtype))
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
