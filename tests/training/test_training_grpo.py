"""GRPO end to end on CPU with a tiny local model: via the plugin registry, with resume, and via the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cf_tasks.jsonl import read_jsonl
from plugins.registry import TRAINERS
from training.config import GRPORunConfig, from_dict, load_run_config

REPO = Path(__file__).resolve().parents[2]


def grpo_config(model_dir, out, **trl):
    return from_dict(GRPORunConfig, {
        "model": str(model_dir), "output_dir": str(out),
        "data": {"families": [{"family": "if_else", "level": "easy"}, {"family": "while", "level": "easy"}],
                 "n": 6, "seed": 3, "chat": True},
        "rewards": {"exact_match": 1.0, "f1": 0.5, "format": 0.1},
        "prompt_batch_size": 1,
        "trl": {"num_generations": 4, "per_device_train_batch_size": 4, "max_completion_length": 8,
                "max_steps": 2, "logging_steps": 1, "save_steps": 2, "learning_rate": 1e-3, "disable_tqdm": True,
                "seed": 0, **trl},
    }, source="test")


def test_grpo_plugin_trains_saves_and_resumes(tiny_lm_dir, tmp_path):
    trainer = TRAINERS.get("grpo")
    assert trainer.name == "grpo" and trainer.config_cls is GRPORunConfig
    out = tmp_path / "run"
    run_dir = trainer.train(grpo_config(tiny_lm_dir, out))
    assert run_dir == out
    assert (out / "final" / "config.json").is_file() and (out / "final" / "tokenizer.json").is_file()
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2"]
    log = read_jsonl(out / "train_log.jsonl")
    steps = [r for r in log if "reward" in r]
    assert len(steps) == 2
    for key in ("rewards/exact_match_reward/mean", "rewards/f1_reward/mean", "rewards/format_reward/mean"):
        assert key in steps[0]
    info = json.loads((out / "run_info.json").read_text())
    assert info["global_step"] == 2 and info["gradient_accumulation_steps"] == 1 and info["prompts"] == 6
    # the copy of the config in the run directory loads back to the same config
    assert load_run_config(GRPORunConfig, out / "run_config.yaml") == grpo_config(tiny_lm_dir, out)

    # resume: one more step continues from checkpoint-2 instead of starting over
    resumed = grpo_config(tiny_lm_dir, out, max_steps=3)
    resumed.resume_from_checkpoint = True
    trainer.train(resumed)
    info = json.loads((out / "run_info.json").read_text())
    assert info["global_step"] == 3
    assert info["resumed_from"].endswith("checkpoint-2")
    steps = [r for r in read_jsonl(out / "train_log.jsonl") if "reward" in r]
    assert [r["step"] for r in steps] == [1, 2, 3]


def test_grpo_cli_subprocess(tiny_lm_dir, tmp_path):
    out = tmp_path / "cli_run"
    cmd = [sys.executable, "-m", "training.cli", "grpo", "--config", str(REPO / "training/configs/grpo_tiny_cpu.yaml"),
           "--set", f"model={tiny_lm_dir}", "--set", f"output_dir={out}", "--set", "data.n=4",
           "--set", "trl.save_steps=10", "--set", "prompt_batch_size=1", "--set", "trl.max_completion_length=8",
           # one command also evaluates before and after training on 2 items of a real executable_cf task
           "--set", "evaluate={enabled: true, tasks: [executable_cf_if_else], limit: 2, max_gen_toks: 4, batch_size: 2}"]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == str(out)
    assert (out / "final" / "config.json").is_file()
    assert len([r for r in read_jsonl(out / "train_log.jsonl") if "reward" in r]) == 2
    table = (out / "eval" / "table.md").read_text()
    assert "| executable_cf_if_else | exact_match |" in table and "| executable_cf_if_else | f1 |" in table
    rows = json.loads((out / "eval" / "table.json").read_text())["rows"]
    assert {r["metric"] for r in rows} == {"exact_match", "f1"}
    assert all(r["before"] is not None and 0.0 <= r["after"] <= 1.0 for r in rows)
    for label in ("before", "after"):
        results = json.loads((out / "eval" / f"{label}.json").read_text())
        assert results["n-samples"]["executable_cf_if_else"]["effective"] == 2
        samples = read_jsonl(out / "eval" / f"samples_{label}.jsonl")
        assert len(samples) == 2 and all("answer" in s["doc"] and s["resps"] for s in samples)


def test_cli_reports_config_errors_without_traceback(tmp_path, capsys):
    from training.cli import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("model: m\noutput_dir: o\ndata: {families: [{family: if_else}]}\ntrl: {max_step: 1}\n")
    assert main(["grpo", "--config", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "bad.yaml: trl.max_step is not a field of trl.GRPOConfig" in err and "Traceback" not in err


def test_unknown_family_fails_before_training(tiny_lm_dir, tmp_path):
    cfg = grpo_config(tiny_lm_dir, tmp_path / "x")
    cfg.data.families[0].family = "if_elss"
    from plugins.registry import UnknownPluginError

    with pytest.raises(UnknownPluginError, match="if_else"):
        TRAINERS.get("grpo").train(cfg)
    assert not (tmp_path / "x" / "final").exists()


@pytest.mark.gpu
@pytest.mark.vllm
def test_grpo_with_vllm_colocated_rollouts(tiny_lm_dir, tmp_path):
    """Two GRPO steps with vLLM generating the rollouts (needs a CUDA GPU and vLLM; skipped elsewhere)."""
    pytest.importorskip("vllm")
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    out = tmp_path / "vllm_run"
    cfg = grpo_config(tiny_lm_dir, out, use_vllm=True, vllm_mode="colocate", vllm_gpu_memory_utilization=0.2,
                      save_strategy="no")
    TRAINERS.get("grpo").train(cfg)
    assert len([r for r in read_jsonl(out / "train_log.jsonl") if "reward" in r]) == 2


@pytest.mark.slow
def test_grpo_two_processes_with_post_training_evaluation(tiny_lm_dir, tmp_path):
    """`accelerate launch --multi_gpu --num_processes 2` on CPU (torchrun + gloo): GRPO trains as one group of two,
    then only the main process evaluates, in a fresh single-process child; nothing hangs, results are written once.
    (Before: rank 0 evaluated in-process after the other ranks had returned; on GPUs lm-eval's HFLM then entered
    collectives no other rank joined.)"""
    import shutil

    launcher = shutil.which("accelerate")
    if launcher is None:
        pytest.skip("accelerate launcher not on PATH")
    out = tmp_path / "two"
    cmd = [launcher, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
           "--dynamo_backend", "no", "-m", "training.cli", "grpo", "--config", "grpo_tiny_cpu.yaml",
           "--set", f"model={tiny_lm_dir}", "--set", f"output_dir={out}", "--set", "data.n=4",
           "--set", "trl.max_completion_length=8", "--set", "trl.save_steps=10",
           "--set", "evaluate={enabled: true, tasks: [executable_cf_if_else], limit: 2, max_gen_toks: 4, batch_size: 2}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=900,
                          env={**os.environ, "PYTHONHASHSEED": "0"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    info = json.loads((out / "run_info.json").read_text())
    assert info["world_size"] == 2 and info["global_step"] == 2
    assert proc.stderr.count("GRPO on 4 prompts") == 2  # both ranks trained
    assert proc.stderr.count("the post-training evaluation in a fresh process") == 1  # once, by the main process
    assert proc.stderr.count("evaluating the trained model") == 1
    assert proc.stdout.count("| executable_cf_if_else | exact_match |") == 1  # the child's table, printed once
    for label in ("before", "after"):
        results = json.loads((out / "eval" / f"{label}.json").read_text())
        assert results["n-samples"]["executable_cf_if_else"]["effective"] == 2
        assert len(read_jsonl(out / "eval" / f"samples_{label}.jsonl")) == 2
