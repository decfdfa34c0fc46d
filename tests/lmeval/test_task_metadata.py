"""Task metadata as users pass it: typos warned, sources named, model arguments never change items (issue 11)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cf_tasks.lmeval.dataset import TaskMetadataError, load_family
from cf_tasks.lmeval.docs import decode_doc
from cf_tasks.lmeval.metadata import reset_warnings
from plugins.lmeval_hook import MODEL_ARGS_KEY

SHIPPED = str(Path(__file__).resolve().parents[2] / "cf_tasks" / "tasks" / "code" / "executable_cf_while.yaml")
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


@pytest.fixture(autouse=True)
def _fresh_warnings():
    reset_warnings()
    yield
    reset_warnings()


def _ids(data) -> list[str]:
    return [decode_doc(d)["id"] for d in data["test"]]


def test_unknown_key_is_warned_once_naming_source_and_known_keys(caplog):
    with caplog.at_level(logging.WARNING, logger="cf_tasks.lmeval"):
        for _ in range(3):  # one warning, not one per task
            load_family(family="while", n=3, levle="hard", config_source=SHIPPED, **{MODEL_ARGS_KEY: []})
    (record,) = [r for r in caplog.records if "levle" in r.getMessage()]
    message = record.getMessage()
    assert "from --metadata" in message and "did you mean 'level'" in message and "seed" in message


def test_without_the_hook_marker_only_likely_typos_are_reported(caplog):
    with caplog.at_level(logging.WARNING, logger="cf_tasks.lmeval"):
        load_family(family="while", n=3, pretrained="some/model", sead=3)
    messages = [r.getMessage() for r in caplog.records]
    assert any("'sead'" in m for m in messages) and not any("pretrained" in m for m in messages)


def test_a_model_argument_named_like_a_knob_never_changes_the_items(caplog):
    plain = _ids(load_family(family="while", n=4))
    with caplog.at_level(logging.WARNING, logger="cf_tasks.lmeval"):
        merged = load_family(family="while", n=4, seed=0, pretrained="x", **{MODEL_ARGS_KEY: ["pretrained", "seed"]})
    assert _ids(merged) == plain
    assert _ids(load_family(family="while", n=4, seed=0)) != plain  # a task seed does change them
    assert any("seed=0 in --model_args" in r.getMessage() for r in caplog.records)


def test_errors_say_where_the_bad_value_came_from(tmp_path):
    with pytest.raises(TaskMetadataError) as err:
        load_family(family="while", n="abc", config_source=SHIPPED)
    assert str(err.value).startswith(f"{SHIPPED}: task metadata 'n' (from --metadata): must be an integer")
    own = tmp_path / "mine.yaml"
    own.write_text("task: mine\nmetadata: {family: while, n: 12, level: hardest}\n")
    with pytest.raises(TaskMetadataError, match=rf"task metadata 'level' \(from {own}\): .*no level 'hardest'"):
        load_family(family="while", n=12, level="hardest", config_source=str(own))
    with pytest.raises(TaskMetadataError, match=r"'config' \(from --metadata\): .*unknown config field.*loop_bound"):
        load_family(family="while", n=2, config={"loop_bound": 6}, config_source=SHIPPED)


def _lm_eval(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lm_eval", *args], capture_output=True, text=True, cwd=cwd,
                          env=ENV, timeout=600)


def test_lm_eval_cli_end_to_end(tmp_path):
    """One real run: model args do not leak, typos are warned, the folder is named, no generic warning."""
    proc = _lm_eval("--model", "cf_oracle", "--model_args", "seed=0", "--tasks", "executable_cf_while",
                    "--limit", "3", "--metadata", '{"levle": "hard"}', "--output_path", str(tmp_path / "runs"),
                    "--log_samples", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert "Custom kwargs can be passed" not in log
    assert "'levle' (from --metadata) is not used by load_family (did you mean 'level'?)" in log
    assert "seed=0 in --model_args is the model's argument" in log
    (samples,) = (tmp_path / "runs" / "cf_oracle").glob("samples_executable_cf_while_*.jsonl")
    seeds = {json.loads(line)["doc"]["seed"] for line in samples.read_text().splitlines()}
    assert seeds == {1234}  # the task's seed, not the model's

    bad = _lm_eval("--model", "cf_oracle", "--tasks", "executable_cf_while", "--limit", "2",
                   "--metadata", '{"n": "abc"}', cwd=tmp_path)
    assert bad.returncode != 0
    first_error = next(line for line in bad.stderr.splitlines() if "ERROR" in line or "Error" in line)
    assert "task metadata 'n' (from --metadata): must be an integer, got 'abc'" in first_error
    assert "executable_cf_while.yaml" in first_error


def test_simple_evaluate_model_args_do_not_leak(tmp_path):
    code = ("import json, lm_eval\n"
            "out = lm_eval.simple_evaluate(model='cf_oracle', model_args='seed=0', tasks=['executable_cf_while'],"
            " limit=2, log_samples=True)\n"
            "print(json.dumps(sorted({s['doc']['seed'] for s in out['samples']['executable_cf_while']})))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=ENV,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == [1234]
