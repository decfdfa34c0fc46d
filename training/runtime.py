"""What every trainer does around TRL: device defaults, resuming, the final save, the run record.

Kept apart from the GRPO and SFT modules so both arms write the same run
directory layout::

    OUTPUT_DIR/
      run_config.yaml      the resolved config of the run (what to rerun)
      checkpoint-N/        TRL/transformers checkpoints (resume from these)
      final/               the trained model + tokenizer (LoRA merged when asked)
      final-adapter/       the LoRA adapter alone (LoRA runs)
      train_log.jsonl      trainer.state.log_history, one record per logging step
      run_info.json        versions, device, derived batch sizes, wall time
      eval/                before/after lm-eval results and table (when evaluate.enabled)
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import platform
from pathlib import Path
from typing import Any

import yaml

from cf_tasks.jsonl import atomic_write, write_json, write_jsonl

from training.config import LoraSpec, to_plain

logger = logging.getLogger(__name__)


def device_defaults(trl_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Fill in settings TRL's defaults get wrong on a CPU-only machine (harness.md §6 "CPU").

    TRL defaults to ``bf16=True`` and ``gradient_checkpointing=True``; without an
    accelerator ``TrainingArguments`` then refuses to start. Values set in the
    config always win; ``report_to`` defaults to ``"none"`` everywhere so a run
    never reaches for a tracking service it was not asked to use.
    """
    import torch

    out = dict(trl_kwargs)
    out.setdefault("report_to", "none")
    has_accelerator = torch.cuda.is_available() or (hasattr(torch, "xpu") and torch.xpu.is_available())
    if not has_accelerator:
        out.setdefault("use_cpu", True)
        out.setdefault("bf16", False)
        if "gradient_checkpointing" not in out and "activation_checkpointing" not in out:
            # transformers 5 renamed the field; setting the new name avoids its deprecation warning
            out[_checkpointing_field()] = False
    return out


def _checkpointing_field() -> str:
    from transformers import TrainingArguments

    names = {f.name for f in dataclasses.fields(TrainingArguments)}
    return "activation_checkpointing" if "activation_checkpointing" in names else "gradient_checkpointing"


def world_size() -> int:
    """Processes in this (accelerate/torchrun) launch; 1 for a plain ``python`` run."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def resolve_resume(setting: bool | str | None, output_dir: Path) -> str | None:
    """``true`` -> the last checkpoint in ``output_dir`` (None when there is none yet); a path -> itself."""
    if setting is None or setting is False:
        return None
    if isinstance(setting, str):
        if not Path(setting).is_dir():
            raise FileNotFoundError(f"resume_from_checkpoint: no checkpoint directory {setting}")
        return setting
    from transformers.trainer_utils import get_last_checkpoint

    last = get_last_checkpoint(str(output_dir)) if output_dir.is_dir() else None
    if last is None:
        logger.info("resume_from_checkpoint: no checkpoint in %s yet; starting from the beginning", output_dir)
    else:
        logger.info("resuming from %s", last)
    return last


def write_config_copy(config: Any, output_dir: Path) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    with atomic_write(output_dir / "run_config.yaml") as handle:
        yaml.safe_dump(to_plain(config), handle, sort_keys=False, allow_unicode=True)


def save_final(trainer: Any, output_dir: Path, lora: LoraSpec | None) -> Path:
    """Save the trained model where evaluation and inference expect a plain checkpoint: ``final/``."""
    final = output_dir / "final"
    tokenizer = trainer.processing_class
    model = trainer.model
    if lora is not None:
        trainer.save_model(str(output_dir / "final-adapter"))
        if lora.merge_on_save:
            model = trainer.accelerator.unwrap_model(model).merge_and_unload()
            if trainer.accelerator.is_main_process:
                model.save_pretrained(str(final))
                tokenizer.save_pretrained(str(final))
            return final
        return output_dir / "final-adapter"
    trainer.save_model(str(final))
    if trainer.accelerator.is_main_process and tokenizer is not None:
        tokenizer.save_pretrained(str(final))
    return final


def write_run_record(trainer: Any, output_dir: Path, extra: dict[str, Any]) -> None:
    """The training log and run facts (main process only)."""
    if not trainer.accelerator.is_main_process:
        return
    write_jsonl(output_dir / "train_log.jsonl", [jsonable(r) for r in trainer.state.log_history])
    import torch
    import transformers
    import trl

    info = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "trl": trl.__version__,
        "device": str(trainer.args.device),
        "world_size": trainer.args.world_size,
        "global_step": trainer.state.global_step,
        **extra,
    }
    write_json(output_dir / "run_info.json", jsonable(info))


def jsonable(obj: Any) -> Any:
    """Plain JSON data from logs and lm-eval results (numpy scalars, NaN/inf -> null, other objects -> str)."""
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "shape", None) == ():
        obj = obj.item()  # numpy / torch scalars
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (set, frozenset)):
        return [jsonable(v) for v in sorted(obj, key=repr)]
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):  # NaN (a reward not applicable) -> null
        return None
    if dataclasses.is_dataclass(obj):
        return jsonable(dataclasses.asdict(obj))
    if isinstance(obj, (str, int, float, bool)) or obj is None:
        return obj
    return str(obj)


class TrainerPlugin:
    """The run lifecycle shared by the trainer plugins; subclasses build the TRL trainer.

    ``train`` resolves resume, trains, saves ``final/``, writes the run record
    (``run_record`` adds the trainer's own fields) and, when
    ``evaluate.enabled``, runs the before/after lm-eval evaluation.
    """

    name: str

    def build_trainer(self, config: Any):
        raise NotImplementedError

    def run_record(self, trainer: Any) -> dict[str, Any]:
        return {}

    def train(self, config: Any) -> Path:
        """Train, save ``final/``, write the run record; evaluate when ``evaluate.enabled``. Returns the run dir."""
        import gc
        import time

        output_dir = Path(config.output_dir)
        resume = resolve_resume(config.resume_from_checkpoint, output_dir)
        started = time.monotonic()
        trainer = self.build_trainer(config)
        write_config_copy(config, output_dir)
        trainer.train(resume_from_checkpoint=resume)
        final = save_final(trainer, output_dir, config.lora)
        write_run_record(trainer, output_dir, {
            "trainer": self.name, "final_model": str(final), "resumed_from": resume,
            "train_seconds": round(time.monotonic() - started, 3), **self.run_record(trainer),
        })
        main_process = trainer.accelerator.is_main_process
        del trainer  # free the policy (and a colocated vLLM engine) before evaluation loads the checkpoint
        gc.collect()
        if config.evaluate.enabled and main_process:
            from training.evaluate import evaluate_before_after

            evaluate_before_after(config.model, final, config.evaluate, output_dir / "eval")
        return output_dir
