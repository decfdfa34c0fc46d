"""The four reference solvers on generated items: each answers what its definition says, from the fields alone."""

from __future__ import annotations

import itertools

import pytest

from cf_tasks.executor import Job, shared_executor
from cf_tasks.lmeval.docs import encode_doc
from cf_tasks.reference import SOLVERS, boxed, reference_answers, reference_scores
from plugins.registry import FAMILIES


def _items(family, variant, n=12, seed=5):
    fam = FAMILIES.get(family)
    return fam.generate_items(variant=variant, n=n, seed=seed, config=fam.config("medium"), level="medium").items


def _first_consistent_output(item):
    """Brute force, one executor job per assignment: f(x', r) for the first r (domain order) that fits."""
    names = list(item["latents"])
    x = item["observed"]["inputs"]
    x2 = {**x, **item["intervention"]}
    for a in itertools.product(*item["latents"].values()):
        r = dict(zip(names, a))
        obs, new = shared_executor().run([Job(item["program"], item["entry_point"], ({**x, **r}, {**x2, **r}))])[0]
        if obs.value == item["observed"]["output"]:
            return new.value
    raise AssertionError("no consistent assignment")


@pytest.mark.parametrize("family", ["if_else", "multi_r"])
def test_code_solvers_answer_by_their_definition(family):
    items = _items(family, "counterfactual")
    docs = [encode_doc(item) for item in items]  # what lm-eval hands the models
    # the gold field is never read: blank it out
    docs = [{**doc, "answer": "[]", "target": ""} for doc in docs]
    oracle, one, echo, none = (reference_answers(s, docs) for s in ("cf_oracle", "cf_one_latent", "cf_echo",
                                                                    "cf_no_abduction"))
    for item, o, a, e, p in zip(items, oracle, one, echo, none):
        assert o == item["answer"]
        assert a == [_first_consistent_output(item)]
        assert e == [item["observed"]["output"]]
        assert p == item["prior_answer"]
        assert (a == item["answer"]) == (len(item["answer"]) == 1)  # right exactly on singleton gold sets
    fam = FAMILIES.get(family)
    assert fam.one_latent_answer(docs[0]) == one[0] and fam.oracle_answer(docs[0]) == oracle[0]


def test_interventional_items_give_the_revealed_latents_to_every_solver_but_echo():
    items = _items("while", "interventional")
    for solver in ("cf_oracle", "cf_one_latent", "cf_no_abduction"):
        assert reference_answers(solver, items) == [item["answer"] for item in items], solver


def test_reference_scores_on_the_shipped_level():
    items = _items("while", "counterfactual", n=40)
    scores = reference_scores(items)
    assert list(scores) == list(SOLVERS)
    assert scores["cf_oracle"] == {"exact_match": 1.0, "f1": 1.0}
    assert scores["cf_no_abduction"]["exact_match"] == 0.0 and scores["cf_echo"]["exact_match"] == 0.0
    singletons = sum(len(item["answer"]) == 1 for item in items) / len(items)
    assert scores["cf_one_latent"]["exact_match"] == pytest.approx(singletons)


def test_math_solvers_go_through_the_family_plugin():
    items = _items("gsm", "counterfactual", n=10)
    assert reference_answers("cf_oracle", items) == [item["answer"] for item in items]
    assert reference_answers("cf_one_latent", items) == [item["answer"] for item in items]  # unique hidden value
    assert reference_answers("cf_echo", items) == [[item["observed"]["output"]] for item in items]
    scores = reference_scores(items)
    assert scores["cf_oracle"] == {"acc": 1.0}
    assert boxed(items[0], ["77"]) == "\\boxed{77}"


def test_unknown_solver_is_named():
    with pytest.raises(ValueError, match="cf_magic"):
        reference_answers("cf_magic", [])
