"""SFT on prompt-completion data with completion-only loss (TRL ``SFTTrainer``).

The paper's SFT arm distils a stronger model's reasoning traces into the student
(counterfactuals.md §4). Rows come from GRAPE/BIDS selections (instruction /
response) or from traces kept by ``cf-train collect`` (prompt / completion); see
:func:`training.data.sft_rows`. The loss covers only the completion tokens:
TRL's ``completion_only_loss`` (on by default for prompt-completion data, set
explicitly here so a config cannot lose it by accident).
"""

from __future__ import annotations

import gc
import logging
import time
from pathlib import Path

from training.config import ConfigError, SFTRunConfig, load_run_config
from training.runtime import device_defaults, resolve_resume, save_final, write_config_copy, write_run_record

logger = logging.getLogger(__name__)


def sft_arguments(config: SFTRunConfig):
    """The ``trl.SFTConfig`` of a run."""
    from trl import SFTConfig

    kwargs = device_defaults(config.trl)
    kwargs.setdefault("completion_only_loss", True)
    try:
        return SFTConfig(output_dir=config.output_dir, **kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"trl.SFTConfig rejected the trl section: {exc}") from exc


class SFTTrainerPlugin:
    """The ``sft`` trainer plugin (entry point ``executable_cf.trainers: sft``)."""

    name = "sft"
    config_cls = SFTRunConfig
    description = "Supervised fine-tuning on selected or collected prompt-completion rows (TRL SFTTrainer)"

    def load_config(self, path: str | Path, overrides: list[str] | None = None) -> SFTRunConfig:
        return load_run_config(SFTRunConfig, path, overrides)

    def build_trainer(self, config: SFTRunConfig):
        """The configured ``trl.SFTTrainer`` (rows loaded); ``train`` runs it."""
        from trl import SFTTrainer

        from training.data import sft_rows, to_dataset

        args = sft_arguments(config)
        rows = sft_rows(config.data)
        logger.info("SFT on %d prompt-completion rows from %s", len(rows), ", ".join(config.data.files))
        return SFTTrainer(
            model=config.model,
            args=args,
            train_dataset=to_dataset(rows),
            peft_config=config.lora.to_peft() if config.lora else None,
        )

    def train(self, config: SFTRunConfig) -> Path:
        """Train, save ``final/``, write the run record; evaluate when ``evaluate.enabled``. Returns the run dir."""
        output_dir = Path(config.output_dir)
        resume = resolve_resume(config.resume_from_checkpoint, output_dir)
        started = time.monotonic()
        trainer = self.build_trainer(config)
        write_config_copy(config, output_dir)
        trainer.train(resume_from_checkpoint=resume)
        final = save_final(trainer, output_dir, config.lora)
        write_run_record(trainer, output_dir, {
            "trainer": self.name, "rows": len(trainer.train_dataset), "final_model": str(final),
            "resumed_from": resume, "train_seconds": round(time.monotonic() - started, 3),
        })
        main_process = trainer.accelerator.is_main_process
        del trainer
        gc.collect()
        if config.evaluate.enabled and main_process:
            from training.evaluate import evaluate_before_after

            evaluate_before_after(config.model, final, config.evaluate, output_dir / "eval")
        return output_dir


TRAINER = SFTTrainerPlugin()
