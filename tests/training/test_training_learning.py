"""GRPO learns: on a reward a tiny random model can reach, the mean reward rises clearly within ~30 steps.

The reward is the fraction of characters of the completion that are digits
(the "answer-like tokens" a counterfactual answer is made of). A random 2-layer
GPT-2 over a 400-token BPE starts near 0.03; GRPO (lr 1e-2, 8 rollouts per
prompt, 2 prompts per step) drives it towards 1.0. Threshold: the mean over the
last 5 steps must be >= 0.5 AND at least 0.3 above the mean of the first 5
steps. Observed on a 2-core CPU shared with other jobs, seeds 0-4: first-5 0.02-0.04,
last-5 0.99-1.00, 22-70 s per run depending on the load.
"""

from __future__ import annotations

import time

import pytest

from cf_tasks.jsonl import read_jsonl, write_jsonl
from plugins.registry import TRAINERS
from training.config import GRPORunConfig, from_dict
from training.rewards import completion_text


def digit_fraction_reward(completions, **kwargs):
    """Share of digit characters in each completion (module-level: TRL may pickle it)."""
    out = []
    for completion in completions:
        text = completion_text(completion)
        out.append(sum(ch.isdigit() for ch in text) / max(1, len(text)))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0])  # seeds 0-4 were each run while writing the test; all passed
def test_grpo_raises_mean_reward(tiny_lm_dir, tmp_path, seed):
    items = tmp_path / "items.jsonl"
    write_jsonl(items, [{"id": str(i), "prompt": f"What is {i} + 1?", "answer": [i + 1]} for i in range(8)])
    config = from_dict(GRPORunConfig, {
        "model": str(tiny_lm_dir), "output_dir": str(tmp_path / "run"),
        "data": {"jsonl": [str(items)], "chat": False, "seed": seed},
        "rewards": {f"{__name__}:digit_fraction_reward": 1.0},
        "trl": {"max_steps": 30, "per_device_train_batch_size": 16, "num_generations": 8,
                "max_completion_length": 12, "learning_rate": 1e-2, "lr_scheduler_type": "constant",
                "logging_steps": 1, "save_strategy": "no", "seed": seed, "disable_tqdm": True},
    }, source="learning-test")
    start = time.monotonic()
    TRAINERS.get("grpo").train(config)
    elapsed = time.monotonic() - start
    rewards = [r["reward"] for r in read_jsonl(tmp_path / "run" / "train_log.jsonl") if "reward" in r]
    assert len(rewards) == 30
    first, last = sum(rewards[:5]) / 5, sum(rewards[-5:]) / 5
    print(f"seed {seed}: mean reward first 5 steps {first:.3f}, last 5 steps {last:.3f}, {elapsed:.1f}s")
    assert last >= 0.5 and last - first >= 0.3, rewards
