"""Tiny, locally built causal LMs for tests (no hub downloads).

The model and tokenizer are real transformers objects saved with
``save_pretrained``, so every code path is the one users run with a hub model.
The default tokenizer is byte-level BPE (GPT-2 style) trained in-process on a
fixed corpus, so it is deterministic and can encode any text. Two SentencePiece
style tokenizers (BPE with byte fallback, as converted Llama/Mistral tokenizers
are) exercise the other pipelines that decide where "▁" tokens appear:
``metaspace`` (a ``Metaspace`` pre-tokenizer, ``prepend_scheme="first"``) and
``legacy`` (a ``Prepend("▁")`` + ``Replace(" ", "▁")`` normalizer, the legacy
conversion). Both add a BOS like Llama and carry a Llama-2 style chat template.
"""

from __future__ import annotations

import json
from pathlib import Path

CORPUS = [
    "Question: what is 2 + 3? Answer: 5",
    "def f(x, r):\n    if x > 3:\n        return x + r\n    return r - x\n",
    "The answer is \\boxed{7}. The answer is \\boxed{3, 5}.",
    "Reason step by step, then give the final answer as a set of values inside \\boxed{}.",
] * 20

SPECIAL = ["<|endoftext|>", "<|pad|>"]
TOKENIZER_KINDS = ("byte_level", "metaspace", "legacy")
SP_SPECIAL = ["<unk>", "<s>", "</s>", "<pad>"]
LLAMA2_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}[INST] {{ m['content'] }} [/INST]"
    "{% elif m['role'] == 'assistant' %} {{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}"
)


def build_tokenizer(vocab_size: int = 400, kind: str = "byte_level"):
    """A trained tokenizer of one of :data:`TOKENIZER_KINDS` (``byte_level``: the GPT-2 style default)."""
    if kind != "byte_level":
        return build_sentencepiece_tokenizer(kind, vocab_size=vocab_size + 100)
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


def build_sentencepiece_tokenizer(kind: str = "metaspace", vocab_size: int = 500):
    """SentencePiece-style BPE with byte fallback; ``kind`` picks the Metaspace or the legacy Prepend pipeline."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    if kind not in ("metaspace", "legacy"):
        raise ValueError(f"kind must be one of {', '.join(TOKENIZER_KINDS)}, got {kind!r}")
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True))
    # train with whitespace-split pieces (as SentencePiece does), then use the kind's encoding pipeline
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SP_SPECIAL + [f"<0x{i:02X}>" for i in range(256)],
                                  show_progress=False)
    tok.train_from_iterator(CORPUS, trainer=trainer)
    # byte tokens are ordinary vocabulary entries in SentencePiece models, not added special tokens
    data = json.loads(tok.to_str())
    data["added_tokens"] = [t for t in data["added_tokens"] if t["content"] in SP_SPECIAL]
    tok = Tokenizer.from_str(json.dumps(data))
    if kind == "metaspace":
        tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=False)
    else:
        tok.pre_tokenizer = None
        tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", bos)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   pad_token="<pad>")
    fast.chat_template = LLAMA2_CHAT_TEMPLATE
    return fast


QWEN25_CHAT_TEMPLATE = (  # the structure of Qwen2.5-Instruct's template (default system message included)
    "{% if messages[0]['role'] != 'system' %}<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. "
    "You are a helpful assistant.<|im_end|>\n{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_byte_tokenizer():
    """Byte-level BPE with no merges: one token per UTF-8 byte, the most tokens any byte-level BPE can give a text.

    Token counts measured with it are upper bounds for byte-level BPE tokenizers such as Qwen's. It carries
    Qwen2.5's special tokens and chat template structure.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    tok = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(sorted(alphabet))}, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   additional_special_tokens=["<|im_start|>"])
    fast.chat_template = QWEN25_CHAT_TEMPLATE
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


def save_tiny_lm(path: str | Path, *, tokenizer_kind: str = "byte_level", **model_kwargs) -> Path:
    """Build and save a tiny model + tokenizer; returns the directory (usable as ``pretrained=``)."""
    path = Path(path)
    tokenizer = build_tokenizer(kind=tokenizer_kind)
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
