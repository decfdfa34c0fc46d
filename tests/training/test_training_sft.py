"""SFT end to end on CPU with a tiny local model: completion-only loss, LoRA, plugin and CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cf_tasks.answers import format_answer
from cf_tasks.jsonl import read_jsonl, write_jsonl
from plugins.registry import TRAINERS
from training.config import ConfigError, FamilySpec, SFTRunConfig, from_dict, load_run_config
from training.data import generate_family_items

REPO = Path(__file__).resolve().parents[2]


def traces(path: Path) -> Path:
    rows = [{"prompt": f"What could f({i}) return?", "completion": f"Reasoning... so \\boxed{{{i}, {i + 2}}}",
             "answer": [i, i + 2]} for i in range(6)]
    write_jsonl(path, rows)
    return path


def family_traces(path: Path, n: int = 6, level: str = "easy") -> Path:
    """Traces as `cf-train collect` writes them: real family prompts, a short reasoning, the boxed gold set."""
    items = generate_family_items(FamilySpec("if_else", level=level), n, seed=5)
    write_jsonl(path, [{"prompt": it["prompt"], "completion": f"Reasoning... so {format_answer(it['answer'])}",
                        "answer": it["answer"]} for it in items])
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
    # final/ is built from the saved adapter and a fresh base model (so ZeRO-3-partitioned training weights never
    # reach the merge): it equals that merge done independently, tensor for tensor
    from peft import PeftModel

    expected = PeftModel.from_pretrained(base, out / "final-adapter").merge_and_unload().state_dict()
    got = merged.state_dict()
    assert sorted(got) == sorted(expected) and all(got[k].equal(expected[k]) for k in got)
    losses = [r["loss"] for r in read_jsonl(out / "train_log.jsonl") if "loss" in r]
    assert len(losses) == 2 and all(x > 0 for x in losses)


def test_sft_cli_subprocess_with_the_shipped_tiny_config_trains_every_row(tiny_lm_dir, tmp_path):
    """Before: sft_tiny_cpu.yaml's max_length 256 was shorter than real prompts and TRL silently kept 2 of 200 rows."""
    out = tmp_path / "cli_run"
    data = family_traces(tmp_path / "t.jsonl")
    cmd = [sys.executable, "-m", "training.cli", "sft", "--config", str(REPO / "training/configs/sft_tiny_cpu.yaml"),
           "--set", f"model={tiny_lm_dir}", "--set", f"output_dir={out}", "--set", f"data.files=[{data}]",
           "--set", "trl.max_steps=2"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, env=dict(os.environ), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().splitlines()[-1] == str(out)
    assert "SFT on 6 of 6 rows" in proc.stderr and "TRL kept 6" in proc.stderr
    assert (out / "final" / "model.safetensors").is_file()
    info = json.loads((out / "run_info.json").read_text())
    assert info["trainer"] == "sft" and info["global_step"] == 2 and info["rows"] == 6
    assert info["tokens"]["dropped"] == 0 and info["tokens"]["completion_cut"] == 0


def test_truncation_that_empties_rows_fails_with_a_clear_error(tiny_lm_dir, tmp_path):
    data = tmp_path / "mixed.jsonl"
    write_jsonl(data, [{"prompt": ("long prompt " * 20) if i % 2 else "p", "completion": "\\boxed{1}"}
                       for i in range(6)])
    cfg = sft_config(tiny_lm_dir, tmp_path / "run", data, data={"files": [str(data)], "chat": False})
    cfg.trl["max_length"] = 24
    with pytest.raises(ConfigError, match=r"trl.max_length=24 with truncation_mode keep_start leaves 3 of 6 rows "
                                          r"\(50.0%\) with no trained token \(first: .*mixed.jsonl:\d\).*longest row"):
        TRAINERS.get("sft").build_trainer(cfg)
    assert not (tmp_path / "run").exists()
    cfg.data.max_dropped_fraction = 0.6  # accepted: counted, logged, and what TRL keeps is checked
    trainer = TRAINERS.get("sft").build_trainer(cfg)
    assert len(trainer.train_dataset) == 3 and trainer.cf_token_stats.dropped == 3


def test_paper_sft_max_length_keeps_the_final_boxed_answer_of_generated_traces():
    """Measured on the paper recipe's training items (if_else, the task's level, --metadata seed 7) with a
    one-token-per-byte tokenizer (an upper bound on any byte-level BPE, Qwen's included) and traces as long as the
    teacher may write (max_gen_toks 8192 in the recipe), ending in the gold \\boxed{} set."""
    from helpers.tiny_lm import build_byte_tokenizer
    from training.data import SFTExample, tokenize_sft
    from selection.tokenization import chat_example

    paper = load_run_config(SFTRunConfig, REPO / "training/configs/sft_paper_qwen2.5_7b.yaml")
    max_length, mode = paper.trl["max_length"], paper.trl.get("truncation_mode", "keep_start")
    tok = build_byte_tokenizer()
    items = generate_family_items(FamilySpec("if_else", level="medium"), 300, seed=7)
    examples = []
    for i, item in enumerate(items):
        boxed = format_answer(item["answer"])
        trace = "x" * (8192 - len(boxed.encode())) + boxed  # exactly 8192 tokens of this tokenizer
        examples.append(SFTExample(f"item:{i}", chat_example(tok, [{"role": "user", "content": item["prompt"]}], trace)))
    rows, stats = tokenize_sft(examples, tok, max_length=max_length, truncation_mode=mode)
    assert stats.dropped == 0 and stats.completion_cut == 0, stats
    assert stats.longest <= max_length
    for row, item in zip(rows, items):
        trained = tok.decode([t for t in row["labels"] if t != -100])
        assert trained.endswith(format_answer(item["answer"]) + "<|im_end|>\n")


@pytest.mark.slow
def test_lora_under_deepspeed_zero3_two_processes_saves_and_merges(tiny_lm_dir, tmp_path):
    """LoRA + DeepSpeed ZeRO-3, 2 processes on CPU (DeepSpeed's CPU accelerator, gloo). Before: final/ was merged
    from the training model on rank 0, whose weights ZeRO-3 partitions across ranks; merging in the training process
    also deadlocks (from_pretrained partitions the base model with collectives only rank 0 enters)."""
    import shutil

    pytest.importorskip("deepspeed")
    launcher = shutil.which("accelerate")
    if launcher is None:
        pytest.skip("accelerate launcher not on PATH")
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    out = tmp_path / "zero3"
    data = traces(tmp_path / "t.jsonl")
    # persistence threshold 0: every weight is partitioned, as a 7B model's are (the default keeps the tiny
    # model's small tensors whole on every rank, which hides the defect). Before, final/ held (0,)-shaped tensors.
    ds_config = tmp_path / "zero3.json"
    ds_config.write_text(json.dumps({
        "zero_optimization": {"stage": 3, "stage3_param_persistence_threshold": 0,
                              "stage3_gather_16bit_weights_on_model_save": True},
        "train_micro_batch_size_per_gpu": "auto", "gradient_accumulation_steps": "auto",
        "gradient_clipping": "auto", "zero_allow_untested_optimizer": True}))
    cmd = [launcher, "launch", "--use_deepspeed", "--deepspeed_config_file", str(ds_config),
           "--zero3_init_flag", "false", "--num_processes", "2", "--num_machines", "1", "--mixed_precision", "no",
           "--dynamo_backend", "no", "-m", "training.cli", "sft", "--config", "sft_tiny_cpu.yaml",
           "--set", f"model={tiny_lm_dir}", "--set", f"output_dir={out}", "--set", f"data.files=[{data}]",
           "--set", "trl.max_steps=2", "--set", "lora={r: 4, alpha: 8, target_modules: [c_attn, c_proj]}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=900,
                          env={**os.environ, "DS_ACCELERATOR": "cpu"})
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert json.loads((out / "run_info.json").read_text())["world_size"] == 2
    adapter = load_file(out / "final-adapter" / "adapter_model.safetensors")
    assert adapter["base_model.model.transformer.h.0.attn.c_attn.lora_B.weight"].shape == (192, 4)  # gathered
    assert max(float(v.abs().max()) for k, v in adapter.items() if "lora_B" in k) > 0  # trained
    base = AutoModelForCausalLM.from_pretrained(tiny_lm_dir)
    expected = PeftModel.from_pretrained(base, out / "final-adapter").merge_and_unload().state_dict()
    got = AutoModelForCausalLM.from_pretrained(out / "final").state_dict()
    assert sorted(got) == sorted(expected) and all(got[k].equal(expected[k]) for k in got)
