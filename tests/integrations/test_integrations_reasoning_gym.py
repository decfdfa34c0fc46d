"""Every family and variant as a reasoning-gym dataset, through reasoning-gym's own registry."""

import pickle

import pytest

reasoning_gym = pytest.importorskip("reasoning_gym")

import cf_tasks.integrations.reasoning_gym as cf_rg  # noqa: E402  (registers the datasets)
from cf_tasks.integrations import common  # noqa: E402


def test_every_family_and_variant_is_registered_with_its_curriculum():
    from reasoning_gym.factory import DATASETS, create_curriculum

    names = {t.name for t in common.task_refs()}
    assert names <= set(DATASETS) and set(cf_rg.DATASET_NAMES) == names
    assert {"executable_cf_while", "executable_cf_while_interventional", "executable_cf_gsm"} <= names
    assert cf_rg.register() == cf_rg.DATASET_NAMES  # idempotent
    curriculum = create_curriculum("executable_cf_while")
    assert curriculum.generate_configuration({"seed": 1, "size": 2}).level == "medium"
    curriculum.increment_attr_level("level")
    assert curriculum.generate_configuration({"seed": 1, "size": 2}).level == "hard"


def test_items_follow_the_conventions_and_are_the_generator_items():
    data = reasoning_gym.create_dataset("executable_cf_while", size=6, seed=7, level="hard")
    assert len(data) == 6 and len(list(data)) == 6
    entry = data[4]
    generated = common.generate(common.TaskRef("while"), level="hard", n=6, seed=7)[4]
    assert entry["question"] == generated["prompt"] and entry["metadata"]["item"] == generated
    meta = entry["metadata"]
    assert (meta["source_dataset"], meta["source_index"], meta["level"], meta["seed"]) == \
        ("executable_cf_while", 4, "hard", 7)
    assert meta["gold"] == generated["answer"] and meta["difficulty"]["level"] == "hard"
    assert isinstance(entry["answer"], str) and data.score_answer(entry["answer"], entry) == 1.0
    with pytest.raises(IndexError):
        data[6]
    assert pickle.loads(pickle.dumps(data))[4] == entry


def test_score_answer_is_set_exact_match_with_f1_available():
    data = reasoning_gym.create_dataset("executable_cf_if_else", size=3, seed=1, level="easy")
    entry = data[0]
    gold = entry["answer"]
    hedge = f"{gold}, 987654"
    assert data.score_answer(f"Reasoning... so \\boxed{{{gold}}}", entry) == 1.0  # a whole response
    assert data.score_answer(f"<answer>{gold}</answer>", entry) == 1.0
    assert data.score_answer("{" + gold + "}", entry) == 1.0  # an extracted answer
    assert data.score_answer(hedge, entry) == 0.0  # reasoning-gym's substring credit would pay for this
    assert data.score_answer("\\boxed{" + gold, entry) == 0.0  # a malformed box is not rescued
    assert data.score_answer(None, entry) == 0.0 and data.score_answer("", entry) == 0.0
    f1 = data.scores(hedge, entry)["f1"]
    assert 0.0 < f1 < 1.0
    by_f1 = reasoning_gym.create_dataset("executable_cf_if_else", size=3, seed=1, level="easy", metric="f1")
    assert by_f1.score_answer(hedge, by_f1[0]) == f1


def test_composite_routes_scoring_back_and_math_is_accuracy():
    from reasoning_gym.composite import CompositeConfig, CompositeDataset, DatasetSpec

    mix = CompositeDataset(CompositeConfig(size=6, seed=3, datasets=[
        DatasetSpec("executable_cf_if_else_interventional", 1.0, {"level": "easy"}),
        DatasetSpec("executable_cf_gsm", 1.0, {})]))
    sources = set()
    for entry in mix:
        sources.add(entry["metadata"]["source_dataset"])
        assert mix.score_answer(entry["answer"], entry) == 1.0
        assert mix.score_answer("\\boxed{-1}", entry) == 0.0
    assert sources == {"executable_cf_if_else_interventional", "executable_cf_gsm"}


def test_bad_config_fails_at_creation_with_the_field():
    with pytest.raises(ValueError, match="no level 'extreme'"):
        reasoning_gym.create_dataset("executable_cf_while", size=2, seed=1, level="extreme")
    with pytest.raises(ValueError, match="unknown config field"):
        reasoning_gym.create_dataset("executable_cf_while", size=2, seed=1, config={"bogus": 1})
    with pytest.raises(ValueError, match="metric must be one of"):
        reasoning_gym.create_dataset("executable_cf_while", size=2, seed=1, metric="substring")
    with pytest.raises(TypeError):
        reasoning_gym.create_dataset("executable_cf_while", sizee=2)
