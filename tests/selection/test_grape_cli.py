"""The grape plugin through its entry point, ``cf-select grape`` end to end, and ``cf-select pool``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from plugins import SELECTORS
from selection.cli import main as cf_select


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def read(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


POOL = [
    {"id": f"q{i}", "instruction": f"what is {i} + 3?",
     "responses": [f"{i + 3}", f"The answer is \\boxed{{{i + 3}}}.", "seven", f"{i} plus 3 is {i + 3}"]}
    for i in range(5)
]


def test_plugin_found_through_entry_point():
    from selection.grape.plugin import GrapeSelector

    assert "grape" in SELECTORS.names()
    assert "grape" in SELECTORS.specs() and SELECTORS.specs()["grape"].value == "selection.grape.plugin:SELECTOR"
    selector = SELECTORS.get("grape")
    assert isinstance(selector, GrapeSelector) and selector.name == "grape"


def test_cf_select_grape_subprocess_end_to_end(tiny_lm_dir, tmp_path):
    pytest.importorskip("torch")
    data = write(tmp_path / "pool.jsonl", POOL)
    out = tmp_path / "sel.jsonl"
    exe = shutil.which("cf-select")
    cmd = [exe] if exe else [sys.executable, "-m", "selection.cli"]
    cmd += ["grape", "--model", str(tiny_lm_dir), "--data", str(data), "--output", str(out), "--top-k", "2",
            "--template", "Q: {instruction}\\nA: {response}", "--max-batch-tokens", "64", "--shard-size", "2"]
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "tok/s" in done.stderr  # the progress bar / log reports throughput
    rows = read(out)
    assert len(rows) == 10
    assert [r["id"] for r in rows] == [f"q{i}" for i in range(5) for _ in range(2)]
    assert all(set(r) >= {"id", "instruction", "response", "score", "rank"} for r in rows)
    scores = read(tmp_path / "sel.scores.jsonl")
    assert len(scores) == 20 and sum(s["selected"] for s in scores) == 10
    for i in range(5):
        mine = [s for s in scores if s["instruction_index"] == i]
        best = sorted(mine, key=lambda s: (-s["score"], s["response_index"]))[:2]
        assert [r["response_index"] for r in rows[2 * i: 2 * i + 2]] == [s["response_index"] for s in best]
    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset("json", data_files=str(out), split="train")
    assert ds.num_rows == 10

    # the template changes the scores, and a work dir made with another template is refused
    again = subprocess.run(cmd[:-8] + ["--top-k", "1", "--max-batch-tokens", "64", "--shard-size", "2"],
                           capture_output=True, text=True, timeout=300, env=env)
    assert again.returncode == 2 and "template" in again.stderr


def test_max_shards_exit_code_and_random_mode(tiny_lm_dir, tmp_path):
    pytest.importorskip("torch")
    data = write(tmp_path / "pool.jsonl", POOL)
    out = tmp_path / "part.jsonl"
    rc = cf_select(["grape", "--model", str(tiny_lm_dir), "--data", str(data), "--output", str(out),
                    "--shard-size", "2", "--max-shards", "1", "--no-progress"])
    assert rc == 3 and not out.exists() and len(list((tmp_path / "part.jsonl.work").glob("shard-*"))) == 1
    rnd = tmp_path / "rnd.jsonl"
    assert cf_select(["grape", "--mode", "random", "--seed", "1", "--data", str(data), "--output", str(rnd)]) == 0
    rows = read(rnd)
    assert len(rows) == 5 and all(r["score"] is None for r in rows)
    rnd2 = tmp_path / "rnd2.jsonl"
    assert cf_select(["grape", "--mode", "random", "--seed", "1", "--data", str(data), "--output", str(rnd2)]) == 0
    assert rnd.read_bytes() == rnd2.read_bytes()


def test_cf_select_pool_merges_dedups_and_verifies(tmp_path):
    item = {"id": "if_else-1", "family": "if_else", "prompt": "What can f(5) be?", "answer": [5, 7]}
    other = {"id": "plain-1", "instruction": "Say hi", "responses": ["hi", "hello"]}
    original = write(tmp_path / "orig.jsonl", [
        dict(item, instruction=item["prompt"], responses=["So \\boxed{5, 7}", "\\boxed{5}"]), other,
    ])
    samples = write(tmp_path / "samples_executable_cf_2026.jsonl", [
        {"doc_id": 0, "doc": item, "target": "[5, 7]", "filter": "none",
         "arguments": {"gen_args_0": {"arg_0": "ctx", "arg_1": "{}"}},
         "resps": [["  So \\boxed{5, 7}", "Thus \\boxed{7, 5}.", "\\boxed{4}"]], "filtered_resps": [["x"]]},
        {"doc_id": 0, "doc": item, "target": "[5, 7]", "filter": "strict",
         "arguments": {"gen_args_0": {"arg_0": "ctx", "arg_1": "{}"}},
         "resps": [["Thus \\boxed{7, 5}."]], "filtered_resps": [["y"]]},
    ])
    merged = tmp_path / "pool.jsonl"
    assert cf_select(["pool", "--source", str(original), "--source", str(samples), "--output", str(merged)]) == 0
    rows = {r["id"]: r for r in read(merged)}
    cf = rows["if_else-1"]
    # duplicates (also modulo surrounding whitespace and repeated filter rows) merged; wrong answers dropped
    assert cf["responses"] == ["So \\boxed{5, 7}", "Thus \\boxed{7, 5}."]
    assert cf["response_sources"] == [str(original), str(samples)]
    assert cf["n_original"] == 1 and cf["answer"] == [5, 7]
    assert rows["plain-1"]["responses"] == ["hi", "hello"]  # not an executable_cf problem: not verified
    # the merged file is a valid GRAPE pool
    from selection.io import load_pool

    assert [len(e.responses) for e in load_pool(merged).entries] == [2, 2]
    strict = tmp_path / "strict.jsonl"
    assert cf_select(["pool", "--source", str(original), "--output", str(strict), "--min-responses", "2"]) == 0
    assert [r["id"] for r in read(strict)] == ["plain-1"]  # if_else-1 keeps one correct original response


@pytest.mark.slow
def test_accelerate_two_processes_match_one(tiny_lm_dir, tmp_path):
    """``accelerate launch`` shards the work by process index; the outputs equal a one-process run."""
    pytest.importorskip("torch")
    pytest.importorskip("accelerate")
    launcher = shutil.which("accelerate")
    if launcher is None:
        pytest.skip("accelerate launcher not on PATH")
    data = write(tmp_path / "pool.jsonl", POOL)
    args = ["grape", "--model", str(tiny_lm_dir), "--data", str(data), "--shard-size", "1", "--no-progress"]
    # MKL's float results depend on memory alignment, which differs between processes (observed: 1 score in 20
    # off by 1e-8); its conditional numerical reproducibility mode makes them bitwise equal
    env = dict(os.environ, HF_HUB_OFFLINE="1", MKL_CBWR="AUTO,STRICT")
    # --multi_gpu on a CPU-only machine makes accelerate start torchrun with gloo, one process per "device"
    multi = subprocess.run([launcher, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                            "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "selection.cli", *args,
                            "--output", str(tmp_path / "two.jsonl")], capture_output=True, text=True, timeout=600,
                           env=env)
    assert multi.returncode == 0, multi.stderr[-3000:]
    assert multi.stderr.count("scored 3 shard(s)") == 1 and multi.stderr.count("scored 2 shard(s)") == 1
    # the one-process run with the same thread count (torchrun gives each rank one thread): the same kernels
    single = subprocess.run([sys.executable, "-m", "selection.cli", *args, "--output", str(tmp_path / "one.jsonl")],
                            capture_output=True, text=True, timeout=600, env={**env, "OMP_NUM_THREADS": "1"})
    assert single.returncode == 0, single.stderr[-3000:]
    for suffix in (".jsonl", ".scores.jsonl", ".summary.json"):
        assert (tmp_path / f"two{suffix}").read_bytes() == (tmp_path / f"one{suffix}").read_bytes(), suffix


def test_over_length_candidates_are_truncated_or_skipped_and_counted(tiny_lm_dir, tmp_path):
    """The tiny model has 1024 positions: a long prompt is cut from the left, a response that alone is too long is
    skipped; the run finishes and the summary counts both (before: the whole run stopped with an error)."""
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    long_prompt = "word " * 1100
    data = write(tmp_path / "pool.jsonl", POOL[:2] + [
        {"instruction": "long answer", "responses": ["word " * 1200, "short"]},
        {"instruction": long_prompt, "responses": ["5", "six"]},
    ])
    out = tmp_path / "o.jsonl"
    assert cf_select(["grape", "--model", str(tiny_lm_dir), "--data", str(data), "--output", str(out),
                      "--no-progress"]) == 0
    summary = json.loads((tmp_path / "o.summary.json").read_text())
    assert summary["skipped_overlength"] == 1 and summary["prompt_truncated"] == 2
    assert summary["instructions_without_selection"] == 0 and summary["selected"] == 4
    scores = read(tmp_path / "o.scores.jsonl")
    assert [s["skipped"] for s in scores if s["instruction_index"] == 2] == [True, False]
    assert read(out)[2]["response"] == "short"
    # a truncated candidate's score is the plain forward pass over its last 1024 tokens
    tok = AutoTokenizer.from_pretrained(tiny_lm_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_lm_dir, dtype=torch.float32).eval()
    prompt = tok(f"Question: {long_prompt}\nAnswer:")["input_ids"]
    response = tok(" 5", add_special_tokens=False)["input_ids"]
    kept = prompt[len(prompt) + len(response) - 1024:]
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=torch.tensor([kept + response])).logits[0].double(), -1)
    expected = sum(float(logp[len(kept) - 1 + t, x]) for t, x in enumerate(response)) / len(response)
    row = next(s for s in scores if s["instruction_index"] == 3 and s["response"] == "5")
    assert row["prompt_tokens_cut"] == len(prompt) - len(kept) and row["score"] == pytest.approx(expected, abs=1e-5)
    # --overlength skip leaves both candidates of the long prompt unscored: that instruction selects nothing
    out = tmp_path / "skip.jsonl"  # (the first run's work dir is refused: it holds scores of another policy)
    assert cf_select(["grape", "--model", str(tiny_lm_dir), "--data", str(data), "--output", str(out),
                      "--no-progress", "--overlength", "skip"]) == 0
    summary = json.loads((tmp_path / "skip.summary.json").read_text())
    assert summary["skipped_overlength"] == 3 and summary["prompt_truncated"] == 0
    assert summary["instructions_without_selection"] == 1 and len(read(out)) == 3


def test_missing_local_model_path_is_named_before_any_work(tmp_path, capsys):
    rc = cf_select(["grape", "--model", str(tmp_path / "no_such_model"), "--data", str(tmp_path / "missing.jsonl"),
                    "--output", str(tmp_path / "o.jsonl")])
    assert rc == 2
    err = capsys.readouterr().err
    assert f"model path not found: {tmp_path / 'no_such_model'}" in err and "missing.jsonl" not in err


def test_cf_select_pool_verifies_real_lm_eval_documents(tmp_path):
    """lm-eval logs documents as our loader encodes them (list fields as JSON text)."""
    from cf_tasks.lmeval.docs import encode_doc

    item = {"id": "while-3", "family": "while", "prompt": "What can f(2) be?", "answer": [1, 3]}
    samples = write(tmp_path / "samples_executable_cf_while_2026.jsonl", [
        {"doc_id": 0, "doc": encode_doc(item), "target": "\\boxed{1, 3}", "filter": "none",
         "arguments": {"gen_args_0": {"arg_0": "ctx", "arg_1": "{}"}},
         "resps": [["\\boxed{1, 3}", "\\boxed{3}", "\\boxed{1, 3, 5}"]], "filtered_resps": [["x"]]},
    ])
    merged = tmp_path / "pool.jsonl"
    assert cf_select(["pool", "--source", str(samples), "--output", str(merged)]) == 0
    (row,) = read(merged)
    assert row["responses"] == ["\\boxed{1, 3}"] and row["answer"] == [1, 3]
