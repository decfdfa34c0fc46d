"""Per-GPU memory estimate of the BIDS warm-up and feature stages (``cf-select bids --dry-run``).

The model is built on PyTorch's ``meta`` device from its ``config.json`` (no
weights are read), with the run's LoRA adapters attached by peft, so parameter
counts are exact. Activations are estimated per token and layer from the
tensors autograd keeps for the backward pass of a decoder layer with
memory-efficient attention (no ``seq x seq`` term) and a gated MLP:

- warm-up, per token and layer: ``13 h + 3 kv + 4 m`` elements (``9 h + ...``
  without LoRA dropout: layer norms' inputs, the attention projections' input
  and LoRA dropout copies, rotated
  q/k, attention inputs and output, the MLP's input, gate, up and product),
  ``h`` hidden size, ``kv`` key/value width, ``m`` MLP width; with gradient
  checkpointing, one ``h`` per layer plus one layer's worth;
- features (eval mode, frozen weights need no saved inputs): ``8 h + 3 kv + 3 m``
  plus the LoRA output gradients held for the per-example gradients;
- logits: ``tokens x vocab x (a + 8)`` bytes (the logits, their float32 copy
  for the loss and its gradient), ``a`` the activation element size;
- tokens = examples per pass x ``--max-length`` (the worst case: every
  example at the length limit).

Data parallel (``accelerate launch``) keeps a full replica per GPU, so the
estimate does not depend on the number of GPUs; more GPUs only share the work.
It is an estimate (framework buffers, fragmentation and CUDA context add a few
GiB), meant to tell whether a configuration is near a card's size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

GIB = 1 << 30


@dataclass
class ModelSizes:
    """What the estimate needs from the model: parameter counts and layer widths."""

    n_params: int
    lora_shapes: dict[str, tuple[int, ...]]
    layers: int
    hidden: int
    kv_width: int
    mlp_width: int
    vocab: int

    @property
    def n_lora(self) -> int:
        return sum(math.prod(s) for s in self.lora_shapes.values())

    @property
    def largest_lora(self) -> int:
        """Elements of the largest LoRA weight (the feature stage forms one per-example gradient at a time)."""
        return max(math.prod(s) for s in self.lora_shapes.values())

    @property
    def lora_out_width(self) -> int:
        """Sum of the LoRA modules' output widths per layer (their output gradients are held per token)."""
        return sum(s[0] for s in self.lora_shapes.values()) // max(1, self.layers)


def model_sizes(model_path: str, config) -> ModelSizes:
    """Exact parameter counts from a ``meta``-device model with the run's LoRA adapters."""
    import torch
    from peft import get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    from selection.bids.modeling import lora_config

    hf = AutoConfig.from_pretrained(model_path)
    with torch.device("meta"):
        base = AutoModelForCausalLM.from_config(hf)
        n_params = sum(p.numel() for p in base.parameters())
        w = config.warmup
        model = get_peft_model(base, lora_config(base, r=w.lora_r, alpha=w.lora_alpha, dropout=w.lora_dropout,
                                                 target_modules=w.target_modules))
    lora = {name: p for name, p in model.named_parameters() if p.requires_grad}
    layers = int(getattr(hf, "num_hidden_layers"))
    hidden = int(getattr(hf, "hidden_size"))
    heads = int(getattr(hf, "num_attention_heads"))
    head_dim = int(getattr(hf, "head_dim", None) or hidden // heads)
    kv_width = int(getattr(hf, "num_key_value_heads", None) or heads) * head_dim
    mlp_width = int(getattr(hf, "intermediate_size", None) or getattr(hf, "n_inner", None) or 4 * hidden)
    return ModelSizes(n_params, {name: tuple(p.shape) for name, p in lora.items()}, layers, hidden, kv_width,
                      mlp_width, int(getattr(hf, "vocab_size")))


def _element(dtype: str) -> int:
    return 4 if dtype == "float32" else 2


def warmup_estimate(sizes: ModelSizes, config) -> dict[str, float]:
    """Bytes per GPU of the warm-up, by component."""
    w, f, d = config.warmup, config.features, config.data
    act = 2 if (w.mixed_precision == "bf16" or f.torch_dtype != "float32") else 4
    tokens = w.micro_batch_size * d.max_length
    dropout = 4 * sizes.hidden if w.lora_dropout > 0 else 0
    per_layer = 9 * sizes.hidden + dropout + 3 * sizes.kv_width + 4 * sizes.mlp_width
    if w.gradient_checkpointing:
        activations = tokens * act * (sizes.layers * sizes.hidden + per_layer)
    else:
        activations = tokens * act * sizes.layers * per_layer
    return {
        f"base weights ({f.torch_dtype})": sizes.n_params * _element(f.torch_dtype),
        "LoRA weights + grads + Adam (float32)": sizes.n_lora * 16,
        f"activations ({tokens:,} tokens{', checkpointed' if w.gradient_checkpointing else ''})": activations,
        "logits + loss": tokens * sizes.vocab * (act + 8),
    }


def features_estimate(sizes: ModelSizes, config) -> dict[str, float]:
    """Bytes per GPU of the feature stage, by component."""
    f, d = config.features, config.data
    act = _element(f.torch_dtype)
    tokens = f.grad_batch_size * d.max_length
    per_layer = 8 * sizes.hidden + 3 * sizes.kv_width + 3 * sizes.mlp_width + sizes.lora_out_width
    projector = planned_projector(sizes, config)
    if f.projection == "factored":
        projector_bytes = projector.factor_bytes
    else:
        projector_bytes = min(projector.cache_bytes, projector.matrix_bytes) + 1024 * f.proj_dim * 4
    return {
        f"base weights ({f.torch_dtype})": sizes.n_params * act,
        "LoRA weights (float32)": sizes.n_lora * 4,
        f"activations ({tokens:,} tokens, no checkpointing)": tokens * act * sizes.layers * per_layer,
        "logits + loss": tokens * sizes.vocab * (act + 8),
        "per-example gradient of one module (+ Adam temporaries)": f.grad_batch_size * sizes.largest_lora * 4 * 3,
        f"projection ({f.projection})": projector_bytes,
    }


def planned_projector(sizes: ModelSizes, config):
    """The run's projector over the LoRA shapes, on the ``meta`` device: its matrices are lazy, nothing is built."""
    from selection.bids.projection import make_projector

    f = config.features
    return make_projector(f.projection, sizes.lora_shapes, f.proj_dim, device="meta",
                          cache_bytes=int(f.projection_cache_gb * GIB))


ADVICE = {"warm-up": "lower --micro-batch-size, add --gradient-checkpointing, --mixed-precision bf16 and "
                     "--torch-dtype bfloat16",
          "features": "lower --grad-batch-size or --max-length, use --torch-dtype bfloat16"}


def dry_run_report(config) -> tuple[str, list[str]]:
    """The ``--dry-run`` text and one warning per stage that exceeds ``config.gpu_memory_gb``."""
    sizes = model_sizes(config.model, config)
    lines = [f"{config.model}: {sizes.n_params:,} parameters, {sizes.n_lora:,} LoRA parameters "
             f"(r={config.warmup.lora_r}); data parallel: the same per GPU for any number of GPUs"]
    warnings = []
    for name, parts in (("warm-up", warmup_estimate(sizes, config)), ("features", features_estimate(sizes, config))):
        text, over = format_estimate(name, parts, config.gpu_memory_gb)
        lines.append(text)
        if name == "features":
            lines.append("  " + planned_projector(sizes, config).describe())
        if over:
            warnings.append(f"warning: the {name} stage needs more than a {config.gpu_memory_gb:g} GiB card; "
                            f"{ADVICE[name]}")
    return "\n".join(lines), warnings


def format_estimate(name: str, parts: dict[str, float], card_gb: float) -> tuple[str, bool]:
    """A small table and whether the total exceeds the card."""
    total = sum(parts.values())
    width = max(len(k) for k in parts)
    lines = [f"{name}: estimated per-GPU memory"]
    lines += [f"  {k:<{width}}  {v / GIB:9.1f} GiB" for k, v in parts.items()]
    over = total > card_gb * GIB
    lines.append(f"  {'total':<{width}}  {total / GIB:9.1f} GiB   card {card_gb:g} GiB: "
                 f"{'EXCEEDS the card' if over else 'fits'}")
    return "\n".join(lines), over
