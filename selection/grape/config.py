"""GRAPE's configuration.

The ``cf-select grape`` options are generated from the dataclass fields (name,
type, ``metadata["help"]``, ``metadata["choices"]``) by the shared bridge
:mod:`plugins.cliargs`, so the library config and the CLI cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

DEFAULT_TEMPLATE = "Question: {instruction}\nAnswer: {response}"
MODES = ("best", "reverse", "random")
BOS_CHOICES = ("auto", "always", "never")
DTYPES = ("auto", "float32", "bfloat16", "float16")
OVERLENGTH = ("truncate", "skip")


def _f(default: Any, help: str, **extra: Any) -> Any:
    return field(default=default, metadata={"help": help, **extra})


@dataclass
class GrapeConfig:
    """How GRAPE scores and selects (see docs/grape.md)."""

    model: str | None = _f(None, "target (base) model: a local path or hub name; needed unless --mode random")
    backend: str = _f("hf", "scoring backend: hf (transformers) or vllm", choices=("hf", "vllm"))
    mode: str = _f("best", "best: highest mean log-prob (GRAPE); reverse: lowest (Reverse-GRAPE); "
                           "random: random candidates (Random-k baseline, needs no model)", choices=MODES)
    top_k: str = _f("1", "responses kept per instruction: a count, or 'all' (every candidate, ranked)")
    top_k_column: str | None = _f(None, "per-instruction k read from this integer column (e.g. n_original, the "
                                        "UltraInteract-style 'original count'); overrides --top-k")
    template: str = _f(DEFAULT_TEMPLATE, "prompt template; must contain {instruction} and end with {response}")
    chat_template: bool = _f(False, "format the prompt with the tokenizer's chat template instead of --template")
    bos: str = _f("auto", "BOS handling: auto (the tokenizer's own add_special_tokens behaviour; a BOS/EOS token "
                          "is prepended only when the prompt would be empty), always, never", choices=BOS_CHOICES)
    score_eos: bool = _f(False, "append the EOS token to every response and score it too")
    max_batch_tokens: int = _f(4096, "token budget of one forward pass (rows x padded length, cached prompt "
                                     "included)")
    prefix_reuse: bool = _f(True, "encode each prompt once and reuse its KV cache for all its candidates")
    dtype: str = _f("auto", "model dtype (auto = the checkpoint's own, e.g. bfloat16 for most 7-8B models)",
                    choices=DTYPES)
    max_length: int | None = _f(None, "longest prompt + response scored, in tokens (default: the model's context, "
                                      "or --max-model-len for vllm)")
    overlength: str = _f("truncate", "a candidate longer than the limit: truncate (score it on a prompt cut from the "
                                     "left, as lm-eval does) or skip (leave it unscored); both are counted in the "
                                     "summary, and a response that alone exceeds the limit is always skipped",
                         choices=OVERLENGTH)
    device: str | None = _f(None, "torch device (default: cuda if available, else cpu; the accelerate process's "
                                  "device under accelerate launch)")
    trust_remote_code: bool = _f(False, "allow custom model code from the checkpoint")
    seed: int = _f(0, "seed of --mode random")
    shard_size: int = _f(64, "instructions per score shard (the unit of resuming and of multi-process sharding)")
    work_dir: str | None = _f(None, "folder for score shards (default: OUTPUT.work); rerunning resumes from it")
    max_shards: int | None = _f(None, "compute at most this many new shards, then stop (time-boxed jobs, tests)")
    progress: bool = _f(True, "show a progress bar with tokens/s")
    tensor_parallel_size: int = _f(1, "vllm: tensor-parallel GPUs")
    gpu_memory_utilization: float = _f(0.9, "vllm: fraction of GPU memory to use")
    max_model_len: int | None = _f(None, "vllm: maximum sequence length (default: the model's)")

    def __post_init__(self) -> None:
        if self.backend not in ("hf", "vllm"):
            raise ValueError(f"backend must be 'hf' or 'vllm', got {self.backend!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        self.top_k = str(self.top_k).strip().lower()
        if self.top_k != "all":
            try:
                k = int(self.top_k)
            except ValueError:
                raise ValueError(f"top_k must be a positive integer or 'all', got {self.top_k!r}") from None
            if k < 1:
                raise ValueError(f"top_k must be at least 1, got {k}")
        if "{instruction}" not in self.template:
            raise ValueError("template must contain {instruction}")
        if self.template.count("{response}") != 1 or not self.template.endswith("{response}"):
            raise ValueError("template must contain {response} exactly once, at its very end")
        if self.bos not in BOS_CHOICES:
            raise ValueError(f"bos must be one of {', '.join(BOS_CHOICES)}, got {self.bos!r}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        if self.overlength not in OVERLENGTH:
            raise ValueError(f"overlength must be one of {', '.join(OVERLENGTH)}, got {self.overlength!r}")
        if self.max_length is not None and self.max_length < 2:
            raise ValueError(f"max_length must be at least 2, got {self.max_length}")
        for name in ("max_batch_tokens", "shard_size", "tensor_parallel_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_shards is not None and self.max_shards < 0:
            raise ValueError(f"max_shards must be >= 0, got {self.max_shards}")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ValueError(f"gpu_memory_utilization must be in (0, 1], got {self.gpu_memory_utilization}")
        if self.mode != "random" and not self.model:
            raise ValueError("model is required unless mode is 'random'")

    def k_for(self, row: dict[str, Any], n_candidates: int) -> int:
        """How many candidates to keep for one instruction."""
        if self.top_k_column is not None:
            value = row.get(self.top_k_column)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"field {self.top_k_column!r}: expected a non-negative integer, got {value!r}")
            return min(value, n_candidates)
        return n_candidates if self.top_k == "all" else min(int(self.top_k), n_candidates)

    def scoring_fingerprint(self) -> dict[str, Any]:
        """The settings that change scores (a work dir made with other settings is refused)."""
        return {k: getattr(self, k) for k in ("model", "template", "chat_template", "bos", "score_eos", "dtype",
                                              "shard_size", "max_length", "overlength")}
