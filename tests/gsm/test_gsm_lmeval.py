"""The gsm tasks inside lm-eval: YAMLs, the dataset loader, and both reference solvers end to end."""

from pathlib import Path

import pytest
import yaml

import cf_tasks

TASKS = Path(cf_tasks.__file__).parent / "tasks" / "gsm"


class _Loader(yaml.SafeLoader):
    pass


_Loader.add_constructor("!function", lambda loader, node: ("function", loader.construct_scalar(node)))


def _load(name):
    return yaml.load((TASKS / name).read_text(), Loader=_Loader)


def test_yamls_follow_the_contract():
    base = _load("_gsm_template_yaml")
    assert base["custom_dataset"] == ("function", "cf_tasks.lmeval.dataset.load_family")
    assert base["process_results"] == ("function", "cf_tasks.lmeval.math_scoring.process_results")
    assert base["generation_kwargs"] == {"until": [], "max_gen_toks": 2048, "do_sample": False}
    assert base["metric_list"] == [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}]
    for name, variant in (("executable_cf_gsm", "counterfactual"),
                          ("executable_cf_gsm_interventional", "interventional")):
        task = _load(f"{name}.yaml")
        assert task["task"] == name and task["include"] == "_gsm_template_yaml"
        meta = task["metadata"]
        assert {k: meta[k] for k in ("family", "variant", "level", "n", "seed")} == {
            "family": "gsm", "variant": variant, "level": "medium", "n": 400, "seed": 1234}
        from cf_tasks.families.gsm import FAMILY

        assert meta["family_version"] == FAMILY.version and meta["release_name"] == f"math-gsm-{variant}"
        assert task["metadata"]["version"] == 2.0
    group = _load("executable_cf_math.yaml")
    assert group["task"] == ["executable_cf_gsm", "executable_cf_gsm_interventional"]
    assert group["aggregate_metric_list"] == [{"metric": "acc", "aggregation": "mean", "weight_by_size": True}]


def test_dataset_loader_builds_the_test_split():
    from cf_tasks.lmeval.dataset import load_family

    data = load_family(family="gsm", variant="counterfactual", level="hard", n=25, seed=4, pretrained="ignored")
    rows = data["test"]
    assert len(rows) == 25 and rows[0]["family"] == "gsm" and rows[0]["level"] == "hard"
    assert rows[0]["target"] == rows[0]["answer"].strip('[]"')


def test_lm_eval_reference_solvers_end_to_end():
    """``cf_oracle`` scores 1.0 on both tasks; ``cf_no_abduction`` drops >= 25 points on the counterfactual one."""
    lm_eval = pytest.importorskip("lm_eval")
    from lm_eval.tasks import TaskManager

    from cf_tasks.lmeval.models import NoAbductionLM, OracleLM

    manager = TaskManager(include_path=str(TASKS))
    scores = {}
    for name, model in (("oracle", OracleLM()), ("no_abduction", NoAbductionLM())):
        out = lm_eval.simple_evaluate(model=model, tasks=["executable_cf_math"], limit=30, task_manager=manager,
                                      metadata={"n": 30})
        scores[name] = {task: out["results"][task]["acc,none"]
                        for task in ("executable_cf_gsm", "executable_cf_gsm_interventional", "executable_cf_math")}
    assert set(scores["oracle"].values()) == {1.0}
    drop = scores["no_abduction"]["executable_cf_gsm_interventional"] - scores["no_abduction"]["executable_cf_gsm"]
    assert drop >= 0.25, scores
