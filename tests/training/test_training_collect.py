"""Rejection sampling: only correct traces survive, from lm-eval sample logs or a model's generations."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cf_tasks.answers import format_answer
from cf_tasks.jsonl import read_jsonl, write_jsonl
from cf_tasks.lmeval.docs import encode_doc
from training.collect import (CollectStats, GenerationSpec, candidates_from_model, candidates_from_samples,
                              filter_traces)
from training.config import FamilySpec
from training.data import generate_family_items


@pytest.fixture(scope="module")
def items():
    return generate_family_items(FamilySpec("if_else", level="easy"), 3, seed=11)


def sample_log(path, items):
    """An lm-eval --log_samples file: lm-eval documents (JSON-encoded list fields), 3 repeats each."""
    records = []
    for i, item in enumerate(items):
        gold = format_answer(item["answer"])
        wrong = "\\boxed{" + ", ".join(str(v) for v in [*item["answer"], 99_999]) + "}"  # hedged: one extra value
        resps = [[f"step {i}: ... so {gold}"], [f"guess: {wrong}"], [f"step {i}: ... so {gold}"]]
        records.append({"doc_id": i, "doc": encode_doc(item), "target": gold, "resps": resps,
                        "filtered_resps": [r[0] for r in resps], "exact_match": 1.0})
    write_jsonl(path, records)
    return path


def test_collect_keeps_only_correct_distinct_traces(tmp_path, items):
    log = sample_log(tmp_path / "samples_executable_cf_if_else_2026.jsonl", items)
    stats = CollectStats()
    rows = filter_traces(candidates_from_samples([log]), stats=stats)
    assert stats.responses == 9 and stats.prompts == 3 and stats.correct == 6 and stats.duplicates == 3
    assert len(rows) == 3
    for row, item in zip(rows, items):
        assert row["prompt"] == item["prompt"] and row["answer"] == item["answer"]
        assert row["completion"].endswith(format_answer(item["answer"]))
        assert "99999" not in row["completion"] and row["family"] == "if_else"
    # partial credit instead of exact match lets the hedged answers in
    assert len(filter_traces(candidates_from_samples([log]), min_f1=0.5)) == 6
    assert len(filter_traces(candidates_from_samples([log]), min_f1=0.5, max_per_prompt=1)) == 3


def test_collect_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "samples.jsonl"
    write_jsonl(bad, [{"doc": {"prompt": "p", "answer": "[1]"}, "resps": [["\\boxed{1}"]]}, {"resps": []}])
    with pytest.raises(ValueError, match=r"samples\.jsonl:2: no 'doc' object"):
        list(candidates_from_samples([bad]))


def test_collect_cli_on_sample_logs(tmp_path, items):
    log = sample_log(tmp_path / "samples_x.jsonl", items)
    out = tmp_path / "traces.jsonl"
    proc = subprocess.run([sys.executable, "-m", "training.cli", "collect", "--samples", str(log), "--out", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "kept 3 of 9 responses (3 prompts)" in proc.stdout
    rows = read_jsonl(out)
    assert len(rows) == 3 and {"prompt", "completion", "answer", "id", "family", "source"} <= set(rows[0])
    summary = json.loads((tmp_path / "traces.jsonl.summary.json").read_text())
    assert summary["kept"] == 3 and summary["accept_rate"] == pytest.approx(6 / 9)


def test_collect_from_model_generations(tiny_lm_dir, items):
    spec = GenerationSpec(samples_per_prompt=2, max_new_tokens=4, batch_size=2, temperature=1.0, seed=0)
    candidates = list(candidates_from_model(str(tiny_lm_dir), items, spec))
    assert len(candidates) == 2 * len(items)
    assert [c.prompt for c in candidates] == [it["prompt"] for it in items for _ in range(2)]
    assert all(c.source == f"model:{tiny_lm_dir}" and isinstance(c.response, str) for c in candidates)
    # an untrained model never boxes the right set: nothing is kept
    stats = CollectStats()
    assert filter_traces(candidates, stats=stats) == [] and stats.responses == 6 and stats.kept == 0
    # the same candidates with the gold answer appended are all kept: the filter, not the source, decides
    fixed = [type(c)(c.prompt, c.response + " " + format_answer(c.doc["answer"]), c.doc, c.source)
             for c in candidates]
    assert len(filter_traces(fixed)) == len({c.response for c in fixed})
    with pytest.raises(ValueError, match="samples_per_prompt 1"):
        GenerationSpec(temperature=0, samples_per_prompt=2).validate()
