"""GRPO (RLVR) on executable counterfactual prompts with the benchmark's own reward.

The paper's RL arm (Vashishtha, Dai et al., *Executable Counterfactuals*, ICLR 2026): GRPO on if-else counterfactual
problems with outcome-only reward = set exact match, prompt batch 16, 24
rollouts per prompt. Everything else it leaves unknown is a field of our config
(``configs/grpo_paper_qwen2.5_7b.yaml`` names each as our choice).

This module only wires pieces together: prompts from :mod:`training.data`,
rewards from :mod:`training.rewards`, TRL's ``GRPOTrainer`` for the algorithm
(vLLM rollouts via ``trl.use_vllm``, multi-GPU via ``accelerate launch``), and
the run directory layout of :mod:`training.runtime`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from training.config import ConfigError, GRPORunConfig, load_run_config
from training.runtime import TrainerPlugin, device_defaults, world_size

logger = logging.getLogger(__name__)


def grpo_arguments(config: GRPORunConfig, *, processes: int | None = None):
    """The ``trl.GRPOConfig`` of a run: the ``trl:`` section plus what our fields decide."""
    from trl import GRPOConfig

    kwargs = device_defaults(config.trl)
    if "reward_weights" in kwargs:
        raise ConfigError("trl.reward_weights is derived from 'rewards' (name -> weight); set the weights there")
    kwargs["reward_weights"] = [float(w) for w in config.rewards.values()]
    if config.prompt_batch_size is not None:
        if "gradient_accumulation_steps" in kwargs:
            raise ConfigError("set either prompt_batch_size or trl.gradient_accumulation_steps, not both")
        kwargs["gradient_accumulation_steps"] = accumulation_for(
            config.prompt_batch_size, kwargs.get("num_generations", _trl_default(GRPOConfig, "num_generations")),
            kwargs.get("per_device_train_batch_size", _trl_default(GRPOConfig, "per_device_train_batch_size")),
            processes or world_size())
    try:
        return GRPOConfig(output_dir=config.output_dir, **kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"trl.GRPOConfig rejected the trl section: {exc}") from exc


def accumulation_for(prompt_batch: int, num_generations: int, per_device: int, processes: int) -> int:
    """Gradient accumulation that makes one optimizer step see ``prompt_batch`` prompts x ``num_generations``.

    TRL generates ``per_device x processes x steps_per_generation`` completions at once
    (``steps_per_generation`` defaults to the accumulation), i.e. that many / ``num_generations`` prompts.
    """
    completions = prompt_batch * num_generations
    per_micro_step = per_device * processes
    if completions % per_micro_step:
        raise ConfigError(
            f"prompt_batch_size x num_generations = {prompt_batch} x {num_generations} = {completions} completions "
            f"is not a multiple of per_device_train_batch_size x processes = {per_device} x {processes}; "
            "change trl.per_device_train_batch_size")
    return completions // per_micro_step


def _trl_default(cls: type, name: str) -> Any:
    import dataclasses

    return next(f.default for f in dataclasses.fields(cls) if f.name == name)


def reward_functions(config: GRPORunConfig) -> list:
    from training.rewards import resolve_reward

    funcs = []
    for name in config.rewards:
        try:
            funcs.append(resolve_reward(name))
        except (ValueError, ImportError) as exc:
            raise ConfigError(f"rewards.{name}: {exc}") from exc
    return funcs


class GRPOTrainerPlugin(TrainerPlugin):
    """The ``grpo`` trainer plugin (entry point ``executable_cf.trainers: grpo``)."""

    name = "grpo"
    config_cls = GRPORunConfig
    description = "GRPO with the set-exact-match execution reward (TRL GRPOTrainer)"

    def load_config(self, path: str | Path, overrides: list[str] | None = None) -> GRPORunConfig:
        return load_run_config(GRPORunConfig, path, overrides)

    def build_trainer(self, config: GRPORunConfig):
        """The configured ``trl.GRPOTrainer`` (prompts generated, rewards resolved); ``train`` runs it."""
        from trl import GRPOTrainer

        from training.data import prompt_rows, to_dataset

        args = grpo_arguments(config)
        funcs = reward_functions(config)
        rows = prompt_rows(config.data)
        logger.info("GRPO on %d prompts from %s", len(rows),
                    ", ".join(f"{s.family}/{s.level or 'default'}" for s in config.data.families) or "JSONL")
        return GRPOTrainer(
            model=config.model,
            reward_funcs=funcs,
            args=args,
            train_dataset=to_dataset(rows),
            peft_config=config.lora.to_peft() if config.lora else None,
        )

    def run_record(self, trainer) -> dict:
        return {"prompts": len(trainer.train_dataset),
                "gradient_accumulation_steps": trainer.args.gradient_accumulation_steps,
                "num_generations": trainer.args.num_generations}


TRAINER = GRPOTrainerPlugin()
