import json

import pytest
from report_fixtures import make_doc

from cf_tasks.report.tags import TagConfig, count_markers, tag_sample, tag_samples, tag_rates


def doc(**kw):
    base = dict(answer=[7], prior=[5, 6, 7, 8], n_consistent=1)
    base.update(kw)
    d = make_doc("if_else", "counterfactual", 0, answer=base["answer"], prior=base["prior"],
                 n_consistent=base["n_consistent"])
    if "variant" in kw:
        d["variant"] = kw["variant"]
    return d


def test_interventional_answer_tag():
    r = tag_sample("Ignoring the observation, outputs can be \\boxed{8, 5, 7, 6}.", doc())
    assert "interventional_answer" in r.tags
    assert r.parsed_answer == [5, 6, 7, 8]
    # correct answer: not tagged
    assert "interventional_answer" not in tag_sample("\\boxed{7}", doc()).tags
    # gold equals the prior: answering the prior is right, not the failure mode
    assert "interventional_answer" not in tag_sample("\\boxed{5, 6}", doc(answer=[5, 6], prior=[5, 6])).tags
    # interventional items cannot "answer the interventional question"
    assert "interventional_answer" not in tag_sample("\\boxed{5, 6, 7, 8}", doc(variant="interventional")).tags


def test_no_answer_tag():
    assert tag_sample("I think it is seven.", doc()).tags == ("no_answer",)
    assert tag_sample("", doc()).parsed_answer is None


def test_brute_force_tag():
    text = "\n".join(f"If r = {v}: f(3) = {3 + v}, which does not match." for v in range(1, 9)) + "\n\\boxed{7}"
    r = tag_sample(text, doc())
    assert "brute_force" in r.tags
    assert "8 values" in r.evidence["brute_force"]
    # values outside the latent domain (1..10) do not count; nor does a focused abduction
    focused = "From the observation, r = 4 is the only value consistent. With x=3, output is 7. \\boxed{7}"
    assert "brute_force" not in tag_sample(focused, doc()).tags
    # enumerating exactly the consistent values is abduction, not brute force
    five = " ".join(f"r = {v} fits." for v in range(1, 6)) + " \\boxed{7}"
    assert "brute_force" not in tag_sample(five, doc(n_consistent=5)).tags
    assert "brute_force" in tag_sample(five, doc(n_consistent=1)).tags


def test_arbitrary_assumption_tag():
    r = tag_sample("Let's assume r = 3 for this run. Then the output is 6. \\boxed{6}", doc())
    assert "arbitrary_assumption" in r.tags
    assert "assume r = 3" in r.evidence["arbitrary_assumption"]
    r2 = tag_sample("For simplicity, take r = 2. Output: \\boxed{5}", doc())
    assert "arbitrary_assumption" in r2.tags
    # committing to one value when several fit and the gold has several
    r3 = tag_sample("Since r is 4, the output is 7. \\boxed{7}", doc(answer=[7, 8], n_consistent=2))
    assert "arbitrary_assumption" in r3.tags
    # deriving the value is not an assumption
    assert "arbitrary_assumption" not in tag_sample("The observation gives r = 4, so \\boxed{7}", doc()).tags


def test_over_complication_tag():
    text = ("Case 1: x > 3. Case 2: x <= 3. Wait, let me re-check. Case 3: r odd. Hmm, actually, "
            "on second thought case 4. \\boxed{7}")
    assert count_markers(text) >= 6
    assert "over_complication" in tag_sample(text, doc()).tags
    assert "over_complication" not in tag_sample("Case 1 only. \\boxed{7}", doc()).tags


def test_over_complication_by_length_within_group():
    class S:
        def __init__(self, response):
            self.response, self.doc = response, doc()

    short = [S("r = 4 so \\boxed{7}") for _ in range(5)]
    long = S(("Let me recompute everything again carefully. " * 20) + "wait wait \\boxed{7}")
    results = tag_samples(short + [long], TagConfig())
    assert "over_complication" in results[-1].tags
    assert all("over_complication" not in r.tags for r in results[:-1])


def test_tag_rates_and_config_validation():
    rows = [{"run": "m", "family": "if_else", "variant": "counterfactual", "tags": ["no_answer"]},
            {"run": "m", "family": "if_else", "variant": "counterfactual", "tags": []}]
    (rate,) = tag_rates(rows)
    assert rate["n"] == 2 and rate["no_answer"] == 0.5 and rate["brute_force"] == 0.0
    with pytest.raises(ValueError, match="brute_force_min_values"):
        TagConfig(brute_force_min_values=1)


def test_math_items_with_text_answers():
    d = {"family": "gsm", "variant": "counterfactual", "answer": ["65"], "prior_answer": ["72"], "prompt": "q"}
    r = tag_sample("The total would be \\boxed{72}.", d)
    assert r.tags == ("interventional_answer",)
    assert tag_sample("\\boxed{'65'}", d).tags == ()
    assert tag_sample("\\boxed{65}", d).parsed_answer == [65]


def test_answers_as_json_text_tag_like_lists():
    """Documents written by other tools may carry ``answer``/``prior_answer`` as JSON text (issue 11)."""
    response = "Ignoring the observation, outputs can be \\boxed{8, 5, 7, 6}."
    as_lists = doc()
    as_text = {**as_lists, "answer": json.dumps(as_lists["answer"]), "prior_answer": json.dumps(as_lists["prior_answer"])}
    assert tag_sample(response, as_text).tags == tag_sample(response, as_lists).tags
    assert "interventional_answer" in tag_sample(response, as_text).tags
