"""``cf-tasks`` as users run it (console script in a subprocess)."""

import json
import subprocess

import pytest

PROGRAM = "def f(x, r):\n    if r > 2:\n        return (x * r) % 5\n    return x + r\n"


def cf_tasks(*args, check=True):
    proc = subprocess.run(["cf-tasks", *args], capture_output=True, text=True, timeout=300)
    if check:
        assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def test_generate_writes_loadable_data_and_card(tmp_path):
    out = tmp_path / "ifelse"
    proc = cf_tasks("generate", "--family", "if_else", "--variant", "counterfactual", "--n", "25", "--seed", "5",
                    "--level", "easy", "-o", str(out))
    assert "wrote 25 items" in proc.stdout and "filter counts" in proc.stdout
    import datasets

    ds = datasets.load_dataset("json", data_files=str(out / "data.jsonl"), split="train")
    assert len(ds) == 25 and ds[0]["family"] == "if_else" and ds[0]["level"] == "easy"
    card = (out / "README.md").read_text()
    assert card.startswith("---\nconfigs:") and "seed: 5" in card and "level: easy" in card
    by_folder = datasets.load_dataset(str(out), split="test")
    assert len(by_folder) == 25
    report = json.loads((out / "generation_report.json").read_text())
    assert report["accepted"] == 25
    # the same command gives the same bytes
    again = tmp_path / "again"
    cf_tasks("generate", "--family", "if_else", "--n", "25", "--seed", "5", "--level", "easy", "-o", str(again),
             "-q")
    assert (again / "data.jsonl").read_bytes() == (out / "data.jsonl").read_bytes()


def test_generate_rejects_unknown_family_and_knob(tmp_path):
    proc = cf_tasks("generate", "--family", "nope", "-o", str(tmp_path), check=False)
    assert proc.returncode == 2 and "Installed families: " in proc.stderr and "if_else" in proc.stderr
    proc = cf_tasks("generate", "--family", "if_else", "--set", "bogus=1", "-o", str(tmp_path), check=False)
    assert proc.returncode == 2 and "bogus" in proc.stderr
    assert not (tmp_path / "data.jsonl").exists()


def _records(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_solve_fills_answers_by_execution(tmp_path):
    src = tmp_path / "in.jsonl"
    _records(src, [
        {"id": "a", "program": PROGRAM, "entry_point": "f", "latents": {"r": {"low": 0, "high": 6}},
         "observed": {"inputs": {"x": 2}, "output": 4}, "intervention": {"x": 3}, "variant": "counterfactual"},
        {"id": "b", "program": PROGRAM, "entry_point": "f", "latents": {"r": [0, 1, 2, 3, 4, 5, 6]},
         "observed": {"inputs": {"x": 2}, "output": 4}, "intervention": {"x": 3}, "variant": "interventional",
         "latent_values": {"r": 2}},
    ])
    out = tmp_path / "out.jsonl"
    cf_tasks("solve", str(src), "-o", str(out))
    rows = [json.loads(l) for l in out.read_text().splitlines()]
    # brute force over the latent domain
    consistent = [r for r in range(7) if (2 * r % 5 if r > 2 else 2 + r) == 4]
    expected = sorted({(3 * r % 5 if r > 2 else 3 + r) for r in consistent})
    assert rows[0]["answer"] == expected
    assert rows[0]["n_consistent"] == len(consistent)
    assert rows[1]["answer"] == [5]
    assert "prompt" in rows[0] and "f(x=3)" in rows[0]["prompt"]


def test_solve_names_line_and_field_of_a_bad_record(tmp_path):
    src = tmp_path / "bad.jsonl"
    _records(src, [{"id": "a", "program": PROGRAM, "entry_point": "f", "latents": {"r": [1]},
                    "observed": {"inputs": {"x": 1}, "output": 2}, "intervention": {"z": 3}}])
    out = tmp_path / "out.jsonl"
    proc = cf_tasks("solve", str(src), "-o", str(out), check=False)
    assert proc.returncode == 2
    assert "bad.jsonl:1: field 'intervention'" in proc.stderr
    assert not out.exists()


def test_solve_of_a_missing_file_says_so_and_writes_nothing(tmp_path):
    out = tmp_path / "out.jsonl"
    proc = cf_tasks("solve", str(tmp_path / "nope.jsonl"), "-o", str(out), check=False)
    assert proc.returncode == 2 and f"records file not found: {tmp_path / 'nope.jsonl'}" in proc.stderr
    assert not out.exists() and "Traceback" not in proc.stderr


def test_families_lists_builtins():
    proc = cf_tasks("families")
    for name in ("if_else", "if_else_long", "while", "multi_r"):
        assert name in proc.stdout
    assert "executable-cf" in proc.stdout


def test_solve_reports_why_a_program_fails(tmp_path):
    src = tmp_path / "syntax.jsonl"
    _records(src, [{"id": "s1", "program": "def f(x, r):\n    return x +* r\n", "entry_point": "f",
                    "latents": {"r": [1, 2]}, "observed": {"inputs": {"x": 1}, "output": 2},
                    "intervention": {"x": 3}}])
    proc = cf_tasks("solve", str(src), "-o", str(tmp_path / "out.jsonl"), check=False)
    assert proc.returncode == 2
    assert "record 's1'" in proc.stderr and "SyntaxError" in proc.stderr
    assert not (tmp_path / "out.jsonl").exists()
