import json

import pytest
from report_fixtures import TS, rows_with_em, write_lmeval_run

from cf_tasks.report.loader import LmEvalOutputError, classify_task, load_runs, parse_run_arg


def test_classify_task_names():
    assert classify_task("executable_cf_if_else") == ("if_else", "counterfactual")
    assert classify_task("executable_cf_if_else_long_interventional") == ("if_else_long", "interventional")
    assert classify_task("executable_cf_multi_r_counterfactual") == ("multi_r", "counterfactual")
    assert classify_task("executable_cf_gsm_interventional") == ("gsm", "interventional")
    assert classify_task("gsm8k") is None


def test_loads_two_models_with_labels_and_groups_skipped(two_model_dir):
    runs = load_runs([two_model_dir])
    assert [r.label for r in runs] == ["model-a", "model-b"]
    a, b = runs
    # group entries (executable_cf, executable_cf_code) are not tasks
    assert sorted(a.tasks) == sorted([
        "executable_cf_if_else", "executable_cf_if_else_interventional",
        "executable_cf_while", "executable_cf_while_interventional",
    ])
    assert a.tasks["executable_cf_if_else"].em == pytest.approx(0.25)
    assert a.tasks["executable_cf_if_else"].n == 4
    assert a.families() == ["if_else", "while"]
    assert len(a.samples["executable_cf_if_else"]) == 4
    s = a.samples["executable_cf_if_else"][0]
    # docs are decoded (json_fields) and responses taken from filtered_resps
    assert s.doc["latents"] == {"r": list(range(1, 11))}
    assert s.doc["prior_answer"] == [0, 100]
    assert s.response.startswith("So the answer is \\boxed{")
    assert s.em == 1.0 and s.f1 == 1.0
    assert any("--limit 4" in w for w in b.warnings)


def test_explicit_labels_and_duplicate_labels(tmp_path):
    rows = {"executable_cf_if_else": rows_with_em("if_else", "counterfactual", [1, 0])}
    write_lmeval_run(tmp_path / "x", "cf_oracle", rows)
    write_lmeval_run(tmp_path / "y", "cf_oracle", rows)
    runs = load_runs([tmp_path / "x", tmp_path / "y"])
    assert len({r.label for r in runs}) == 2  # disambiguated
    runs = load_runs([tmp_path / "x", tmp_path / "y"], ["base", "rl"])
    assert [r.label for r in runs] == ["base", "rl"]
    assert parse_run_arg(f"sft={tmp_path}") == ("sft", str(tmp_path))
    assert parse_run_arg(str(tmp_path)) == (None, str(tmp_path))


def test_results_file_path_and_samples_only(tmp_path):
    rows = {"executable_cf_while": rows_with_em("while", "counterfactual", [1, 1, 0])}
    folder = write_lmeval_run(tmp_path / "out", "cf_oracle", rows)
    (run,) = load_runs([folder / f"results_{TS}.json"])
    assert len(run.samples["executable_cf_while"]) == 3  # sibling samples picked up
    # samples without a results JSON (run killed before aggregation): metrics from samples
    folder2 = write_lmeval_run(tmp_path / "out2", "m", rows, results=False)
    (run2,) = load_runs([folder2])
    assert run2.tasks == {}
    assert any("no results JSON" in w for w in run2.warnings)


def test_results_only_run_has_no_samples(tmp_path):
    rows = {"executable_cf_while": rows_with_em("while", "counterfactual", [1, 0])}
    write_lmeval_run(tmp_path, "m", rows, samples=False)
    (run,) = load_runs([tmp_path])
    assert run.tasks["executable_cf_while"].em == 0.5
    assert run.samples == {}
    assert any("--log_samples" in w for w in run.warnings)


def test_truncated_last_sample_line_is_skipped(tmp_path):
    rows = {"executable_cf_while": rows_with_em("while", "counterfactual", [1, 0, 1])}
    folder = write_lmeval_run(tmp_path, "m", rows)
    path = folder / f"samples_executable_cf_while_{TS}.jsonl"
    text = path.read_text()
    path.write_text(text[: len(text) - 40])  # killed mid-write
    (run,) = load_runs([tmp_path])
    assert len(run.samples["executable_cf_while"]) == 2
    assert any("truncated last line" in w for w in run.warnings)


def test_later_invocation_overrides_per_task(tmp_path):
    write_lmeval_run(tmp_path, "m", {"executable_cf_while": rows_with_em("while", "counterfactual", [0, 0])},
                     ts="2026-01-01T00-00-00.000001")
    write_lmeval_run(tmp_path, "m", {"executable_cf_while": rows_with_em("while", "counterfactual", [1, 1]),
                                     "executable_cf_if_else": rows_with_em("if_else", "counterfactual", [1])},
                     ts="2026-01-02T00-00-00.000001")
    (run,) = load_runs([tmp_path])
    assert run.tasks["executable_cf_while"].em == 1.0
    assert all(s.em == 1.0 for s in run.samples["executable_cf_while"])
    assert len(run.result_files) == 2


def test_clear_errors_for_non_lmeval_files(tmp_path):
    bad = tmp_path / "results_2026-01-01T00-00-00.1.json"
    bad.write_text(json.dumps({"accuracy": 0.3}))
    with pytest.raises(LmEvalOutputError, match=r"results_2026.*missing key\(s\) 'results', 'config'"):
        load_runs([bad])
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    with pytest.raises(LmEvalOutputError, match="notes.txt: not an lm-eval output file"):
        load_runs([other])
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LmEvalOutputError, match="no lm-eval outputs found"):
        load_runs([empty])
    with pytest.raises(LmEvalOutputError, match="no such file"):
        load_runs([tmp_path / "missing"])
    broken = tmp_path / "b" / "m"
    broken.mkdir(parents=True)
    (broken / f"samples_executable_cf_while_{TS}.jsonl").write_text('{"doc_id": 0}\n{"x": 1}\n')
    with pytest.raises(LmEvalOutputError, match=r"samples_executable_cf_while_.*\.jsonl:1: .*missing field 'doc'"):
        load_runs([tmp_path / "b"])


def test_only_foreign_tasks_is_an_error(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / f"results_{TS}.json").write_text(json.dumps({"results": {"gsm8k": {"acc,none": 0.5}}, "config": {}}))
    with pytest.raises(LmEvalOutputError, match="none for executable_cf tasks"):
        load_runs([tmp_path])


def test_reads_files_written_by_real_lm_eval(tmp_path):
    from report_fixtures import run_real_lmeval

    out = run_real_lmeval(tmp_path, n=4)
    assert list(out.glob("*/results_*.json")) and list(out.glob("*/samples_executable_cf_toy_*.jsonl"))
    (run,) = load_runs([out])
    assert run.model == "cf-report-test-echo"
    assert sorted(run.tasks) == ["executable_cf_toy", "executable_cf_toy_interventional"]
    assert run.tasks["executable_cf_toy"].em == 0.5  # items 0 and 2 right
    samples = run.samples["executable_cf_toy"]
    assert [s.em for s in sorted(samples, key=lambda s: s.doc_id)] == [1.0, 0.0, 1.0, 0.0]
    assert samples[0].doc["latents"] == {"r": list(range(1, 11))}
    assert {s.family for s in samples} == {"toy"}


def test_foreign_model_folder_beside_ours_is_skipped(tmp_path):
    write_lmeval_run(tmp_path, "m", {"executable_cf_while": rows_with_em("while", "counterfactual", [1])})
    other = tmp_path / "other_model"
    other.mkdir()
    (other / f"results_{TS}.json").write_text(json.dumps({"results": {"gsm8k": {"acc,none": 0.5}}, "config": {}}))
    (run,) = load_runs([tmp_path])
    assert run.label == "m"
