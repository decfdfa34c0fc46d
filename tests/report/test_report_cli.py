import json

from matplotlib.image import imread
from report_fixtures import JUDGE_NAME, RuleJudgeLM, make_doc, write_lmeval_run

from cf_tasks.jsonl import read_jsonl
from cf_tasks.report.cli import main
from cf_tasks.report.loader import load_runs


def _mixed_run(out):
    """One model with responses that trigger each tag and each judge branch."""
    d = lambda i, **kw: make_doc("if_else", "counterfactual", i, answer=[7], prior=[5, 6, 7, 8], **kw)  # noqa: E731
    brute = "\n".join(f"If r = {v}: output {v + 3}." for v in range(1, 9)) + " \\boxed{7}"
    rows = [
        (d(0), "From the observation r = 4, so \\boxed{7}", {"exact_match": 1.0, "f1": 1.0}),
        (d(1), "The outputs can be \\boxed{5, 6, 7, 8}", {"exact_match": 0.0, "f1": 0.4}),
        (d(2), brute, {"exact_match": 1.0, "f1": 1.0}),
        (d(3, n_consistent=3), "Let's assume r = 2. \\boxed{5}", {"exact_match": 0.0, "f1": 0.0}),
        (d(4), "GARBLED no answer", {"exact_match": 0.0, "f1": 0.0}),
    ]
    ints = [(make_doc("if_else", "interventional", i, answer=[7]), "\\boxed{7}", {"exact_match": 1.0, "f1": 1.0})
            for i in range(5)]
    write_lmeval_run(out, "hf", {"executable_cf_if_else": rows, "executable_cf_if_else_interventional": ints},
                     model_args={"pretrained": "/ckpt/rl-7b"}, sanitized="rl")


def test_cli_full_report_with_tags_and_judge(tmp_path, two_model_dir, capsys):
    _mixed_run(tmp_path / "rl_out")
    out = tmp_path / "report"
    argv = [str(two_model_dir), f"rlvr={tmp_path / 'rl_out'}", "-o", str(out), "--tags",
            "--judge-model", JUDGE_NAME, "--judge-batch-size", "3"]
    assert main(argv) == 0
    assert "wrote" in capsys.readouterr().out
    md = (out / "report.md").read_text()
    assert "| rlvr | 40.0 | 48.0 | 100.0 | 100.0 | +60.0 | 5 | 5 |" in md
    assert "![counterfactual vs interventional exact match](cf_vs_int.png)" in md
    assert "## Failure-mode tags" in md and "## Judge scores" in md
    assert f"Judge `lm_eval:{JUDGE_NAME}`, rubric `judge_v1`" in md
    img = imread(out / "cf_vs_int.png")
    assert img.shape[0] > 200

    rows = read_jsonl(out / "samples.jsonl")
    assert len(rows) == 12 + 10 + 10
    rl = {r["doc_id"]: r for r in rows if r["run"] == "rlvr" and r["variant"] == "counterfactual"}
    assert rl[0]["tags"] == [] and rl[0]["parsed_answer"] == [7]
    assert rl[1]["tags"] == ["interventional_answer"]
    assert "brute_force" in rl[2]["tags"]
    assert "arbitrary_assumption" in rl[3]["tags"]
    assert rl[4]["tags"] == ["no_answer"] and rl[4]["parsed_answer"] is None
    assert rl[0]["judge"]["planning"] == 5 and rl[0]["judge"]["execution"] == 4
    assert rl[1]["judge"]["planning"] == 2 and rl[1]["judge"]["execution"] == 1
    assert rl[4]["judge"]["planning"] is None and "no planning score" in rl[4]["judge"]["error"]

    tags = {(r["run"], r["variant"]): r for r in read_jsonl(out / "tables" / "tags.jsonl") if r["family"] == "if_else"}
    assert tags[("rlvr", "counterfactual")]["interventional_answer"] == 0.2
    assert tags[("rlvr", "counterfactual")]["no_answer"] == 0.2
    judge = {(r["run"], r["variant"]): r for r in read_jsonl(out / "tables" / "judge.jsonl")}
    cf = judge[("rlvr", "counterfactual")]
    # replies: d0 (5,4), d1 (2,1), d2 boxed 7 (5,4), d3 (2,1), d4 unparsed
    assert cf["n"] == 5 and cf["unparsed"] == 1
    assert cf["planning"] == 3.5 and cf["execution"] == 2.5
    summary = read_jsonl(out / "tables" / "summary.jsonl")
    assert {(r["run"], r["family"]) for r in summary} >= {("rlvr", "if_else"), ("model-a", "while")}
    for name in ("scores", "by_n_consistent", "by_level"):
        assert (out / "tables" / f"{name}.jsonl").exists()

    # judging is resumable: a second run reuses every cached verdict
    calls = RuleJudgeLM.calls
    assert main(argv) == 0
    assert RuleJudgeLM.calls == calls
    cache = read_jsonl(out / "judge_cache.jsonl")
    # identical (prompt, response) pairs share one verdict
    runs = load_runs([two_model_dir, tmp_path / "rl_out"])
    distinct = {(s.doc["prompt"], s.response) for r in runs for s in r.all_samples()}
    assert len(cache) == len(distinct) < 32 and all(c["rubric"] == "judge_v1" for c in cache)


def test_cli_errors_exit_2(tmp_path, capsys):
    bad = tmp_path / "results_2026-01-01T00-00-00.1.json"
    bad.write_text(json.dumps({"hello": 1}))
    assert main([str(bad), "-o", str(tmp_path / "o")]) == 2
    assert "not an lm-eval results file" in capsys.readouterr().err
    write_lmeval_run(tmp_path / "ok", "m", {"executable_cf_while": [(make_doc("while", "counterfactual", 0), "x",
                                                                     {"exact_match": 0.0, "f1": 0.0})]})
    assert main([str(tmp_path / "ok"), "-o", str(tmp_path / "o"), "--judge-endpoint", "http://127.0.0.1:9/v1"]) == 2
    assert "--judge-model" in capsys.readouterr().err


def test_cli_results_only_partial_run(tmp_path):
    write_lmeval_run(tmp_path / "in", "cf_oracle", {"executable_cf_while": [(make_doc("while", "counterfactual", 0), "x",
                                                                            {"exact_match": 1.0, "f1": 1.0})]},
                     samples=False)
    assert main([str(tmp_path / "in"), "-o", str(tmp_path / "o"), "--tags"]) == 0
    md = (tmp_path / "o" / "report.md").read_text()
    assert "| cf_oracle | 100.0 |" in md
    assert "No logged samples" in md and "--log_samples" in md
