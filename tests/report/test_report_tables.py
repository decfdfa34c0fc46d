import pytest
from report_fixtures import make_doc, rows_with_em, write_lmeval_run

from cf_tasks.report import tables as T
from cf_tasks.report.loader import load_runs


def _summary(runs):
    return {(r["run"], r["family"]): r for r in T.summary_rows(runs)}


def test_summary_numbers_and_drop(two_model_dir):
    runs = load_runs([two_model_dir])
    s = _summary(runs)
    a_if = s[("model-a", "if_else")]
    assert a_if["cf_exact_match"] == pytest.approx(0.25)
    assert a_if["int_exact_match"] == pytest.approx(0.75)
    assert a_if["drop"] == pytest.approx(0.50)  # interventional - counterfactual
    assert s[("model-a", "while")]["drop"] == pytest.approx(1.0)
    b_while = s[("model-b", "while")]
    assert b_while["cf_exact_match"] == pytest.approx(0.5)
    assert b_while["int_exact_match"] is None and b_while["drop"] is None  # partial run


def test_family_tables_markdown(two_model_dir):
    runs = load_runs([two_model_dir])
    tables = {t.title: t for t in T.family_tables(runs)}
    assert list(tables) == ["if_else", "while"]
    md = tables["if_else"].to_markdown()
    assert "| model-a | 25.0 | 25.0 | 75.0 | 75.0 | +50.0 | 4 | 4 |" in md
    assert "| model-b | 50.0 | 50.0 | 100.0 | 100.0 | +50.0 | 4 | 4 |" in md
    assert "| model-b | 50.0 | 50.0 | — | — | — | 2 | — |" in tables["while"].to_markdown()
    overview = T.overview_table(runs).to_markdown()
    assert "| model-a | 25.0 (+50.0) | 0.0 (+100.0) |" in overview


def test_samples_fallback_when_results_missing(tmp_path):
    rows = {"executable_cf_while": rows_with_em("while", "counterfactual", [1, 1, 1, 0])}
    write_lmeval_run(tmp_path, "m", rows, results=False)
    (score,) = T.scores(load_runs([tmp_path]))
    assert score.source == "samples" and score.em == pytest.approx(0.75) and score.n == 4


def test_gsm_acc_metric(tmp_path):
    rows = []
    for i, acc in enumerate([1, 0, 0, 0, 1]):
        doc = {"id": f"g{i}", "family": "gsm", "variant": "counterfactual", "level": 1, "answer": [3], "prompt": "q"}
        rows.append((doc, "\\boxed{3}", {"acc": float(acc)}))
    write_lmeval_run(tmp_path, "m", {"executable_cf_gsm": rows})
    (score,) = T.scores(load_runs([tmp_path]))
    assert score.family == "gsm" and score.em == pytest.approx(0.4) and score.f1 is None


def test_breakdowns_by_n_consistent_and_level(tmp_path):
    rows = []
    # n_consistent 1 -> right, 2 -> right, 3 and 4 -> wrong, 7 -> right; levels easy/hard
    for i, (n, em, level) in enumerate([(1, 1, "easy"), (2, 1, "easy"), (3, 0, "hard"), (4, 0, "hard"), (7, 1, "medium")]):
        doc = make_doc("if_else", "counterfactual", i, n_consistent=n, level=level)
        rows.append((doc, "x", {"exact_match": float(em), "f1": float(em)}))
    write_lmeval_run(tmp_path, "m", {"executable_cf_if_else": rows})
    runs = load_runs([tmp_path])
    by_n = {r["bucket"]: r for r in T.breakdown_rows(runs, "n_consistent")}
    assert list(by_n) == ["1", "2", "3–4", "5–8"]
    assert by_n["3–4"]["exact_match"] == 0.0 and by_n["3–4"]["n"] == 2
    assert by_n["5–8"]["exact_match"] == 1.0
    by_level = [(r["bucket"], r["exact_match"], r["n"]) for r in T.breakdown_rows(runs, "level")]
    assert by_level == [("easy", 1.0, 2), ("medium", 1.0, 1), ("hard", 0.0, 2)]  # difficulty order
    (table,) = T.breakdown_tables(runs, "level")
    assert "| hard | 0.0 (2) |" in table.to_markdown()


def test_pow2_bucket():
    assert [T.pow2_bucket(n)[1] for n in (1, 2, 3, 4, 5, 8, 9, 100)] == ["1", "2", "3–4", "3–4", "5–8", "5–8", "9–16", "65–128"]
    assert T.pow2_bucket(None) is None
