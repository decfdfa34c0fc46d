"""SFT on prompt-completion data with completion-only loss (TRL ``SFTTrainer``).

The paper's SFT arm distils a stronger model's reasoning traces into the student
(counterfactuals.md §4). Rows come from GRAPE/BIDS selections (instruction /
response) or from traces kept by ``cf-train collect`` (prompt / completion); see
:func:`training.data.sft_rows`. The loss covers only the completion tokens:
TRL's ``completion_only_loss`` (on by default for prompt-completion data, set
explicitly here so a config cannot lose it by accident).
"""

from __future__ import annotations

import logging
from pathlib import Path

from training.config import ConfigError, SFTRunConfig, load_run_config
from training.runtime import TrainerPlugin, device_defaults

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


class SFTTrainerPlugin(TrainerPlugin):
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

    def run_record(self, trainer) -> dict:
        return {"rows": len(trainer.train_dataset)}


TRAINER = SFTTrainerPlugin()
