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
      .cf-train.lock       held by the run's main process while it runs (one writer per folder)

The evaluation runs in a fresh single-process child (``training.launch``), so
it is correct under any launcher; a LoRA run's merged ``final/`` is built, in
another such child, from the saved adapter and a freshly loaded base model,
never from the (possibly ZeRO-3-partitioned) training model.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import platform
from pathlib import Path
from typing import Any

import yaml

from cf_tasks.jsonl import atomic_write, write_json, write_jsonl

from training.config import LoraSpec, to_plain
from training.launch import (check_process_group, claim_output_dir, launcher_notes, run_evaluation_child,
                             run_merge_child)
from training.serialize import jsonable

logger = logging.getLogger(__name__)


def device_defaults(trl_kwargs: dict[str, Any]) -> dict[str, Any]:
    """Fill in settings TRL's defaults get wrong on a CPU-only machine.

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


def save_final(trainer: Any, output_dir: Path, lora: LoraSpec | None, base_model: str) -> Path:
    """Save the trained model where evaluation and inference expect a plain checkpoint: ``final/``.

    ``trainer.save_model`` is collective (every rank calls it; under ZeRO-3 it
    gathers the partitioned weights). A LoRA adapter is saved alone to
    ``final-adapter/``; with ``merge_on_save`` the main process then merges it
    into a freshly loaded ``base_model`` in a single-process child (CPU), so
    the merge never sees partitioned weights, never enters the training
    group's collectives, and the training model is left untouched.
    """
    final = output_dir / "final"
    tokenizer = trainer.processing_class
    if lora is None:
        trainer.save_model(str(final))
        if trainer.accelerator.is_main_process and tokenizer is not None:
            tokenizer.save_pretrained(str(final))
        return final
    adapter = output_dir / "final-adapter"
    trainer.save_model(str(adapter))
    trainer.accelerator.wait_for_everyone()
    if not lora.merge_on_save:
        return adapter
    if trainer.accelerator.is_main_process:
        run_merge_child(base_model, adapter, final)
        if tokenizer is not None:
            tokenizer.save_pretrained(str(final))
    return final


def merge_adapter(base_model: str, adapter: Path, out: Path) -> None:
    """``base_model`` + the LoRA ``adapter``, merged, saved as a plain checkpoint in the base's dtype.

    Run it in a process of its own (``cf-train merge-lora``): inside a ZeRO-3 training process,
    ``from_pretrained`` would partition the base model with collectives.
    """
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(base_model, dtype="auto", device_map=None)
    merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    merged.save_pretrained(str(out))


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
        launcher_notes()
        resume = resolve_resume(config.resume_from_checkpoint, output_dir)
        started = time.monotonic()
        trainer = self.build_trainer(config)
        accelerator = trainer.accelerator
        check_process_group(accelerator.num_processes, output_dir)
        main_process = accelerator.is_main_process
        lock = claim_output_dir(output_dir) if main_process else None
        try:
            if main_process:
                write_config_copy(config, output_dir)
            trainer.train(resume_from_checkpoint=resume)
            final = save_final(trainer, output_dir, config.lora, config.model)
            write_run_record(trainer, output_dir, {
                "trainer": self.name, "final_model": str(final), "resumed_from": resume,
                "train_seconds": round(time.monotonic() - started, 3), **self.run_record(trainer),
            })
            accelerator.wait_for_everyone()  # every rank has saved before anyone evaluates or exits
            del trainer  # free the policy (and a colocated vLLM engine) before the evaluation loads the checkpoint
            gc.collect()
            _empty_device_cache()
            if config.evaluate.enabled and main_process:
                run_evaluation_child(output_dir)
        finally:
            if lock is not None:
                lock.close()
        return output_dir


def _empty_device_cache() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
