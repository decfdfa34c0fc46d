"""The same (family, variant, level, seed, index) is the same item everywhere.

Sources: ``cf-tasks generate`` (the reference), lm-eval's loader
(``custom_dataset: load_family``), reasoning-gym's ``create_dataset``, the
verl export's test split and the inspect task's dataset. Each framework is
skipped where its package is absent.
"""

import json

import pytest

from cf_tasks.cli import main as cf_tasks_main
from cf_tasks.integrations import common
from cf_tasks.jsonl import read_jsonl
from cf_tasks.lmeval.dataset import load_family
from cf_tasks.lmeval.docs import decode_doc

CASES = [  # family, variant, level, seed, index
    ("while", "counterfactual", "hard", 7, 3),
    ("if_else", "interventional", "easy", 3, 0),
    ("gsm", "counterfactual", "medium", 5, 2),
]
N = 4


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """``cf-tasks generate`` output per case, generated once per module."""
    cache = {}

    def items(family, variant, level, seed):
        key = (family, variant, level, seed)
        if key not in cache:
            out = tmp_path_factory.mktemp(f"{family}-{variant}")
            assert cf_tasks_main(["generate", "--family", family, "--variant", variant, "--level", level,
                                  "--n", str(N), "--seed", str(seed), "-o", str(out), "-q"]) == 0
            cache[key] = read_jsonl(out / "data.jsonl")
        return cache[key]

    return items


def from_lmeval(family, variant, level, seed, index):
    return decode_doc(load_family(family, variant, level, N, seed)["test"][index])


def from_reasoning_gym(family, variant, level, seed, index):
    rg = pytest.importorskip("reasoning_gym")
    import cf_tasks.integrations.reasoning_gym  # noqa: F401  (registers the datasets)

    entry = rg.create_dataset(common.TaskRef(family, variant).name, size=N, seed=seed, level=level)[index]
    assert entry["question"] == entry["metadata"]["item"]["prompt"]
    return entry["metadata"]["item"]


def from_verl(tmp_path, family, variant, level, seed, index):
    pq = pytest.importorskip("pyarrow.parquet")
    from cf_tasks.integrations.verl import VerlExportConfig, export_verl

    out = tmp_path / f"verl-{family}-{variant}"
    export_verl(out, VerlExportConfig(families=[family], variants=[variant], level=level, n_train=1, n_test=N,
                                      seed=seed + 1, test_seed=seed, decontaminate=False))
    (row,) = [r for r in pq.read_table(out / "test.parquet").to_pylist() if r["extra_info"]["item_index"] == index]
    item = json.loads(row["extra_info"]["item"])
    assert row["prompt"][-1]["content"] == item["prompt"] and json.loads(row["reward_model"]["ground_truth"]) == \
        item["answer"]
    return item


def from_inspect(family, variant, level, seed, index):
    pytest.importorskip("inspect_ai")
    from executable_cf._registry import TASKS

    sample = TASKS[common.TaskRef(family, variant).short_name](level=level, n=N, seed=seed).dataset[index]
    return {**sample.metadata, "prompt": sample.input[-1].content}


@pytest.mark.parametrize("family, variant, level, seed, index", CASES)
@pytest.mark.parametrize("framework", ["lm-eval", "reasoning-gym", "verl", "inspect"])
def test_item_is_identical_across_frameworks(tmp_path, reference, framework, family, variant, level, seed, index):
    expected = reference(family, variant, level, seed)[index]
    assert (expected["family"], expected["variant"], expected["level"], expected["seed"], expected["index"]) == \
        (family, variant, level, seed, index)
    if framework == "lm-eval":
        got = from_lmeval(family, variant, level, seed, index)
        version = got.pop("benchmark_version")  # lm-eval documents also say what produced them
        assert (version["family"], version["family_version"], version["prompt_version"]) == \
            (family, expected["generator_version"], expected["prompt_version"])
        if "target" not in expected:
            assert got.pop("target") == f"\\boxed{{{common.answer_text(expected)}}}"  # lm-eval's doc_to_target
    elif framework == "reasoning-gym":
        got = from_reasoning_gym(family, variant, level, seed, index)
    elif framework == "verl":
        got = from_verl(tmp_path, family, variant, level, seed, index)
    else:
        got = from_inspect(family, variant, level, seed, index)
    assert json.loads(json.dumps(got)) == expected


@pytest.mark.parametrize("family, variant", [("multi_r", "counterfactual"), ("gsm", "interventional")])
def test_a_response_scores_the_same_in_lmeval_reasoning_gym_and_verl(family, variant):
    """inspect's per-sample scores are checked against the same function in test_integrations_inspect.py."""
    rg = pytest.importorskip("reasoning_gym")
    import cf_tasks.integrations.reasoning_gym  # noqa: F401
    from cf_tasks.integrations.verl import compute_score, verl_row
    from cf_tasks.lmeval import math_scoring, scoring

    task = common.TaskRef(family, variant)
    doc = load_family(family, variant, None, 2, 9)["test"][1]
    data = rg.create_dataset(task.name, size=2, seed=9)
    entry = data[1]
    row = verl_row(entry["metadata"]["item"], split="test", index=0)
    gold = entry["answer"]
    responses = [f"\\boxed{{{gold}}}", f"\\boxed{{{gold}, 41}}", f"\\boxed{{{gold}", "The answer is 41.",
                 f"first \\boxed{{41}} then \\boxed{{{gold}}}"]
    process_results = math_scoring.process_results if family == "gsm" else scoring.process_results
    for response in responses:
        lmeval = process_results(doc, [response])
        verl = compute_score(row["data_source"], response, row["reward_model"]["ground_truth"], row["extra_info"])
        rg_scores = data.scores(response, entry)
        assert lmeval.get("exact_match", lmeval.get("acc")) == verl["exact_match"] == rg_scores["exact_match"], response
        if "f1" in lmeval:
            assert lmeval["f1"] == verl["f1"] == rg_scores["f1"], response
