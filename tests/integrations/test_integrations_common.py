"""The shared layer of the framework adapters: names, gold text, scores, frozen items."""

import json
from pathlib import Path

import pytest

from cf_tasks.integrations import common
from cf_tasks.jsonl import write_jsonl


def test_names_follow_the_lmeval_tasks_and_cover_every_family_and_variant():
    refs = common.task_refs()
    names = {r.name for r in refs}
    from cf_tasks.tasks import tasks_dir

    shipped = {p.stem for p in Path(tasks_dir()).rglob("executable_cf_*.yaml")}
    # every per-family lm-eval task is an integration task, and nothing else is
    assert names == {n for n in shipped if n not in {"executable_cf_code", "executable_cf_counterfactual",
                                                     "executable_cf_interventional", "executable_cf_math"}}
    assert common.find_task("while_interventional") == common.TaskRef("while", "interventional")
    assert common.find_task("executable_cf_if_else_long").family == "if_else_long"
    with pytest.raises(ValueError, match="unknown executable-cf task 'nope'.*executable_cf_while"):
        common.find_task("nope")


def test_answer_text_and_scores_are_the_benchmark_metric():
    code = common.generate(common.TaskRef("multi_r"), n=2, seed=3)[1]
    text = common.answer_text(code)
    assert common.score("multi_r", f"so \\boxed{{{text}}}", code["answer"]) == {"exact_match": 1.0, "f1": 1.0}
    hedge = common.score("multi_r", f"\\boxed{{{text}, 123456}}", code["answer"])
    assert hedge["exact_match"] == 0.0 and 0.0 < hedge["f1"] < 1.0
    math = common.generate(common.TaskRef("gsm"), n=1, seed=3)[0]
    assert common.answer_text(math) == math["target"] and common.metric_names("gsm") == ("acc",)
    assert common.score("gsm", f"\\boxed{{{math['target']}}}", math["answer"])["exact_match"] == 1.0
    assert common.named_scores(("acc",), {"exact_match": 1.0, "f1": 1.0}) == {"acc": 1.0}


def test_load_items_reads_generate_folders_and_names_file_line_field(tmp_path):
    items = common.generate(common.TaskRef("if_else"), n=3, seed=2)
    write_jsonl(tmp_path / "gen" / "data.jsonl", items)
    assert common.load_items(tmp_path / "gen") == json.loads(json.dumps(items))
    bad = [items[0], {k: v for k, v in items[1].items() if k != "answer"}]
    write_jsonl(tmp_path / "bad.jsonl", bad)
    with pytest.raises(ValueError, match=r"bad.jsonl:2: field 'answer': missing.*cf-tasks solve"):
        common.load_items(tmp_path / "bad.jsonl")
    with pytest.raises(FileNotFoundError, match="no items at"):
        common.load_items(tmp_path / "absent")
