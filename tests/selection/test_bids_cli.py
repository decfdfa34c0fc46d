"""``cf-select bids`` selecting from a given influence matrix, and the plugin's registration."""

import json

import numpy as np
import pytest

from plugins import SELECTORS
from selection.base import Selector
from selection.bids.config import SelectConfig
from selection.bids.greedy import bids_greedy, zscore_columns
from selection.bids.pipeline import select_from_matrix
from selection.cli import main as cf_select

TASKS = ["code"] * 4 + ["math"] * 4 + ["logic"] * 3


@pytest.fixture
def matrix_files(tmp_path):
    A = np.random.default_rng(0).normal(size=(200, len(TASKS)))
    np.save(tmp_path / "A.npy", A)
    (tmp_path / "tasks.json").write_text(json.dumps(TASKS))
    return tmp_path, A


def test_plugin_is_found_through_its_entry_point():
    selector = SELECTORS.get("bids")
    assert isinstance(selector, Selector) and selector.name == "bids"


def test_selection_from_a_matrix(matrix_files, capsys):
    tmp, A = matrix_files
    out = tmp / "out" / "selected.json"
    code = cf_select(["bids", "--influence", str(tmp / "A.npy"), "--val-tasks", str(tmp / "tasks.json"),
                      "--budget", "0.15", "--output", str(out), "--no-progress"])
    assert code == 0
    sel = json.loads(out.read_text())
    expected = bids_greedy(zscore_columns(A), 30)
    assert sel["indices"] == expected.indices.tolist() and sel["scores"] == pytest.approx(expected.gains.tolist())
    assert sel["budget"] == 30 and sel["method"] == "bids" and sel["normalized"] is True
    diag = sel["diagnostics"]
    assert diag["tasks"] == ["code", "math", "logic"] and sum(diag["task_histogram"].values()) == 30
    Z = zscore_columns(A)
    rows = Z[sel["indices"]]
    assert diag["average_influence"]["math"] == pytest.approx(rows[:, 4:8].mean())
    argmax_task = [TASKS[j] for j in rows.argmax(axis=1)]
    assert diag["task_histogram"]["logic"] == argmax_task.count("logic")
    assert (tmp / "out" / "selected.png").read_bytes()[:4] == b"\x89PNG"
    printed = capsys.readouterr().out
    assert "selected 30 of 200" in printed and "logic" in printed


@pytest.mark.parametrize("method,normalize", [("task_max", False), ("instance_max", True), ("sum", False),
                                              ("random", False), ("bids", False)])
def test_methods_and_normalisation_flags(matrix_files, method, normalize):
    tmp, A = matrix_files
    out = tmp / f"{method}.json"
    flag = "--normalize" if normalize else "--no-normalize"
    code = cf_select(["bids", "--influence", str(tmp / "A.npy"), "--val-tasks", str(tmp / "tasks.json"),
                      "--budget", "25", "--output", str(out), "--method", method, flag, "--no-plot",
                      "--no-progress"])
    assert code == 0
    sel = json.loads(out.read_text())
    lib = select_from_matrix(A, TASKS, SelectConfig(method=method, budget="25", normalize=normalize))
    assert sel["indices"] == lib.indices and len(set(sel["indices"])) == 25
    assert sel["normalized"] is normalize and sel["diagnostics"]["matrix"] == ("zscore" if normalize else "raw")
    assert not (tmp / f"{method}.png").exists()


def test_baselines_default_to_the_raw_matrix(matrix_files):
    _, A = matrix_files
    sel = select_from_matrix(A, TASKS, SelectConfig(method="instance_max", budget="10"))
    assert sel.diagnostics["normalized"] is False
    assert sel.indices == np.argsort(-A.max(axis=1), kind="stable")[:10].tolist()


def test_selected_rows_written_with_train_file(matrix_files):
    tmp, _ = matrix_files
    rows = [{"prompt": f"p{i}", "completion": f"c{i}"} for i in range(200)]
    (tmp / "pool.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp / "s.json"
    code = cf_select(["bids", "--influence", str(tmp / "A.npy"), "--val-tasks", str(tmp / "tasks.json"),
                      "--budget", "5", "--output", str(out), "--train", str(tmp / "pool.jsonl"),
                      "--selected-data", str(tmp / "s.jsonl"), "--no-plot", "--no-progress"])
    assert code == 0
    idx = json.loads(out.read_text())["indices"]
    assert [json.loads(line) for line in (tmp / "s.jsonl").read_text().splitlines()] == [rows[i] for i in idx]


def test_bad_inputs_give_clear_errors(matrix_files, capsys):
    tmp, A = matrix_files
    (tmp / "short.json").write_text(json.dumps(TASKS[:-1]))
    base = ["bids", "--influence", str(tmp / "A.npy"), "--output", str(tmp / "x.json"), "--no-plot"]
    assert cf_select(base + ["--val-tasks", str(tmp / "short.json")]) == 2
    assert "10 validation task label(s)" in capsys.readouterr().err
    bad = A.copy()
    bad[17, 3] = np.nan
    np.save(tmp / "bad.npy", bad)
    assert cf_select(["bids", "--influence", str(tmp / "bad.npy"), "--val-tasks", str(tmp / "tasks.json"),
                      "--output", str(tmp / "x.json"), "--no-plot"]) == 2
    assert "non-finite value in row 17" in capsys.readouterr().err
    assert cf_select(["bids", "--output", str(tmp / "x.json")]) == 2
    assert "--model" in capsys.readouterr().err
    assert cf_select(base + ["--val-tasks", str(tmp / "tasks.json"), "--budget", "0"]) == 2
    assert "budget" in capsys.readouterr().err
    assert not (tmp / "x.json").exists()


def test_validation_sets_from_task_files_and_a_task_column(tmp_path):
    from selection.bids.config import BidsConfig
    from selection.bids.pipeline import load_validation

    (tmp_path / "a.jsonl").write_text('{"prompt": "p", "completion": "c"}\n{"prompt": "q", "completion": "d"}\n')
    (tmp_path / "mixed.jsonl").write_text('{"prompt": "p", "completion": "c", "task": "x"}\n'
                                          '{"prompt": "p", "completion": "c", "task": "y"}\n')
    config = BidsConfig(val=[f"alpha={tmp_path / 'a.jsonl'}", str(tmp_path / "mixed.jsonl")])
    rows, tasks = load_validation(config)
    assert tasks == ["alpha", "alpha", "x", "y"] and rows[1]["prompt"] == "q"
    (tmp_path / "untagged.jsonl").write_text('{"prompt": "p", "completion": "c"}\n')
    with pytest.raises(ValueError, match=r"untagged.jsonl:1: missing task name"):
        load_validation(BidsConfig(val=[str(tmp_path / "untagged.jsonl")]))


def test_library_select_on_a_matrix_and_pool_rows(matrix_files, tmp_path):
    from selection.bids.config import BidsConfig
    from selection.bids.plugin import SELECTOR, _training_rows
    from selection.io import load_pool

    tmp, A = matrix_files
    sel = SELECTOR.select(A, BidsConfig(val_tasks=str(tmp / "tasks.json"), select=SelectConfig(budget="7")))
    assert sel.indices == bids_greedy(zscore_columns(A), 7).indices.tolist()
    with pytest.raises(ValueError, match="val_tasks"):
        SELECTOR.select(A, BidsConfig())
    # A GRAPE-style pool (one instruction, two candidates) becomes one training row per candidate.
    (tmp_path / "pool.jsonl").write_text('{"instruction": "2 + 3?", "responses": ["5", "6"], "id": 1}\n')
    rows, source = _training_rows(load_pool(tmp_path / "pool.jsonl"))
    assert [(r["instruction"], r["response"], r["id"]) for r in rows] == [("2 + 3?", "5", 1), ("2 + 3?", "6", 1)]
    assert source.endswith("pool.jsonl")


@pytest.mark.parametrize("budget,expected", [("1.0", 200), ("1", 1), ("0.15", 30), ("200", 200), (" 7 ", 7)])
def test_budget_integer_is_a_count_float_a_fraction(matrix_files, budget, expected):
    tmp, _ = matrix_files
    out = tmp / "b.json"
    code = cf_select(["bids", "--influence", str(tmp / "A.npy"), "--val-tasks", str(tmp / "tasks.json"),
                      "--budget", budget, "--output", str(out), "--no-plot", "--no-progress"])
    assert code == 0
    sel = json.loads(out.read_text())
    assert sel["budget"] == expected and len(sel["indices"]) == expected == len(set(sel["indices"]))


@pytest.mark.parametrize("budget,message", [("201", "more than the pool's 200"), ("2.5", r"fraction must be in \(0, 1\]"),
                                            ("300.0", "whole number"), ("0", "at least 1"), ("0.0", "fraction"),
                                            ("-3", "at least 1"), ("lots", "count")])
def test_bad_budgets_are_errors(matrix_files, capsys, budget, message):
    import re

    tmp, _ = matrix_files
    code = cf_select(["bids", "--influence", str(tmp / "A.npy"), "--val-tasks", str(tmp / "tasks.json"),
                      "--budget", budget, "--output", str(tmp / "x.json"), "--no-plot"])
    assert code == 2 and re.search(message, capsys.readouterr().err)
    assert not (tmp / "x.json").exists()


def test_library_budgets():
    from selection.base import parse_budget

    assert parse_budget(1.0, 10) == 10 and parse_budget(1, 10) == 1 and parse_budget(0.25, 10) == 2
    assert parse_budget(0.01, 10) == 1  # a fraction selects at least one row
    with pytest.raises(ValueError, match="more than"):
        parse_budget(11, 10)
    with pytest.raises(ValueError):
        parse_budget(True, 10)


def test_selected_png_has_integer_count_ticks_and_a_visible_pool_level():
    from selection.bids.diagnostics import diagnostics_figure

    diag = {"tasks": ["code", "math", "logic"], "matrix": "zscore", "histogram_rule": "task of argmax column",
            "task_histogram": {"code": 1, "math": 2, "logic": 0},
            "average_influence": {"code": 0.8, "math": 1.2, "logic": -0.1},
            "pool_average_influence": {"code": 0.0, "math": 0.0, "logic": 0.0}}
    fig = diagnostics_figure(diag)
    hist, infl = fig.axes
    ticks = [t for t in hist.get_yticks() if hist.get_ylim()[0] <= t <= hist.get_ylim()[1]]
    assert ticks and all(float(t).is_integer() for t in ticks)
    pool = [c for c in infl.collections if c.get_label().startswith("pool")]
    assert len(pool) == 1 and pool[0].get_visible() and pool[0].get_linewidth()[0] > 0
    segments = pool[0].get_segments()
    assert len(segments) == 3 and all(abs(s[1][0] - s[0][0]) > 0.5 and s[0][1] == s[1][1] == 0.0 for s in segments)


def test_help_lists_every_option(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cf_select(["bids", "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for flag in ("--projection", "--dry-run", "--gpu-memory-gb", "--mixed-precision", "--gradient-checkpointing",
                 "--budget", "--grad-batch-size"):
        assert flag in out


def test_a_matrix_file_that_is_not_numeric_npy_is_refused_without_unsafe_advice(tmp_path, capsys):
    """numpy's own message suggests allow_pickle=True, which would run code from the file: never shown."""
    fake = tmp_path / "A.npy"
    fake.write_text('{"not": "an array"}')
    tasks = tmp_path / "tasks.json"
    tasks.write_text('["t"]')
    code = cf_select(["bids", "--influence", str(fake), "--val-tasks", str(tasks), "--budget", "1",
                      "--output", str(tmp_path / "s.json")])
    err = capsys.readouterr().err
    assert code == 2 and f"{fake}: not a numeric .npy array" in err
    assert "allow_pickle" not in err and "unsafely" not in err
