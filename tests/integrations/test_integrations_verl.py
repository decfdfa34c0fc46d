"""verl export: the RL parquet contract (pyarrow), compute_score, and verl's own loading code when it imports.

verl itself is not in the test extra (ray, a transformers pin and an antlr4
pin that conflicts with math-verify); its tests below skip unless
``verl.trainer.ppo.reward`` imports. See docs/integrations.md.
"""

import functools
import json
import os
import subprocess
import sys

import pytest

pq = pytest.importorskip("pyarrow.parquet")

from cf_tasks.integrations import common  # noqa: E402
from cf_tasks.integrations import verl as cf_verl  # noqa: E402
from training.data import problem_key  # noqa: E402

CONFIG = dict(families=["while", "if_else"], n_train=6, n_test=4, level="easy", seed=5, test_seed=1234)


@pytest.fixture(scope="module")
def export(tmp_path_factory):
    out = tmp_path_factory.mktemp("verl")
    report = cf_verl.export_verl(out, cf_verl.VerlExportConfig(**CONFIG))
    return out, report


def rows(path):
    return pq.read_table(path).to_pylist()


def test_rows_follow_verls_rl_layout(export):
    out, report = export
    table = pq.read_table(out / "train.parquet")
    assert table.column_names == ["data_source", "prompt", "ability", "reward_model", "extra_info"]
    assert str(table.schema.field("prompt").type) == "list<element: struct<role: string, content: string>>"
    train, test = rows(out / "train.parquet"), rows(out / "test.parquet")
    assert (len(train), len(test)) == (4 * 6, 4 * 4) == (report["train_rows"], report["test_rows"])
    assert {r["data_source"] for r in train} == {"executable_cf_while", "executable_cf_while_interventional",
                                                "executable_cf_if_else", "executable_cf_if_else_interventional"}
    for split, split_rows in (("train", train), ("test", test)):
        assert [r["extra_info"]["index"] for r in split_rows] == list(range(len(split_rows)))
        for row in split_rows:
            item = json.loads(row["extra_info"]["item"])
            assert row["prompt"] == [{"role": "user", "content": item["prompt"]}]
            assert row["ability"] == "code" and row["reward_model"]["style"] == "rule"
            assert json.loads(row["reward_model"]["ground_truth"]) == item["answer"]
            info = row["extra_info"]
            assert info["split"] == split and info["item_index"] == item["index"] and info["level"] == "easy"
            assert row["data_source"] == common.TaskRef(info["family"], info["variant"]).name
    # the test split is the lm-eval task's items for the same knobs; train shares no problem with it
    first = [json.loads(r["extra_info"]["item"]) for r in test if r["data_source"] == "executable_cf_while"]
    assert first == common.generate(common.TaskRef("while"), level="easy", n=4, seed=1234)
    test_keys = {problem_key(json.loads(r["extra_info"]["item"])) for r in test}
    assert not test_keys & {problem_key(json.loads(r["extra_info"]["item"])) for r in train}
    assert all(r["extra_info"]["seed"] == 5 for r in train) and all(r["extra_info"]["seed"] == 1234 for r in test)


def test_export_is_loadable_and_self_describing(export):
    out, report = export
    import datasets

    loaded = datasets.load_dataset(str(out))
    assert (len(loaded["train"]), len(loaded["test"])) == (report["train_rows"], report["test_rows"])
    saved = json.loads((out / "export_report.json").read_text())
    assert saved["config"]["families"] == ["while", "if_else"] and saved["tasks"]["executable_cf_while"]["test"] == 4
    assert f"custom_reward_function.path={out / 'executable_cf_reward.py'}" in (out / "README.md").read_text()
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temp files left


def test_compute_score_is_the_benchmark_metric(export):
    out, _ = export
    row = rows(out / "test.parquet")[0]
    gold = json.loads(row["reward_model"]["ground_truth"])
    right = "reasoning ... \\boxed{" + ", ".join(map(str, gold)) + "}"
    hedge = "\\boxed{" + ", ".join(map(str, gold + [987654])) + "}"
    gt, info, source = row["reward_model"]["ground_truth"], row["extra_info"], row["data_source"]
    assert cf_verl.compute_score(source, right, gt, info) == {"score": 1.0, "exact_match": 1.0, "f1": 1.0}
    hedged = cf_verl.compute_score(source, hedge, gt, info)
    assert hedged["score"] == hedged["exact_match"] == 0.0 and 0.0 < hedged["f1"] < 1.0
    assert cf_verl.compute_score(source, hedge, gt, info, metric="f1")["score"] == hedged["f1"]
    # verl adds keys to extra_info and may pass routing keywords; neither changes the score
    extra = {**info, "num_turns": None, "rollout_reward_scores": {}}
    assert cf_verl.compute_score(source, right, gt, extra, reward_router_address=None)["score"] == 1.0
    assert cf_verl.compute_score(source, right, gt, None)["score"] == 1.0  # family from data_source
    assert cf_verl.compute_score(source, "I am not sure", gt)["score"] == 0.0
    assert cf_verl.compute_score("executable_cf_gsm", "\\boxed{111}", '["111"]')["score"] == 1.0
    with pytest.raises(ValueError, match="metric must be one of"):
        cf_verl.compute_score(source, right, gt, metric="substring")
    with pytest.raises(ValueError, match="'openai/gsm8k' is not an executable-cf task"):
        cf_verl.compute_score("openai/gsm8k", right, gt)


def test_train_split_drops_banned_problems_and_tops_up_from_later_indices():
    task = common.TaskRef("if_else")
    config = cf_verl.VerlExportConfig(families=["if_else"], n_train=4, level="easy", seed=5)
    plain = common.generate(task, level="easy", n=6, seed=5)
    banned = frozenset(problem_key(item) for item in plain[1:3])
    kept, dropped = cf_verl._train_items(task, config, banned)
    assert dropped == 2 and kept == [plain[0], plain[3], plain[4], plain[5]]
    everything = frozenset(problem_key(i) for i in common.generate(task, level="easy", n=8, seed=5))
    with pytest.raises(ValueError, match="are test or evaluation problems; choose another --seed"):
        cf_verl._train_items(task, config, everything)
    with pytest.raises(ValueError, match=r"seed \(--train-seed\) and test_seed \(--test-seed\) are both 7"):
        cf_verl.VerlExportConfig(seed=7, test_seed=7).validate()


def test_cli_export_gives_the_same_bytes_in_another_process(export, tmp_path):
    out, _ = export
    cmd = [sys.executable, "-m", "cf_tasks.cli", "export", "--format", "verl", "-o", str(tmp_path),
           "--family", "while", "--family", "if_else", "--level", "easy", "--train-n", "6", "--n", "4",
           "--train-seed", "5", "-q"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONHASHSEED": "321"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "wrote 24 train and 16 test rows" in proc.stdout and "custom_reward_function.name=compute_score" in proc.stdout
    for name in ("train.parquet", "test.parquet"):
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes()
    bad = subprocess.run([*cmd[:-1], "--train-seed", "1234"], capture_output=True, text=True, timeout=600)
    assert bad.returncode == 2 and "seed (--train-seed) and test_seed (--test-seed) are both 1234" in bad.stderr


# -- against verl's own code ----------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _verl_modules():
    """verl's reward loader and RL dataset, or the reason they do not import (tried once: the import is slow)."""
    try:
        import verl.trainer.ppo.reward as reward
        from verl.utils.dataset.rl_dataset import RLHFDataset
    except Exception as exc:  # ImportError, or antlr4's ATN error when math-verify's antlr4 is installed
        return None, f"verl is not importable here: {type(exc).__name__}: {exc}"
    return (reward, RLHFDataset), None


def _import_verl():
    modules, reason = _verl_modules()
    if modules is None:
        pytest.skip(reason)
    return modules


def test_verl_rlhf_dataset_reads_the_export(export, tmp_path):
    _, RLHFDataset = _import_verl()
    from helpers.tiny_lm import build_tokenizer
    from omegaconf import OmegaConf

    out, report = export
    config = OmegaConf.create({"prompt_key": "prompt", "max_prompt_length": 1_000_000, "filter_overlong_prompts": True,
                               "filter_overlong_prompts_workers": 1, "cache_dir": str(tmp_path)})
    data = RLHFDataset(data_files=[str(out / "train.parquet")], tokenizer=build_tokenizer(), config=config)
    assert len(data) == report["train_rows"]
    row = data[3]
    assert row["raw_prompt"][0]["role"] == "user" and row["index"] == 3
    assert row["reward_model"]["ground_truth"] == json.dumps(json.loads(row["extra_info"]["item"])["answer"])


@pytest.mark.parametrize("path_style", ["file", "pkg"])
def test_verl_loads_compute_score_and_its_reward_manager_scores_responses(export, path_style):
    reward, _ = _import_verl()
    import numpy as np
    import torch
    from helpers.tiny_lm import build_tokenizer
    from omegaconf import OmegaConf
    from verl import DataProto

    out, _ = export
    path = str(out / "executable_cf_reward.py") if path_style == "file" else "pkg://cf_tasks.integrations.verl"
    config = OmegaConf.create({"reward": {
        "custom_reward_function": {"path": path, "name": "compute_score", "reward_kwargs": {}},
        "reward_manager": {"source": "register", "name": "naive"}, "sandbox_fusion": None}})
    tokenizer = build_tokenizer()
    manager = reward.load_reward_manager(config, tokenizer)
    row = rows(out / "test.parquet")[1]
    gold = json.loads(row["reward_model"]["ground_truth"])

    def run(response):
        ids = tokenizer(response, return_tensors="pt").input_ids
        batch = DataProto.from_dict(
            tensors={"responses": ids, "prompts": torch.zeros(1, 3, dtype=torch.long),
                     "attention_mask": torch.ones(1, 3 + ids.shape[1], dtype=torch.long)},
            non_tensors={key: np.array([row[key]], dtype=object)
                         for key in ("data_source", "reward_model", "extra_info")})
        return manager.loop.run_until_complete(manager.run_single(batch))

    good = run("so \\boxed{" + ", ".join(map(str, gold)) + "}")
    assert good["reward_score"] == 1.0 and good["reward_extra_info"]["f1"] == 1.0
    assert run("\\boxed{" + ", ".join(map(str, gold + [987654])) + "}")["reward_score"] == 0.0
