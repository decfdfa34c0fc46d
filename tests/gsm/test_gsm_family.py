"""The gsm family plugin: schema, twins, filters, determinism, reference solvers."""

import hashlib
import json
import os
import subprocess
import sys
from fractions import Fraction as F

import pytest

from cf_tasks.families.gsm import FAMILY, LEVELS, GsmConfig
from cf_tasks.families.gsm.family import FILTERS, Candidate, check, make_item
from cf_tasks.families.gsm.graph import Quantity, QuantityGraph, add, mul
from cf_tasks.families.gsm.lint import check_twins
from cf_tasks.families.gsm.templates import DOMAINS, Story
from cf_tasks.jsonl import dumps
from cf_tasks.lmeval.math_scoring import process_results
from plugins import FAMILIES

REQUIRED = {"id", "family", "level", "seed", "index", "generator_version", "config", "variant", "prompt",
            "answer", "prior_answer", "graph", "hidden", "hidden_value", "known_values", "observed",
            "intervention", "story", "target"}


@pytest.fixture(scope="module")
def medium():
    config = FAMILY.config("medium")
    return {v: FAMILY.generate_items(variant=v, n=200, seed=1234, config=config, level="medium")
            for v in ("counterfactual", "interventional")}


def test_registered_through_the_entry_point():
    assert FAMILIES.get("gsm") is FAMILY
    assert set(FAMILY.levels) == {"easy", "medium", "hard"}


def test_schema(medium):
    for item in medium["counterfactual"].items:
        assert REQUIRED <= set(item)
        assert item["family"] == "gsm" and item["variant"] == "counterfactual"
        assert isinstance(item["answer"], list) and len(item["answer"]) == 1
        assert isinstance(item["answer"][0], str) and F(item["answer"][0]) > 0
        assert item["target"] == item["answer"][0]
        assert item["prompt"].rstrip().endswith("(only the number, without units).")
        assert "\\boxed{}" in item["prompt"]
        assert "stated_values" not in item
        json.loads(dumps(item))  # canonical JSON
    assert [i["index"] for i in medium["counterfactual"].items] == list(range(200))
    assert len({i["id"] for i in medium["counterfactual"].items}) == 200


def test_twins_share_everything_but_the_stated_hidden_value(medium):
    for cf, iv in zip(medium["counterfactual"].items, medium["interventional"].items):
        for key in ("id", "graph", "hidden", "hidden_value", "known_values", "observed", "intervention", "answer"):
            assert cf[key] == iv[key], key
        assert iv["stated_values"] == {iv["hidden"]: iv["hidden_value"]}
        assert cf["prompt"] != iv["prompt"]
        # the same story, observation and question; one sentence stating the hidden value comes before the question
        assert check_twins(cf, iv) == []


def test_oracle_scores_one_and_no_abduction_shows_the_drop(medium):
    acc = {}
    for variant, result in medium.items():
        oracle = no_abd = 0.0
        for item in result.items:
            doc = {k: v for k, v in item.items() if k not in ("answer", "target", "prior_answer")}
            if variant == "counterfactual":
                doc.pop("hidden_value")  # the counterfactual oracle must abduce, not read the truth
            oracle += process_results(item, [f"\\boxed{{{FAMILY.oracle_answer(doc)[0]}}}"])["acc"]
            no_abd += process_results(item, [f"\\boxed{{{FAMILY.no_abduction_answer(doc)[0]}}}"])["acc"]
        acc[variant] = (oracle / len(result.items), no_abd / len(result.items))
    assert acc["counterfactual"][0] == acc["interventional"][0] == 1.0
    assert acc["counterfactual"][1] <= acc["interventional"][1] - 0.25
    assert acc["interventional"][1] == 1.0


def test_report_counts_every_filter(medium):
    report = medium["counterfactual"].report
    assert set(report["rejected"]) == set(FILTERS)
    assert report["accepted"] == 200
    assert report["attempts"] == 200 + sum(report["rejected"].values())
    assert report["rejected"]["implausible"] > 0  # e.g. a discount larger than the bill, a non-cent share


def test_prefix_property_and_seed_independence():
    config = FAMILY.config("easy")
    short = FAMILY.generate_items(variant="counterfactual", n=10, seed=5, config=config, level="easy").items
    long = FAMILY.generate_items(variant="counterfactual", n=30, seed=5, config=config, level="easy").items
    assert short == long[:10]
    other = FAMILY.generate_items(variant="counterfactual", n=10, seed=6, config=config, level="easy").items
    assert [i["prompt"] for i in short] != [i["prompt"] for i in other]
    assert short[1]["prompt"] != other[0]["prompt"]  # seeds never share streams


_SCRIPT = """
import hashlib, sys
from cf_tasks.families.gsm import FAMILY
from cf_tasks.jsonl import dumps
h = hashlib.sha256()
for level in ("easy", "medium", "hard"):
    for variant in ("counterfactual", "interventional"):
        r = FAMILY.generate_items(variant=variant, n=40, seed=99, config=FAMILY.config(level), level=level)
        for item in r.items:
            h.update(dumps(item).encode())
print(h.hexdigest())
"""


def test_byte_identical_across_processes_and_hash_seeds():
    digests = set()
    for hash_seed in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        out = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        digests.add(out.stdout.strip())
    h = hashlib.sha256()
    for level in ("easy", "medium", "hard"):
        for variant in ("counterfactual", "interventional"):
            r = FAMILY.generate_items(variant=variant, n=40, seed=99, config=FAMILY.config(level), level=level)
            for item in r.items:
                h.update(dumps(item).encode())
    digests.add(h.hexdigest())
    assert len(digests) == 1


def test_levels_differ_in_difficulty():
    stats = {}
    for level in ("easy", "hard"):
        items = FAMILY.generate_items(variant="counterfactual", n=60, seed=3, config=FAMILY.config(level),
                                      level=level).items
        stats[level] = (max(i["n_ops"] for i in items), sum("." in i["answer"][0] for i in items))
        assert all(i["level"] == level for i in items)
    assert stats["easy"][0] == 2 and stats["hard"][0] == 5
    assert stats["hard"][1] > 0  # hard money amounts have cents


# -- filters --------------------------------------------------------------------------------------
def test_filter_implausible():
    with pytest.raises(ValueError, match="'implausible'"):  # voucher larger than the bill
        make_item("catering", ("discount",), "discount", {"count": 2, "rate": 3, "discount": 9}, {"count": 5})


def test_filter_non_unique():
    with pytest.raises(ValueError, match="'non_unique'"):  # no jugs observed: their price is unknowable
        make_item("catering", ("second",), "rate2", {"count": 2, "rate": 3, "count2": 0, "rate2": 4}, {"count": 5})


def test_filter_invalid_hidden():
    with pytest.raises(ValueError, match="'invalid_hidden'"):  # a $0.50 fee in a whole-dollar story
        make_item("catering", ("extra",), "extra", {"count": 2, "rate": 3, "extra": "0.5"}, {"count": 5})


def test_filter_no_dependence():
    with pytest.raises(ValueError, match="'no_dependence'"):  # no jugs in the counterfactual world
        make_item("catering", ("second",), "rate2", {"count": 2, "rate": 3, "count2": 2, "rate2": 4}, {"count2": 0})


def test_filter_prior_equals_answer():
    graph = QuantityGraph({"count": Quantity("count", "count"), "rate": Quantity("rate", "money"),
                           "extra": Quantity("extra", "money", F(1), F(0))}, mul("count", add("rate", "extra")))
    cand = Candidate(DOMAINS["catering"], graph=graph, values={"count": F(2), "rate": F(3), "extra": F(0)},
                     intervention={"count": F(5)})
    cand.story = Story("catering", ("extra",), "extra", "count", {})
    check(cand, LEVELS["medium"])
    assert cand.reject == "prior_equals_answer"


def test_filter_duplicate():
    config = FAMILY.config("easy", count_max=3, amount_max=2, domains=("catering",))
    result = FAMILY.generate_items(variant="counterfactual", n=20, seed=1, config=config, level="easy")
    assert result.report["rejected"]["duplicate"] > 0
    keys = {(i["graph"]["output"].__repr__(), i["hidden"], dumps(i["known_values"]), i["hidden_value"],
             dumps(i["intervention"])) for i in result.items}
    assert len(keys) == 20


def test_generation_error_when_no_item_fits():
    from cf_tasks.generation import GenerationError

    config = FAMILY.config("easy", count_max=3, amount_max=2, domains=("catering",), max_attempts=5)
    with pytest.raises(GenerationError, match="max_attempts"):
        FAMILY.generate_items(variant="counterfactual", n=200, seed=1, config=config, level="easy")


# -- config ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("overrides, field", [
    ({"min_ops": 5, "max_ops": 3}, "min_ops"),
    ({"count_max": 2}, "count_max"),
    ({"money_step": "0.3"}, "money_step"),
    ({"domains": ("moon_base",)}, "domains"),
    ({"intervene_on": ("hidden_fee",)}, "intervene_on"),
    ({"hidden_roles": ()}, "hidden_roles"),
    ({"max_ops": "4"}, "max_ops"),
])
def test_config_errors_name_the_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        FAMILY.config("medium", **overrides)


def test_config_accepts_yaml_lists_and_documents_fields():
    config = FAMILY.config("medium", domains=["taxi", "gym"], intervene_on="count,periods")
    assert config.domains == ("taxi", "gym") and config.intervene_on == ("count", "periods")
    assert all(GsmConfig.field_help().values())
    with pytest.raises(ValueError, match="no level 'extreme'"):
        FAMILY.config("extreme")


def test_reference_solvers_read_lm_eval_documents_and_report_bad_fields(medium):
    from cf_tasks.lmeval.docs import encode_doc

    item = medium["counterfactual"].items[0]
    doc = encode_doc(item)
    assert isinstance(doc["graph"], str)
    assert FAMILY.oracle_answer(doc) == item["answer"]
    broken = {k: v for k, v in item.items() if k != "known_values"}
    with pytest.raises(ValueError, match="missing field 'known_values'"):
        FAMILY.oracle_answer(broken)
    with pytest.raises(ValueError, match="'hidden' names no quantity"):
        FAMILY.oracle_answer({**item, "hidden": "nope"})
