"""SIGKILL at seeded random moments leaves no partial output; reruns finish byte-identical (issue 7).

A few kill points per target run by default (``generate``, ``generate`` while
writing its output, ``solve``); GRAPE scoring and BIDS feature extraction load
torch and a tiny model, so they are ``slow``. The full sweep with many kill
points and a naive-writer baseline is ``benchmarks/crash_safety.py``; this
module drives the same harness.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("crash_safety_bench", REPO / "benchmarks" / "crash_safety.py")
crash = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = crash  # dataclasses resolve annotations through sys.modules
_spec.loader.exec_module(crash)

POINTS = 2


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("crash")


def _assert_safe(report) -> None:
    detail = "\n".join(report.problems)
    # A kill point may miss when a run is faster than the reference; the sweep reports how many landed.
    assert report.killed >= 1, f"no kill point landed inside the run\n{detail}"
    assert report.partial_files == 0, detail
    assert report.orphans == 0, "processes of the killed job outlived it by more than a second"
    assert report.sandbox_dirs == 0, "the killed job left cf-sandbox-* temp folders behind"
    assert report.rerun_identical, detail
    assert report.ok(), detail


def test_kill_points_are_seeded_and_spread():
    assert crash.kill_delays(10.0, 4, seed=3) == crash.kill_delays(10.0, 4, seed=3)
    delays = crash.kill_delays(10.0, 4, seed=3)
    assert delays == sorted(delays) and 0.5 <= delays[0] and delays[-1] <= 9.5
    assert crash.kill_delays(10.0, 4, seed=4) != delays


def test_scratch_names_are_recognised():
    assert crash.is_scratch("out/.data.jsonl.k2j3.tmp")
    assert crash.is_scratch("work/warmup/.epoch-2.abc.tmp/optimizer.pt")
    assert crash.is_scratch("work/influence.npy.partial")
    assert not crash.is_scratch("out/data.jsonl") and not crash.is_scratch("out/data.jsonl.tmp")


def test_check_folder_flags_a_truncated_file(tmp_path):
    """The check itself can fail: a truncated copy of a reference file is reported."""
    target = crash.Target("t", ["true"])
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "data.jsonl").write_bytes(b'{"a": 1}\n{"a"')
    (tmp_path / "out" / ".data.jsonl.x1.tmp").write_bytes(b"half")
    problems, scratch = crash.check_folder(target, tmp_path, {"out/data.jsonl": b'{"a": 1}\n{"a": 2}\n'})
    assert scratch == 1 and len(problems) == 1 and "out/data.jsonl" in problems[0]


def test_generate_survives_sigkill(root):
    target = crash.generate_target(4000)
    _assert_safe(crash.crash_test(target, root, POINTS, seed=1))


def test_generate_survives_sigkill_while_writing(root):
    target = crash.generate_write_target(4000)
    report = crash.crash_test(target, root, POINTS, seed=2)
    _assert_safe(report)
    # Temp files of killed writes may stay behind; readers ignore them (hidden names), e.g. the
    # documented `load_dataset(<output folder>)`.
    import datasets

    out = root / "generate-during-the-write-crash" / "out"
    assert report.scratch_left == len(list(out.glob(".data.jsonl.*.tmp")))
    loaded = datasets.load_dataset(str(out), split="test")
    assert loaded.num_rows == 4000


def test_solve_survives_sigkill(root):
    (target,) = crash.build_targets(["solve"], root, generate_n=0, solve_n=600)
    _assert_safe(crash.crash_test(target, root, POINTS, seed=3))


@pytest.fixture(scope="module")
def model_root(root, tiny_lm_dir) -> Path:
    return tiny_lm_dir


@pytest.mark.slow
def test_grape_scoring_survives_sigkill(root, model_root):
    _assert_safe(crash.crash_test(crash.grape_target(model_root, n=24, candidates=6), root, POINTS, seed=4))


@pytest.mark.slow
def test_bids_feature_extraction_survives_sigkill(root, model_root):
    _assert_safe(crash.crash_test(crash.bids_target(model_root), root, POINTS, seed=5))
