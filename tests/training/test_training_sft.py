"""SFT end to end on CPU with a tiny local model: completion-only loss, LoRA, plugin and CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from cf_tasks.jsonl import read_jsonl, write_jsonl
from plugins.registry import TRAINERS
from training.config import SFTRunConfig, from_dict

REPO = Path(__file__).resolve().parents[2]


def traces(path: Path) -> Path:
    rows = [{"prompt": f"What could f({i}) return?", "completion": f"Reasoning... so \\boxed{{{i}, {i + 2}}}",
             "answer": [i, i + 2]} for i in range(6)]
    write_jsonl(path, rows)
    return path


def sft_config(model_dir, out, data_file, **extra):
    return from_dict(SFTRunConfig, {
        "model": str(model_dir), "output_dir": str(out),
        "data": {"files": [str(data_file)], "chat": True},
        "trl": {"max_length": 128, "per_device_train_batch_size": 2, "max_steps": 2, "logging_steps": 1,
                "save_steps": 2, "learning_rate": 1e-3, "disable_tqdm": True, "seed": 0},
        **extra,
    }, source="test")


def test_sft_loss_is_on_the_completion_only(tiny_lm_dir, tmp_path):
    cfg = sft_config(tiny_lm_dir, tmp_path / "run", traces(tmp_path / "t.jsonl"))
    trainer = TRAINERS.get("sft").build_trainer(cfg)
    assert trainer.args.completion_only_loss is True
    example = trainer.train_dataset[0]
    batch = trainer.data_collator([example])
    ids = batch["input_ids"][0].tolist()
    labels = batch["labels"][0].tolist()
    n_prompt = labels.index(next(x for x in labels if x != -100))
    assert 0 < n_prompt < len(labels)
    assert all(x == -100 for x in labels[:n_prompt])          # the prompt is a masked prefix
    assert labels[n_prompt:] == ids[n_prompt:]                  # every completion token is trained on
    decode = trainer.processing_class.decode
    assert "What could f(" in decode(ids[:n_prompt]) and "\\boxed{" not in decode(ids[:n_prompt])
    assert "\\boxed{" in decode(ids[n_prompt:]) and "What could" not in decode(ids[n_prompt:])


def test_sft_plugin_with_lora_saves_adapter_and_merged_model(tiny_lm_dir, tmp_path):
    out = tmp_path / "lora_run"
    cfg = sft_config(tiny_lm_dir, out, traces(tmp_path / "t.jsonl"),
                     lora={"r": 4, "alpha": 8, "target_modules": ["c_attn", "c_proj"]})
    assert TRAINERS.get("sft").train(cfg) == out
    assert (out / "final-adapter" / "adapter_config.json").is_file()
    assert (out / "final" / "config.json").is_file()
    assert not (out / "final" / "adapter_config.json").exists()  # merged: a plain model lm-eval can load
    from transformers import AutoModelForCausalLM

    merged = AutoModelForCausalLM.from_pretrained(out / "final")
    base = AutoModelForCausalLM.from_pretrained(tiny_lm_dir)
    name = "transformer.h.0.attn.c_attn.weight"
    assert not merged.state_dict()[name].equal(base.state_dict()[name])  # the adapter was merged in
    losses = [r["loss"] for r in read_jsonl(out / "train_log.jsonl") if "loss" in r]
    assert len(losses) == 2 and all(x > 0 for x in losses)


def test_sft_cli_subprocess(tiny_lm_dir, tmp_path):
    out = tmp_path / "cli_run"
    data = traces(tmp_path / "t.jsonl")
    cmd = [sys.executable, "-m", "training.cli", "sft", "--config", str(REPO / "training/configs/sft_tiny_cpu.yaml"),
           "--set", f"model={tiny_lm_dir}", "--set", f"output_dir={out}", "--set", f"data.files=[{data}]",
           "--set", "trl.max_steps=2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=dict(os.environ), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == str(out)
    assert (out / "final" / "model.safetensors").is_file()
    info = json.loads((out / "run_info.json").read_text())
    assert info["trainer"] == "sft" and info["global_step"] == 2 and info["rows"] == 6
