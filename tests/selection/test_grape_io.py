"""Pool loading (both layouts, chat messages, Parquet) and the pure selection rules."""

from __future__ import annotations

import json

import pytest

from selection.grape.config import GrapeConfig
from selection.grape.select import rank, select_top_k
from selection.io import PoolColumns, candidate_row, load_pool


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_list_layout_keeps_instruction_columns(tmp_path):
    pool = load_pool(write(tmp_path / "p.jsonl", [
        {"id": "a", "instruction": "q1", "responses": ["r1", "  ", "r2"], "answer": [1]},
        {"id": "b", "instruction": "q2", "responses": ["s1"]},
    ]))
    assert pool.layout == "list" and len(pool.entries) == 2
    assert pool.entries[0].responses == ["r1", "r2"]  # empty response dropped
    assert pool.entries[0].row == {"id": "a", "instruction": "q1", "answer": [1]}
    assert pool.flat_index() == [(0, 0), (0, 1), (1, 0)]
    row = candidate_row(pool, pool.entries[0], 1, {"score": -1.5})
    assert row == {"id": "a", "instruction": "q1", "answer": [1], "response": "r2", "score": -1.5}


def test_pair_layout_groups_by_key_or_instruction(tmp_path):
    rows = [
        {"prompt_id": 1, "instruction": "q1", "response": "r1", "src": "x"},
        {"prompt_id": 2, "instruction": "q2", "response": "s1", "src": "x"},
        {"prompt_id": 1, "instruction": "q1", "response": "r2", "src": "y"},
    ]
    pool = load_pool(write(tmp_path / "p.jsonl", rows))
    assert pool.layout == "pair"
    assert [e.responses for e in pool.entries] == [["r1", "r2"], ["s1"]]
    # a pair keeps its own row (its own 'src'), plus the score fields
    assert candidate_row(pool, pool.entries[0], 1, {"score": 0.0})["src"] == "y"
    keyed = load_pool(tmp_path / "p.jsonl", PoolColumns(group="prompt_id"))
    assert [e.key for e in keyed.entries] == ["1", "2"]
    assert [e.responses for e in keyed.entries] == [["r1", "r2"], ["s1"]]


def test_chat_messages_pairs(tmp_path):
    conv = [{"role": "user", "content": "hi"}]
    pool = load_pool(write(tmp_path / "m.jsonl", [
        {"messages": conv + [{"role": "assistant", "content": "hello"}]},
        {"messages": conv + [{"role": "assistant", "content": "hey"}]},
    ]))
    assert len(pool.entries) == 1 and pool.entries[0].instruction == conv
    assert pool.entries[0].responses == ["hello", "hey"]
    out = candidate_row(pool, pool.entries[0], 1)
    assert out["messages"] == conv + [{"role": "assistant", "content": "hey"}] and out["response"] == "hey"


def test_errors_name_file_line_and_field(tmp_path):
    path = write(tmp_path / "bad.jsonl", [{"instruction": "q", "responses": ["a"]},
                                          {"instruction": "q2", "responses": "not a list"}])
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: field 'responses'"):
        load_pool(path)
    path = write(tmp_path / "noinst.jsonl", [{"question": "q", "responses": ["a"]}])
    with pytest.raises(ValueError, match=r"noinst\.jsonl:1: missing instruction"):
        load_pool(path)
    (tmp_path / "broken.jsonl").write_text('{"instruction": "q", "responses": ["a"]}\n{oops\n')
    with pytest.raises(ValueError, match=r"broken\.jsonl:2"):
        load_pool(tmp_path / "broken.jsonl")


def test_parquet_pool_through_datasets(tmp_path):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_list([{"instruction": "q", "responses": ["a", "b"]}])
    ds.to_parquet(str(tmp_path / "p.parquet"))
    pool = load_pool(tmp_path / "p.parquet")
    assert pool.entries[0].responses == ["a", "b"]


def test_rank_modes_and_deterministic_ties():
    scores = [-1.0, -0.5, -0.5, -2.0]
    assert rank(scores, "best") == [1, 2, 0, 3]  # tie: earlier candidate first
    assert rank(scores, "reverse") == [3, 0, 1, 2]
    a = select_top_k(None, "random", 2, n=10, seed=3, key="q")
    assert a == select_top_k(None, "random", 2, n=10, seed=3, key="q")
    draws = {tuple(select_top_k(None, "random", 3, n=10, seed=s, key="q")) for s in range(8)}
    assert len(draws) > 1


def test_config_validation_and_k():
    with pytest.raises(ValueError, match="top_k"):
        GrapeConfig(model="m", top_k="0")
    with pytest.raises(ValueError, match="template"):
        GrapeConfig(model="m", template="Q: {instruction} {response} end")
    with pytest.raises(ValueError, match="model is required"):
        GrapeConfig()
    GrapeConfig(mode="random")  # needs no model
    assert GrapeConfig(model="m", top_k="all").k_for({}, 7) == 7
    assert GrapeConfig(model="m", top_k="3").k_for({}, 2) == 2
    assert GrapeConfig(model="m", top_k_column="n_original").k_for({"n_original": 2}, 5) == 2
    with pytest.raises(ValueError, match="n_original"):
        GrapeConfig(model="m", top_k_column="n_original").k_for({}, 5)
