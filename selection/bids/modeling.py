"""Loading the selection model, its tokenizer and LoRA adapters (transformers + peft)."""

from __future__ import annotations

from pathlib import Path

from cf_tasks.torch_device import resolve_device  # noqa: F401  -- BIDS's device rule is the project's

PAPER_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")


def torch_dtype(name: str):
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


def load_tokenizer(model_path: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_path)


def load_base_model(model_path: str, dtype: str = "float32", device: str = "cpu"):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch_dtype(dtype))
    model.to(device)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def default_target_modules(model) -> list[str] | None:
    """The paper's attention projections when present, else ``None`` (peft's per-architecture default)."""
    leaves = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    found = [t for t in PAPER_TARGETS if t in leaves]
    return found or None


def lora_config(model, *, r: int, alpha: float, dropout: float, target_modules: list[str] | None):
    from peft import LoraConfig

    targets = target_modules if target_modules else default_target_modules(model)
    return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=targets, task_type="CAUSAL_LM",
                      fan_in_fan_out=_targets_conv1d(model, targets))


def _targets_conv1d(model, targets: list[str] | None) -> bool:
    """GPT-2-style ``Conv1D`` layers store the weight transposed; peft needs ``fan_in_fan_out`` for them."""
    from transformers.pytorch_utils import Conv1D

    if not targets:
        return False
    return any(isinstance(m, Conv1D) and name.rsplit(".", 1)[-1] in targets for name, m in model.named_modules())


def mark_lora_trainable(model) -> list[str]:
    """Exactly the LoRA parameters require gradients (LESS asserts the same); returns their names."""
    names = []
    for name, p in model.named_parameters():
        trainable = "lora_" in name
        p.requires_grad_(trainable)
        if trainable:
            names.append(name)
    if not names:
        raise ValueError("the model has no LoRA parameter")
    return names


def attach_adapter(base, checkpoint: str | Path):
    """A peft model with the checkpoint's adapter, in eval mode (no dropout), LoRA weights trainable."""
    from peft import PeftModel

    model = PeftModel.from_pretrained(base, str(checkpoint), is_trainable=True)
    model.eval()
    mark_lora_trainable(model)
    return model


def load_adapter_weights(model, checkpoint: str | Path) -> None:
    """Swap the adapter weights of an existing peft model for a checkpoint's (same LoRA layout)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = load_file(str(Path(checkpoint) / "adapter_model.safetensors"))
    result = set_peft_model_state_dict(model, weights)
    unexpected = getattr(result, "unexpected_keys", None)
    if unexpected:
        raise ValueError(f"{checkpoint}: adapter has unexpected keys {unexpected[:3]}")
