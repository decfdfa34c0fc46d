"""``cf-select pool`` reads the gold answer in both formats and never silently skips verification (issue 11)."""

from __future__ import annotations

import json
import logging

import pytest

from selection.cli import main as cf_select


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("answer", [[1, 3], "[1, 3]"], ids=["list", "json-text"])
def test_answer_as_list_or_json_text_is_verified_the_same(tmp_path, answer):
    row = {"id": "w-1", "family": "while", "instruction": "What can f(2) be?", "answer": answer,
           "responses": ["\\boxed{1, 3}", "\\boxed{3}", "\\boxed{3, 1}"]}
    out = tmp_path / "pool.jsonl"
    assert cf_select(["pool", "--source", str(_write(tmp_path / "src.jsonl", [row])), "--output", str(out)]) == 0
    (merged,) = _read(out)
    assert merged["responses"] == ["\\boxed{1, 3}", "\\boxed{3, 1}"]


def test_math_problems_are_verified_with_the_math_scorer(tmp_path):
    row = {"id": "g-1", "family": "gsm", "instruction": "How many eggs?", "answer": ["48"],
           "responses": ["So 48 eggs: \\boxed{48}", "\\boxed{48.0}", "\\boxed{47}", "\\boxed{48 \\text{ eggs}}"]}
    out = tmp_path / "pool.jsonl"
    assert cf_select(["pool", "--source", str(_write(tmp_path / "src.jsonl", [row])), "--output", str(out)]) == 0
    (merged,) = _read(out)
    assert "\\boxed{47}" not in merged["responses"] and "So 48 eggs: \\boxed{48}" in merged["responses"]


@pytest.mark.parametrize("answer", [None, "", "not json", {}], ids=["missing", "empty", "text", "mapping"])
def test_an_executable_cf_problem_without_a_usable_answer_is_an_error(tmp_path, capsys, answer):
    row = {"id": "w-2", "family": "while", "instruction": "What can f(2) be?", "responses": ["\\boxed{1}"]}
    if answer is not None:
        row["answer"] = answer
    out = tmp_path / "pool.jsonl"
    src = _write(tmp_path / "src.jsonl", [row])
    if answer == "not json":  # a bare string is a one-element gold set, which is readable
        assert cf_select(["pool", "--source", str(src), "--output", str(out)]) == 0
        return
    assert cf_select(["pool", "--source", str(src), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "'w-2'" in err and "cannot be verified" in err and "--verify never" in err
    assert not out.exists()
    assert cf_select(["pool", "--source", str(src), "--output", str(out), "--verify", "never"]) == 0


def test_unverified_responses_are_counted_loudly(tmp_path, caplog):
    row = {"id": "plain", "instruction": "Say hi", "responses": ["hi", "hello"]}
    out = tmp_path / "pool.jsonl"
    with caplog.at_level(logging.WARNING, logger="selection.pool"):
        assert cf_select(["pool", "--source", str(_write(tmp_path / "src.jsonl", [row])), "--output", str(out)]) == 0
    assert any(r.levelno == logging.WARNING and "2 response(s)" in r.getMessage() for r in caplog.records)
