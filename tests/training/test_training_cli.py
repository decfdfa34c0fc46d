"""``cf-train`` for a newcomer: shipped configs by name, config sections in --help, clear errors early."""

from __future__ import annotations

import json

import pytest

from cf_tasks.answers import format_answer
from cf_tasks.jsonl import read_jsonl, write_jsonl
from cf_tasks.lmeval.docs import encode_doc
from training.cli import build_parser, configs_dir, main, resolve_config_path


def test_configs_lists_copies_and_resolves_shipped_configs(tmp_path, capsys):
    assert main(["configs"]) == 0
    assert capsys.readouterr().out == f"{configs_dir()}\n"  # usable as $(cf-train configs)/accelerate/...
    assert main(["configs", "--list"]) == 0
    names = capsys.readouterr().out.splitlines()
    assert "grpo_paper_qwen2.5_7b.yaml" in names and "accelerate/deepspeed_zero3.yaml" in names
    assert main(["configs", "--copy", str(tmp_path / "mine")]) == 0
    assert (tmp_path / "mine" / "sft_tiny_cpu.yaml").read_bytes() == (configs_dir() / "sft_tiny_cpu.yaml").read_bytes()
    assert (tmp_path / "mine" / "accelerate" / "multi_gpu.yaml").is_file()
    assert main(["configs", "--copy", str(tmp_path / "mine")]) == 2  # never overwrites silently
    assert "would overwrite" in capsys.readouterr().err
    assert resolve_config_path("grpo_tiny_cpu") == configs_dir() / "grpo_tiny_cpu.yaml"
    with pytest.raises(FileNotFoundError, match="config not found: nope.yaml .*shipped config: accelerate/"):
        resolve_config_path("nope.yaml")


def test_configs_are_package_data():
    import configparser
    from pathlib import Path

    cfg = configparser.ConfigParser()
    cfg.read(Path(__file__).resolve().parents[2] / "setup.cfg")
    patterns = cfg["options.package_data"]["training"]
    assert "configs/*.yaml" in patterns and "configs/**/*.yaml" in patterns


def test_trainer_help_lists_the_config_sections(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["grpo", "--help"])
    out = capsys.readouterr().out
    assert "config sections" in out
    for section in ("model", "output_dir", "data", "rewards", "lora", "prompt_batch_size", "evaluate", "trl"):
        assert f"\n  {section} " in out
    assert "Fields: families, n, jsonl" in out


def test_a_missing_local_model_path_is_named_before_any_work(tmp_path, capsys):
    missing = tmp_path / "no_model"
    assert main(["grpo", "--config", "grpo_tiny_cpu.yaml", "--set", f"model={missing}", "--dry-run"]) == 2
    assert f"model path not found: {missing}" in capsys.readouterr().err
    (tmp_path / "runs").mkdir()  # 'runs/tiny-lm' with a runs/ folder here is a local path, not a hub id
    import os

    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        assert main(["sft", "--config", "sft_tiny_cpu.yaml", "--dry-run"]) == 2
    finally:
        os.chdir(cwd)
    assert "model path not found: ./runs/tiny-lm" in capsys.readouterr().err
    assert main(["evaluate", "--model", str(missing), "--out", str(tmp_path / "e")]) == 2
    assert f"model path not found: {missing}" in capsys.readouterr().err


def _samples(path, items, answer_as_text):
    records = []
    for i, item in enumerate(items):
        doc = encode_doc(item)
        if not answer_as_text:
            doc = {k: v for k, v in doc.items() if k != "json_fields"}
            doc["answer"] = item["answer"]
        records.append({"doc_id": i, "doc": doc, "resps": [[f"so {format_answer(item['answer'])}"]]})
    write_jsonl(path, records)


@pytest.mark.parametrize("answer_as_text", [True, False], ids=["json-text", "list"])
def test_collect_reads_both_answer_formats_and_writes_lists(tmp_path, capsys, answer_as_text):
    from training.config import FamilySpec
    from training.data import generate_family_items

    items = generate_family_items(FamilySpec("if_else", level="easy"), 2, seed=3)
    _samples(tmp_path / "samples_a.jsonl", items, answer_as_text)
    assert main(["collect", "--samples", str(tmp_path / "samples_*.jsonl"), "--out", str(tmp_path / "t.jsonl")]) == 0
    rows = read_jsonl(tmp_path / "t.jsonl")
    assert [r["answer"] for r in rows] == [it["answer"] for it in items]
    # an item file whose answers are JSON text (as in an lm-eval doc) is read the same way
    write_jsonl(tmp_path / "items.jsonl", [{**it, "answer": json.dumps(it["answer"])} for it in items])
    from training.collect import item_file

    assert [it["answer"] for it in item_file(tmp_path / "items.jsonl")] == [it["answer"] for it in items]


def test_collect_keeping_nothing_or_matching_nothing_fails_with_a_message(tmp_path, capsys):
    from training.config import FamilySpec
    from training.data import generate_family_items

    items = generate_family_items(FamilySpec("if_else", level="easy"), 2, seed=3)
    write_jsonl(tmp_path / "samples_x.jsonl", [{"doc": encode_doc(it), "resps": [["no boxed answer"]]} for it in items])
    out = tmp_path / "t.jsonl"
    assert main(["collect", "--samples", str(tmp_path / "samples_x.jsonl"), "--out", str(out)]) == 1
    assert "kept 0 of 2 responses (2 prompts): none is correct by exact match; nothing written" in capsys.readouterr().err
    assert not out.exists()
    assert main(["collect", "--samples", str(tmp_path / "nothing_*.jsonl"), "--out", str(out)]) == 2
    assert "nothing_*.jsonl: the pattern matches no file" in capsys.readouterr().err
