"""Typed configs of the BIDS pipeline, one dataclass per stage.

Every field carries ``metadata={"help": ...}``; the shared bridge
:mod:`plugins.cliargs` turns the fields into ``cf-select bids`` options
(``lora_r`` -> ``--lora-r``), so the CLI and the library share one source of defaults and help. Field names are
unique across the configs for that reason. Defaults follow the LESS/BIDS recipe
(Xia et al., 2024; Dai et al., 2025; see ``docs/bids.md``); the choices the
papers leave open are marked as ours.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from selection.bids.greedy import METHODS

STAGES = ("warmup", "features", "matrix", "select")


def _help(text: str, **extra: Any) -> dict[str, Any]:
    return {"help": text, **extra}


@dataclass
class DataConfig:
    """How training and validation rows become token ids and loss masks."""

    prompt_field: str = field(default="prompt", metadata=_help("Column with the prompt (prompt/completion rows)."))
    completion_field: str = field(
        default="completion", metadata=_help("Column with the completion; the loss covers only its tokens.")
    )
    messages_field: str = field(
        default="messages",
        metadata=_help("Column with chat messages [{role, content}]; used when present. Loss on assistant turns only."),
    )
    task_field: str = field(
        default="task", metadata=_help("Column naming the task of a validation row (single-file validation sets).")
    )
    max_length: int = field(
        default=2048, metadata=_help("Truncate encoded examples to this many tokens (LESS uses 2048).")
    )

    def validate(self) -> None:
        if self.max_length < 2:
            raise ValueError(f"max_length must be at least 2, got {self.max_length}")
        for name in ("prompt_field", "completion_field", "messages_field", "task_field"):
            if not getattr(self, name):
                raise ValueError(f"{name} must be a non-empty column name")


@dataclass
class WarmupConfig:
    """LoRA warm-up of the selection model (LESS step 1)."""

    warmup_fraction: float = field(
        default=0.05,
        metadata=_help("Fraction of the pool used for warm-up (LESS default 0.05; the BIDS preprints use 1.0)."),
    )
    warmup_data_seed: int = field(default=3, metadata=_help("Seed of the warm-up subset (LESS README uses 3)."))
    epochs: int = field(default=4, metadata=_help("Warm-up epochs; one checkpoint is saved after each."))
    learning_rate: float = field(default=2e-5, metadata=_help("Peak learning rate."))
    lr_scheduler: Literal["linear", "cosine"] = field(
        default="linear",
        metadata=_help("Decay after the warm-up steps (LESS code: linear; BIDS paper text: cosine).",
                       choices=("linear", "cosine")),
    )
    warmup_ratio: float = field(default=0.03, metadata=_help("Fraction of all steps with a linear LR ramp."))
    batch_size: int = field(default=128, metadata=_help("Examples per optimizer step (the paper's global batch)."))
    micro_batch_size: int = field(default=8, metadata=_help("Examples per forward pass (gradient accumulation)."))
    weight_decay: float = field(default=0.0, metadata=_help("AdamW weight decay."))
    adam_beta1: float = field(default=0.9, metadata=_help("AdamW beta1 (also used by the Adam gradient transform)."))
    adam_beta2: float = field(default=0.999, metadata=_help("AdamW beta2 (also used by the Adam gradient transform)."))
    adam_eps: float = field(default=1e-8, metadata=_help("AdamW epsilon (inside the square root in the transform)."))
    lora_r: int = field(default=128, metadata=_help("LoRA rank."))
    lora_alpha: float = field(default=512.0, metadata=_help("LoRA alpha."))
    lora_dropout: float = field(default=0.1, metadata=_help("LoRA dropout (training only; gradients use eval mode)."))
    target_modules: list[str] | None = field(
        default=None,
        metadata=_help("Modules that get LoRA adapters. Default: q_proj k_proj v_proj o_proj when the model has "
                       "them (the paper), else peft's default for the architecture."),
    )
    train_seed: int = field(default=0, metadata=_help("Seed of LoRA init, data order and dropout."))
    mixed_precision: Literal["no", "bf16"] = field(
        default="no",
        metadata=_help("bf16: run the warm-up forward/backward under bfloat16 autocast (LESS trains with --bf16); "
                       "LoRA weights, gradients and Adam moments stay float32. Pair with --torch-dtype bfloat16 "
                       "to also hold the frozen base weights in bfloat16 (16 GB instead of 32 GB at 8B).",
                       choices=("no", "bf16")),
    )
    gradient_checkpointing: bool = field(
        default=False,
        metadata=_help("Recompute each layer's activations in the warm-up backward pass: activation memory of one "
                       "layer instead of all of them, about a third more compute, same result."),
    )

    def validate(self) -> None:
        if not 0 < self.warmup_fraction <= 1:
            raise ValueError(f"warmup_fraction must be in (0, 1], got {self.warmup_fraction}")
        for name in ("epochs", "batch_size", "micro_batch_size", "lora_r"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        if self.lr_scheduler not in ("linear", "cosine"):
            raise ValueError(f"lr_scheduler must be 'linear' or 'cosine', got {self.lr_scheduler!r}")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if not 0 <= self.lora_dropout < 1:
            raise ValueError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        for name in ("adam_beta1", "adam_beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)}")
        if self.adam_eps <= 0:
            raise ValueError(f"adam_eps must be positive, got {self.adam_eps}")
        if self.mixed_precision not in ("no", "bf16"):
            raise ValueError(f"mixed_precision must be 'no' or 'bf16', got {self.mixed_precision!r}")


@dataclass
class FeatureConfig:
    """Per-example projected gradient features (LESS steps 2 and 3)."""

    proj_dim: int = field(default=8192, metadata=_help("Random projection dimension (LESS/BIDS: 8192)."))
    proj_seed: int = field(default=0, metadata=_help("Seed of the Rademacher projection (same for train and val)."))
    projection: Literal["dense", "factored", "dense_host"] = field(
        default="dense",
        metadata=_help("dense: LESS's Rademacher matrix, generated on the device from a hash (same bits on CPU and "
                       "GPU); factored: LoGra's Kronecker-factored projection of each LoRA module (far cheaper at "
                       "7-8B, see docs/bids.md); dense_host: the CPU-generated matrix of earlier versions (slow; "
                       "reproduces their work folders).", choices=("dense", "factored", "dense_host")),
    )
    grad_batch_size: int = field(
        default=8,
        metadata=_help("Examples per batched per-example-gradient pass. Memory grows with batch x tokens; a dense "
                       "projection that does not fit the cache is regenerated per batch, so larger is faster."),
    )
    shard_size: int = field(
        default=1024, metadata=_help("Examples per feature shard; the unit of resumption and of the matrix stage.")
    )
    device: str = field(default="auto", metadata=_help("torch device: auto (cuda when available), cpu, cuda:0, ..."))
    torch_dtype: Literal["float32", "bfloat16", "float16"] = field(
        default="float32",
        metadata=_help("Dtype the model is loaded in for gradients (per-example gradients are kept in float32).",
                       choices=("float32", "bfloat16", "float16")),
    )
    projection_cache_gb: float = field(
        default=2.0,
        metadata=_help("Keep the generated projection blocks in memory up to this size; above it they are "
                       "regenerated for every batch (slower, bounded memory)."),
    )

    def validate(self) -> None:
        for name in ("proj_dim", "grad_batch_size", "shard_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.torch_dtype not in ("float32", "bfloat16", "float16"):
            raise ValueError(f"torch_dtype must be float32, bfloat16 or float16, got {self.torch_dtype!r}")
        if self.projection not in ("dense", "factored", "dense_host"):
            raise ValueError(f"projection must be dense, factored or dense_host, got {self.projection!r}")
        if self.projection_cache_gb < 0:
            raise ValueError(f"projection_cache_gb must be >= 0, got {self.projection_cache_gb}")


@dataclass
class SelectConfig:
    """The selection rule applied to the influence matrix."""

    method: Literal["bids", "task_max", "instance_max", "sum", "random"] = field(
        default="bids", metadata=_help("BIDS or a baseline from the paper.", choices=METHODS)
    )
    budget: str = field(
        default="0.15",
        metadata=_help("Rows to select: a whole number is a count (300; at most the pool size), a number with a "
                       "point a fraction of the pool in (0, 1] (0.15; 1.0 = all)."),
    )
    normalize: bool | None = field(
        default=None,
        metadata=_help("Z-score every validation column first. Default: on for bids, off for the baselines "
                       "(as in the paper); --normalize/--no-normalize give the ablations."),
    )
    seed: int = field(default=0, metadata=_help("Seed of the random baseline."))

    def validate(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        from selection.base import budget_value

        budget_value(self.budget)

    def resolved_normalize(self) -> bool:
        from selection.bids.greedy import DEFAULT_NORMALIZE

        return DEFAULT_NORMALIZE[self.method] if self.normalize is None else bool(self.normalize)


@dataclass
class BidsConfig:
    """Everything one ``cf-select bids`` run needs.

    Two modes: ``influence`` given -> selection only (``val_tasks`` names each
    column's task); otherwise the pipeline from ``model``, ``train`` and ``val``
    inside ``work_dir``.
    """

    output: str = field(default="selected.json",
                        metadata=_help("Selection JSON ({'indices': [...]} + diagnostics).", short=("-o",)))
    influence: str | None = field(
        default=None, metadata=_help("Existing influence matrix (.npy, train x validation): run only the selection.")
    )
    val_tasks: str | None = field(
        default=None, metadata=_help("JSON list with the task name of each validation column (with --influence).")
    )
    model: str | None = field(default=None, metadata=_help("Selection model (transformers path or name)."))
    train: str | None = field(default=None, metadata=_help("Training pool (JSONL/JSON/Parquet)."))
    val: list[str] | None = field(
        default=None,
        metadata=_help("Validation sets: TASK=FILE (repeatable), or one FILE whose rows carry --task-field."),
    )
    work_dir: str | None = field(
        default=None, metadata=_help("Folder for checkpoints, feature shards and the matrix (resumable).")
    )
    stages: list[str] = field(
        default_factory=lambda: list(STAGES),
        metadata=_help("Pipeline stages to run, in order.", choices=STAGES),
    )
    selected_data: str | None = field(
        default=None,
        metadata=_help("Also write the selected training rows (JSONL, selection order). "
                       "Default with the pipeline: OUTPUT with suffix .jsonl."),
    )
    plot: bool = field(default=True, metadata=_help("Save the diagnostics plot (PNG next to the output)."))
    dry_run: bool = field(
        default=False,
        metadata=_help("Print the estimated per-GPU memory of the warm-up and feature stages for these settings "
                       "(from the model's config.json; no weights are loaded) and exit."),
    )
    gpu_memory_gb: float = field(
        default=80.0, metadata=_help("Card size in GiB the dry run checks against (80: A100/H100 80GB).")
    )
    data: DataConfig = field(default_factory=DataConfig)
    warmup: WarmupConfig = field(default_factory=WarmupConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    select: SelectConfig = field(default_factory=SelectConfig)

    def validate(self) -> None:
        for sub in (self.data, self.warmup, self.features, self.select):
            sub.validate()
        unknown = [s for s in self.stages if s not in STAGES]
        if unknown:
            raise ValueError(f"stages: unknown stage(s) {', '.join(unknown)}; stages are {', '.join(STAGES)}")
        if self.gpu_memory_gb <= 0:
            raise ValueError(f"gpu_memory_gb must be positive, got {self.gpu_memory_gb}")
        if self.dry_run:
            if not self.model:
                raise ValueError("--dry-run estimates the memory of a model: give --model")
            return
        if self.influence is not None:
            if self.val_tasks is None:
                raise ValueError("val_tasks: --influence needs --val-tasks (the task of each validation column)")
            return
        missing = [name for name in ("model", "train", "val", "work_dir") if not getattr(self, name)]
        if missing:
            flags = ", ".join("--" + m.replace("_", "-") for m in missing)
            raise ValueError(f"the pipeline needs {flags} (or give --influence A.npy --val-tasks tasks.json)")


SUBCONFIGS = {"data": DataConfig, "warmup": WarmupConfig, "features": FeatureConfig, "select": SelectConfig}


def config_to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)
