"""Resuming: an interrupted run continues from its finished shards without recomputing them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torch")

from selection.grape.config import GrapeConfig  # noqa: E402
from selection.grape.plugin import GrapeSelector  # noqa: E402
from selection.io import build_pool, load_pool  # noqa: E402


def make_pool(n: int, n_candidates: int = 4, prompt_repeat: int = 1):
    rows = []
    for i in range(n):
        rows.append((f"mem:{i}", {
            "id": i, "instruction": f"what is {i} + 3? " * prompt_repeat,
            "responses": [f"{i + 3}", f"The answer is \\boxed{{{i + 3}}}.", "seven", f" {i} plus 3 is {i + 3}"
                          ][:n_candidates] + [f"candidate {k} for {i} " * 5 for k in range(max(0, n_candidates - 4))],
        }))
    return build_pool(rows)


def shard_stats(work: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_mtime_ns, p.stat().st_ino) for p in sorted(work.glob("shard-*.jsonl"))}


def test_interrupted_run_resumes_without_recomputing(tiny_lm_dir, tmp_path):
    pool = make_pool(12)
    base = dict(model=str(tiny_lm_dir), shard_size=2, progress=False, top_k="2")
    ref = GrapeSelector().run(pool, GrapeConfig(**base), work_dir=tmp_path / "ref")

    work = tmp_path / "work"
    first = GrapeSelector().run(pool, GrapeConfig(**base, max_shards=2), work_dir=work)
    assert not first.complete and first.run.shards_computed == [0, 1]
    assert GrapeSelector().select(pool, GrapeConfig(**base, max_shards=0), work_dir=work).diagnostics["complete"] is False
    before = shard_stats(work)
    assert sorted(before) == ["shard-000000.jsonl", "shard-000001.jsonl"]

    second = GrapeSelector().run(pool, GrapeConfig(**base), work_dir=work)
    assert second.complete
    assert second.run.shards_reused == 2 and second.run.shards_computed == [2, 3, 4, 5]
    assert {k: v for k, v in shard_stats(work).items() if k in before} == before  # untouched
    assert second.ranked == ref.ranked
    assert [[s.mean for s in row] for row in second.run.scores] == [[s.mean for s in row] for row in ref.run.scores]

    third = GrapeSelector().run(pool, GrapeConfig(**base), work_dir=work)
    assert third.run.shards_computed == [] and third.ranked == ref.ranked

    with pytest.raises(ValueError, match="template"):
        GrapeSelector().run(pool, GrapeConfig(**base, template="Q: {instruction}\nA: {response}"), work_dir=work)


def test_sigkilled_cli_run_resumes(tiny_lm_dir, tmp_path):
    data = tmp_path / "pool.jsonl"
    pool = make_pool(24, n_candidates=4, prompt_repeat=4)
    data.write_text("".join(json.dumps(dict(e.row, responses=e.responses)) + "\n" for e in pool.entries))
    out = tmp_path / "sel.jsonl"
    work = tmp_path / "sel.jsonl.work"
    cmd = [sys.executable, "-m", "selection.cli", "grape", "--model", str(tiny_lm_dir), "--data", str(data),
           "--output", str(out), "--shard-size", "1", "--max-batch-tokens", "256", "--no-progress"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(list(work.glob("shard-*.jsonl"))) < 3 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read().decode()[-2000:]
    before = shard_stats(work)
    assert 3 <= len(before) < 24, "the run finished before it could be killed"
    assert not out.exists()

    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{len(before)} of 24 shard(s) already scored" in done.stderr
    assert {k: v for k, v in shard_stats(work).items() if k in before} == before
    assert len(shard_stats(work)) == 24

    ref = GrapeSelector().run(load_pool(data), GrapeConfig(model=str(tiny_lm_dir), shard_size=1,
                                                           max_batch_tokens=256, progress=False),
                              work_dir=tmp_path / "ref")
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["id"], r["response_index"]) for r in rows] == [(e.row["id"], o[0]) for e, o in
                                                              zip(ref.pool.entries, ref.ranked)]
    # another process may use another torch thread count: float sums can differ in the last bits
    expected = [ref.run.scores[i][o[0]].mean for i, o in enumerate(ref.ranked)]
    assert [r["score"] for r in rows] == pytest.approx(expected, rel=1e-6, abs=1e-6)
