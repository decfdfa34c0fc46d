"""``cf-tasks tiny-model``: an offline model for smoke runs of every README command."""

import hashlib
import subprocess
import sys

import pytest

from cf_tasks.cli import main


def _digests(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_tiny_model_is_a_real_chat_model_and_reproducible(tmp_path, capsys):
    assert main(["tiny-model", "-o", str(tmp_path / "a")]) == 0
    assert "pretrained=" in capsys.readouterr().out
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tmp_path / "a")
    model = AutoModelForCausalLM.from_pretrained(tmp_path / "a")
    text = tok.apply_chat_template([{"role": "user", "content": "f(x=3)?"}], tokenize=False,
                                   add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n")
    assert model.config.hidden_size // model.config.num_attention_heads == 64  # vLLM's CPU kernels need >= 64
    assert tok.eos_token == "<|im_end|>" and model.generation_config.eos_token_id == tok.eos_token_id
    # Another process (other hash seed) writes the same bytes.
    proc = subprocess.run([sys.executable, "-m", "cf_tasks.cli", "tiny-model", "-o", str(tmp_path / "b")],
                          capture_output=True, text=True, env={"PYTHONHASHSEED": "7", "PATH": ""}, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert _digests(tmp_path / "a") == _digests(tmp_path / "b")
    assert all(p.stat().st_mode & 0o044 for p in (tmp_path / "a").iterdir())  # not left 0600


def test_tiny_model_refuses_to_overwrite_and_rejects_bad_shapes(tmp_path, capsys):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    assert main(["tiny-model", "-o", str(tmp_path / "full")]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (tmp_path / "full" / "keep.txt").exists()
    assert main(["tiny-model", "-o", str(tmp_path / "bad"), "--hidden", "100", "--heads", "3"]) == 2
    assert "multiple of heads" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp folder left behind
