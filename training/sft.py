"""SFT on prompt-completion data with completion-only loss (TRL ``SFTTrainer``).

The paper's SFT arm distils a stronger model's reasoning traces into the student
(*Executable Counterfactuals*, ICLR 2026). Rows come from GRAPE/BIDS selections (each
with the ``formatted`` record of how it was scored) or from traces kept by
``cf-train collect`` (prompt / completion); see :func:`training.data.sft_examples`.
They are tokenized by the shared joint encoder and given to TRL as
``input_ids`` + ``labels``, so what a selector scored is what is trained. The
loss covers only the completion tokens and the recorded end (EOS / end of
turn) unless ``trl.completion_only_loss`` is false.

Rows that truncation to ``trl.max_length`` leaves without a trained token are
counted and dropped; above ``data.max_dropped_fraction`` the run fails before
the model is loaded. Rows whose completion is cut are counted and warned about.
"""

from __future__ import annotations

import logging
from pathlib import Path

from training.config import ConfigError, SFTRunConfig, load_run_config
from training.data import SFTTokenStats
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
        """The configured ``trl.SFTTrainer`` (rows tokenized and checked); ``train`` runs it."""
        from transformers import AutoTokenizer
        from trl import SFTTrainer

        from training.data import sft_examples, to_dataset, tokenize_sft

        args = sft_arguments(config)
        tokenizer = AutoTokenizer.from_pretrained(config.model)
        examples = sft_examples(config.data, tokenizer)
        rows, stats = tokenize_sft(examples, tokenizer, max_length=None if args.packing else args.max_length,
                                   truncation_mode=args.truncation_mode,
                                   completion_only_loss=args.completion_only_loss is not False)
        check_truncation(stats, config.data.max_dropped_fraction)
        trainer = SFTTrainer(
            model=config.model,
            args=args,
            train_dataset=to_dataset(rows),
            processing_class=tokenizer,
            peft_config=config.lora.to_peft() if config.lora else None,
        )
        kept = len(trainer.train_dataset)
        if not args.packing and kept != stats.kept:  # TRL dropped rows of its own: count them as dropped too
            stats.dropped = stats.rows - kept
            check_truncation(stats, config.data.max_dropped_fraction)
        logger.info("SFT on %d of %d rows from %s (TRL kept %d; %d dropped by truncation to max_length=%s, %d with a "
                    "cut completion; %d trained exactly as a selector formatted them)", kept, stats.rows,
                    ", ".join(config.data.files), kept, stats.dropped, stats.max_length, stats.completion_cut,
                    stats.formatted_rows)
        trainer.cf_token_stats = stats  # read by run_record
        return trainer

    def run_record(self, trainer) -> dict:
        stats = getattr(trainer, "cf_token_stats", None)
        return {"rows": len(trainer.train_dataset), **({"tokens": stats.to_json()} if stats is not None else {})}


def check_truncation(stats: SFTTokenStats, max_dropped_fraction: float) -> None:
    """Fail when truncation empties too many rows; warn about rows whose completion is cut."""
    rule = f"trl.max_length={stats.max_length} with truncation_mode {stats.truncation_mode}"
    if stats.rows and stats.dropped / stats.rows > max_dropped_fraction:
        raise ConfigError(
            f"{rule} leaves {stats.dropped} of {stats.rows} rows ({100 * stats.dropped / stats.rows:.1f}%) with no "
            f"trained token (first: {stats.first_dropped}); TRL would drop them. The longest row has {stats.longest} "
            f"tokens: raise trl.max_length, or raise data.max_dropped_fraction (now {max_dropped_fraction}) to "
            "accept the loss")
    if stats.dropped:
        logger.warning("%s drops %d of %d rows with no trained token left (first: %s)", rule, stats.dropped,
                       stats.rows, stats.first_dropped)
    if stats.completion_cut:
        logger.warning("%s cuts the completion of %d of %d rows (first: %s): %s; the longest row has %d tokens",
                       rule, stats.completion_cut, stats.rows, stats.first_cut,
                       "their ends, with the final answers, are not trained" if stats.truncation_mode == "keep_start"
                       else "their prompts are cut", stats.longest)


TRAINER = SFTTrainerPlugin()
