"""Per-GPU memory estimate of a training run (``cf-train grpo|sft --dry-run``), before anything is loaded.

Why: the failure this prevents is an out-of-memory error minutes into a
multi-GPU job (the paper GRPO recipe with plain data parallelism and TRL's
float32 default needs ~122 GB per GPU for the model states alone). The model
is instantiated on the ``meta`` device (no weights are read) to count its
parameters and, for LoRA, the adapter's parameters exactly.

The formula (bytes per GPU; P = parameters, T = trainable parameters, N = GPUs,
w = bytes per weight of the loaded dtype, i.e. ``trl.model_init_kwargs.dtype``,
float32 when unset, as TRL does):

============  =====================  =================  ============================
strategy      weights                gradients          AdamW state
============  =====================  =================  ============================
DDP / 1 GPU   w·P                    w·T (LoRA: 4·T)    2·w·T (LoRA: 8·T)
ZeRO-1        2·P                    2·T                12·T / N
ZeRO-2        2·P                    2·T / N            12·T / N
ZeRO-3        2·P / N                2·T / N            12·T / N
============  =====================  =================  ============================

DeepSpeed with ``bf16`` holds 16-bit weights and gradients and keeps an fp32
master copy plus two fp32 moments per trainable weight (12 bytes); without
DeepSpeed, transformers trains the weights in their loaded dtype (no master
copy), and peft keeps LoRA adapters in float32. Further terms:

- reference model (GRPO with ``beta != 0``, full fine-tuning): 2·P (/ N under ZeRO-3);
- vLLM colocated with the trainer: ``vllm_gpu_memory_utilization`` × card
  (vLLM reserves that share of the whole card; it must hold the bf16 weights
  ``2·P / vllm_tensor_parallel_size`` plus a KV cache); 0 in server mode;
- logits of one micro-batch: rows × positions × vocabulary × 2 bytes (bf16),
  plus one float32 copy for the loss (SFT: the whole batch, transformers
  upcasts; GRPO: one row at a time, TRL's chunked log-softmax);
- checkpointed activations (``gradient_checkpointing``): layers × rows ×
  positions × hidden × 2 bytes. Without checkpointing activations are many
  times larger and are *not* estimated.

Not included: CUDA context and allocator fragmentation (keep ~10 % free),
communication buffers, and the transient full-parameter gathers of ZeRO-3.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping


GIB = 1024 ** 3
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
STRATEGIES = ("ddp", "zero1", "zero2", "zero3")


@dataclass(frozen=True)
class ModelShape:
    params: int
    hidden: int
    layers: int
    vocab: int
    lora_params: int = 0


@dataclass(frozen=True)
class Distribution:
    """How the run is spread over GPUs (from an accelerate config file, the launcher's environment or flags)."""

    strategy: str = "ddp"
    num_gpus: int = 1
    source: str = "default: one process, no DeepSpeed"

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}, got {self.strategy!r}")
        if self.num_gpus < 1:
            raise ValueError("the number of GPUs must be at least 1")

    @property
    def label(self) -> str:
        if self.strategy == "ddp" and self.num_gpus == 1:
            return "one GPU"
        names = {"ddp": "data parallel (DDP)", "zero1": "DeepSpeed ZeRO-1", "zero2": "DeepSpeed ZeRO-2",
                 "zero3": "DeepSpeed ZeRO-3"}
        return f"{names[self.strategy]} over {self.num_gpus} GPU(s)"


@dataclass
class Estimate:
    lines: list[tuple[str, float, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    header: str = ""
    card_gib: float = 80.0

    @property
    def total_bytes(self) -> float:
        return sum(b for _, b, _ in self.lines)

    def add(self, name: str, n_bytes: float, how: str) -> None:
        self.lines.append((name, float(n_bytes), how))

    def render(self) -> str:
        out = [self.header]
        for name, b, how in self.lines:
            out.append(f"  {name:<26} {b / GIB:8.1f} GiB   {how}")
        out.append(f"  {'total':<26} {self.total_bytes / GIB:8.1f} GiB   of a {self.card_gib:g} GiB card "
                   "(not counted: CUDA context, fragmentation, communication buffers)")
        out += [f"WARNING: {w}" for w in self.warnings]
        return "\n".join(out) + "\n"


def distribution_from_accelerate_config(path: str | os.PathLike) -> Distribution:
    """Strategy and process count of an ``accelerate launch --config_file`` YAML."""
    import yaml

    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    kind = str(data.get("distributed_type", "NO")).upper()
    n = int(data.get("num_processes", 1) or 1)
    if kind == "DEEPSPEED":
        stage = int((data.get("deepspeed_config") or {}).get("zero_stage", 0) or 0)
        strategy = {1: "zero1", 2: "zero2", 3: "zero3"}.get(stage, "ddp")
    elif kind == "FSDP":
        strategy = "zero3"  # full sharding: the same partitioning of weights, gradients and optimizer state
    else:
        strategy = "ddp"
    return Distribution(strategy, n, f"accelerate config {path}")


def distribution_from_env(env: Mapping[str, str] = os.environ) -> Distribution | None:
    """The distribution of the current ``accelerate launch`` (None outside one)."""
    from training.launch import launcher_world_size

    n = launcher_world_size(env)
    if env.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true":
        stage = env.get("ACCELERATE_DEEPSPEED_ZERO_STAGE", "0")
        return Distribution({"1": "zero1", "2": "zero2", "3": "zero3"}.get(stage, "ddp"), n, "accelerate launch")
    if env.get("ACCELERATE_USE_FSDP", "").lower() == "true":
        return Distribution("zero3", n, "accelerate launch (FSDP)")
    return Distribution("ddp", n, "launcher environment") if n > 1 else None


def model_shape(model: str, lora: Any = None, trust_remote_code: bool = False) -> ModelShape:
    """Parameter counts from the model's config, instantiated on the meta device (no weights are read)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model, trust_remote_code=trust_remote_code)
    with torch.device("meta"):
        net = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
    params = sum(p.numel() for p in net.parameters())
    lora_params = 0
    if lora is not None:
        from peft import get_peft_model

        peft_model = get_peft_model(net, lora.to_peft())
        lora_params = sum(p.numel() for n, p in peft_model.named_parameters() if "lora_" in n)
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    hidden = getattr(text, "hidden_size", None) or getattr(text, "n_embd", 0)
    layers = getattr(text, "num_hidden_layers", None) or getattr(text, "n_layer", 0)
    return ModelShape(params, int(hidden), int(layers), int(getattr(text, "vocab_size", 0)), lora_params)


def trl_settings(config: Any) -> dict[str, Any]:
    """A run's ``trl:`` section over the defaults of TRL's config class (what TRL will use)."""
    import dataclasses

    import trl

    cls = getattr(trl, config.trl_config_name)
    defaults = {f.name: f.default for f in dataclasses.fields(cls) if f.default is not dataclasses.MISSING}
    return {**defaults, **config.trl}


def _billions(n: float) -> str:
    return f"{n / 1e9:.2f}B" if n >= 1e8 else f"{n / 1e6:.2f}M"


def estimate(shape: ModelShape, dist: Distribution, trl: Mapping[str, Any], *, lora: bool, trainer: str,
             card_gib: float = 80.0, prompt_tokens: int = 0) -> Estimate:
    """The per-GPU estimate of one run (see the module docstring for every term).

    ``trl`` holds the run's TRL settings over TRL's defaults; ``prompt_tokens``
    is the longest GRPO prompt (added to the completion for the activations).
    """
    est = Estimate(card_gib=card_gib)
    P, N = shape.params, dist.num_gpus
    T = shape.lora_params if lora else P
    dtype = str((trl.get("model_init_kwargs") or {}).get("dtype", "float32"))
    w = DTYPE_BYTES.get(dtype, 2 if dtype == "auto" else 4)
    deepspeed = dist.strategy != "ddp"
    mode = f"LoRA ({_billions(T)} trainable)" if lora else "full fine-tuning"
    est.header = (f"memory estimate per GPU: {_billions(P)} parameters, {mode}, weights loaded as {dtype}, "
                  f"{dist.label} ({dist.source})")
    if deepspeed:
        shard_w = N if dist.strategy == "zero3" else 1
        shard_g = N if dist.strategy in ("zero2", "zero3") else 1
        est.add("weights", 2 * P / shard_w, f"2 bytes x {_billions(P)}" + (f" / {N}" if shard_w > 1 else ""))
        est.add("gradients", 2 * T / shard_g, f"2 bytes x {_billions(T)}" + (f" / {N}" if shard_g > 1 else ""))
        est.add("optimizer (AdamW)", 12 * T / N, f"fp32 master + 2 moments: 12 bytes x {_billions(T)} / {N}")
    else:
        tw = 4 if lora else w
        est.add("weights", w * P + (4 * T if lora else 0), f"{w} bytes x {_billions(P)}"
                + (f" + 4 bytes x {_billions(T)} adapter" if lora else ""))
        est.add("gradients", tw * T, f"{tw} bytes x {_billions(T)}")
        est.add("optimizer (AdamW)", 2 * tw * T, f"2 moments: {2 * tw} bytes x {_billions(T)}")
        if not lora and w < 4:
            est.warnings.append(f"full fine-tuning with {dtype} weights outside DeepSpeed keeps no fp32 master copy: "
                                "AdamW updates below the 16-bit resolution (~0.4% of a weight) are rounded away; "
                                "use the DeepSpeed ZeRO-3 config (fp32 master weights in its optimizer)")
    if trainer == "grpo" and not lora and float(trl.get("beta", 0.0) or 0.0) != 0.0:
        est.add("reference model", 2 * P / (N if dist.strategy == "zero3" else 1), "beta != 0: a frozen copy")
    rows = int(trl.get("per_device_train_batch_size", 8))
    if trainer == "grpo":
        positions = int(trl.get("max_completion_length", 512) or 512)
        total_positions = positions + prompt_tokens
        if trl.get("use_vllm") and trl.get("vllm_mode", "colocate") == "colocate":
            share = float(trl.get("vllm_gpu_memory_utilization", 0.3))
            tp = int(trl.get("vllm_tensor_parallel_size", 1) or 1)
            est.add("vLLM (colocated)", share * card_gib * GIB, f"vllm_gpu_memory_utilization {share} x {card_gib:g} GiB")
            if 2 * P / tp > share * card_gib * GIB * 0.9:
                est.warnings.append(f"the vLLM share ({share * card_gib:.1f} GiB) cannot hold the bf16 weights "
                                    f"({2 * P / tp / GIB:.1f} GiB per tensor-parallel rank) and a KV cache; raise "
                                    "trl.vllm_gpu_memory_utilization or trl.vllm_tensor_parallel_size")
        est.add("logits (one micro-batch)", rows * positions * shape.vocab * 2 + positions * shape.vocab * 4,
                f"{rows} x {positions} completion positions x {shape.vocab} x 2 bytes (+ fp32 of one row)")
    else:
        total_positions = int(trl.get("max_length", 1024) or 1024)
        est.add("logits (one micro-batch)", rows * total_positions * shape.vocab * 6,
                f"{rows} x {total_positions} positions x {shape.vocab} x (2 + 4 bytes: bf16 and the fp32 loss copy)")
    if trl.get("gradient_checkpointing", trl.get("activation_checkpointing", False)):
        est.add("checkpointed activations", shape.layers * rows * total_positions * shape.hidden * 2,
                f"{shape.layers} layers x {rows} x {total_positions} positions x {shape.hidden} x 2 bytes")
    else:
        est.warnings.append("gradient checkpointing is off: activations are not estimated (many times the "
                            "checkpointed size)")
    if est.total_bytes > card_gib * GIB:
        est.warnings.append(f"the estimate ({est.total_bytes / GIB:.1f} GiB) exceeds the {card_gib:g} GiB card: "
                            "expect an out-of-memory error (use ZeRO-3 over more GPUs, LoRA, bf16 weights, a smaller "
                            "per_device_train_batch_size, or a smaller vLLM share)")
    return est
