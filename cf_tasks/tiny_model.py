"""A small random causal LM with a tokenizer and a chat template, built locally (``cf-tasks tiny-model``).

Why: every command in the README takes a model, and a first run should not
need a hub download or a GPU. The model is a real ``transformers`` Llama saved
with ``save_pretrained``, so ``lm_eval --model hf``, ``cf-select grape`` and
``cf-train`` run their usual code paths on it; its answers are noise, which is
what a smoke run needs. The shape follows what the backends require: a head
dimension of 64 (vLLM's CPU kernels), a chat template (``--apply_chat_template``)
and an EOS token. Same arguments, same bytes: the tokenizer is trained on a
fixed corpus and the weights come from a seeded generator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cf_tasks.jsonl import atomic_directory

CHAT_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]


@dataclass(frozen=True)
class TinyModelConfig:
    """Shape of the random model; the defaults give about 0.7M parameters and run in milliseconds on a CPU."""

    layers: int = field(default=2, metadata={"help": "number of transformer layers"})
    hidden: int = field(default=128, metadata={"help": "hidden size (heads x 64)"})
    heads: int = field(default=2, metadata={"help": "attention heads (head dimension = hidden / heads)"})
    vocab: int = field(default=1024, metadata={"help": "BPE vocabulary size, special tokens included"})
    max_positions: int = field(default=4096, metadata={"help": "longest sequence the model accepts"})
    seed: int = field(default=0, metadata={"help": "seed of the random weights"})

    def __post_init__(self) -> None:
        for name in ("layers", "hidden", "heads", "vocab", "max_positions"):
            if getattr(self, name) < 1:
                raise ValueError(f"tiny model: {name} must be at least 1, got {getattr(self, name)}")
        if self.hidden % self.heads:
            raise ValueError(f"tiny model: hidden ({self.hidden}) must be a multiple of heads ({self.heads})")
        if self.vocab < 300:
            raise ValueError(f"tiny model: vocab must be at least 300 (256 bytes + merges), got {self.vocab}")


def _corpus() -> list[str]:
    """Text the tokenizer learns merges from: generated prompts of every built-in family, plus answers."""
    from cf_tasks.prompts import build_prompt

    texts = [
        "Reason step by step, then give the final answer inside \\boxed{}. The answer is \\boxed{3, 7}.",
        "Question: what is 2 + 3?\nAnswer: 5",
    ]
    snippets = [
        "def f(x, r):\n    if x > r:\n        return x * r - 3\n    while x < 10:\n        x = x + r\n    return x\n",
    ]
    record = {"program": snippets[0], "entry_point": "f", "latents": {"r": list(range(1, 7))},
              "observed": {"inputs": {"x": 4}, "output": 9}, "intervention": {"x": 7}}
    texts.append(build_prompt(record))
    texts.append(build_prompt({**record, "variant": "interventional", "latent_values": {"r": 3}}))
    return (texts + snippets) * 8


def build_tokenizer(vocab: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=SPECIAL_TOKENS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(_corpus(), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", bos_token="<|endoftext|>",
                                   pad_token="<|pad|>", unk_token=None)
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_model(tokenizer, config: TinyModelConfig):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    model_config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=config.hidden, intermediate_size=2 * config.hidden,
        num_hidden_layers=config.layers, num_attention_heads=config.heads, num_key_value_heads=config.heads,
        max_position_embeddings=config.max_positions, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True,
    )
    generator_state = torch.random.get_rng_state()
    torch.manual_seed(config.seed)
    try:
        model = LlamaForCausalLM(model_config)
    finally:
        torch.random.set_rng_state(generator_state)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model.eval()


def save_tiny_model(output: str | Path, config: TinyModelConfig = TinyModelConfig(), *,
                    overwrite: bool = False) -> Path:
    """Build the model and tokenizer and save them to ``output`` (written to a temp folder, then renamed)."""
    out = Path(output)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if not overwrite:
            raise FileExistsError(f"tiny model: output {out} exists and is not empty (pass --overwrite)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(config.vocab)
    model = build_model(tokenizer, config)
    with atomic_directory(out) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return out
