"""Every code family and level generates valid, verified items; twins, seeds, prefix, brute force."""

from __future__ import annotations

import itertools
import json

import pytest

from cf_tasks.executor import Job, shared_executor
from cf_tasks.generation import generate_code_items
from cf_tasks.prompts import PROMPT_VERSION
from cf_tasks.records import ProgramRecord, canonical_set
from plugins.registry import FAMILIES

CODE_FAMILIES = ("if_else", "if_else_long", "while", "multi_r")
LEVELS = ("easy", "medium", "hard")
PROVENANCE = ("family", "level", "seed", "index", "generator_version", "config", "display_program", "prompt",
              "prior_answer", "n_consistent", "n_assignments")


def _generate(name, level="medium", n=8, seed=0, variant="counterfactual", **kw):
    fam = FAMILIES.get(name)
    return generate_code_items(fam, variant=variant, n=n, seed=seed, config=fam.config(level), level=level, **kw)


@pytest.mark.parametrize("name", CODE_FAMILIES)
@pytest.mark.parametrize("level", LEVELS)
def test_every_family_and_level_generates_valid_items(name, level):
    fam = FAMILIES.get(name)
    res = _generate(name, level, n=6, seed=3)
    assert len(res.items) == 6
    assert res.report["accepted"] == 6
    rejected = res.report["rejected"]
    assert res.report["attempts"] == 6 + rejected["error"] + rejected["duplicate"] + res.report["exhausted_programs"]
    assert res.report["queries"] == 6 + sum(rejected.values()) - rejected["error"]
    cfg = fam.config(level)
    for i, item in enumerate(res.items):
        rec = ProgramRecord.from_json(item)  # schema-valid program record
        assert rec.id == f"{name}-3-{i}" and item["index"] == i and item["seed"] == 3
        for key in PROVENANCE:
            assert key in item, key
        assert item["family"] == name and item["level"] == level
        assert item["generator_version"] == fam.version
        assert item["config"] == fam.config(level).to_dict()
        assert item["answer"] == canonical_set(item["answer"]) and item["answer"]
        assert set(item["answer"]) < set(item["prior_answer"])  # abduction is necessary
        assert item["answer"] != [item["observed"]["output"]]  # answering the observation is never right
        assert cfg.min_consistent <= item["n_consistent"] <= item["n_assignments"]
        assert len(item["answer"]) >= cfg.min_gold_size
        assert item["prompt_version"] == PROMPT_VERSION
        assert item["n_assignments"] == len(list(itertools.product(*item["latents"].values())))
        # display code draws every latent with randint over its domain, like the paper's figures
        for latent, dom in item["latents"].items():
            assert f"{latent} = random.randint({dom[0]}, {dom[-1]})" in item["display_program"]
        assert item["display_program"] in item["prompt"]
        assert max(abs(v) for v in item["prior_answer"]) <= fam.config(level).max_abs_value
        json.dumps(item, allow_nan=False)
    if name == "multi_r":
        assert all(len(item["latents"]) == 3 for item in res.items)
    if name == "while":
        assert all("while " in item["program"] for item in res.items)


def _brute_force(item, executor):
    """Independent solver: one executor job per assignment, sets built here."""
    names = list(item["latents"])
    assignments = list(itertools.product(*item["latents"].values()))
    x = item["observed"]["inputs"]
    x2 = {**x, **item["intervention"]}
    jobs = [Job(item["program"], item["entry_point"], ({**x, **dict(zip(names, a))}, {**x2, **dict(zip(names, a))}))
            for a in assignments]
    results = executor.run(jobs)
    assert all(r.ok for pair in results for r in pair)
    consistent = {pair[1].value for pair in results if pair[0].value == item["observed"]["output"]}
    prior = {pair[1].value for pair in results}
    return sorted(consistent), sorted(prior), sum(pair[0].value == item["observed"]["output"] for pair in results)


@pytest.mark.parametrize("name", CODE_FAMILIES)
def test_gold_equals_independent_brute_force(name):
    ex = shared_executor()
    for item in _generate(name, "hard", n=5, seed=11).items:
        answer, prior, n_consistent = _brute_force(item, ex)
        assert item["answer"] == answer
        assert item["prior_answer"] == prior
        assert item["n_consistent"] == n_consistent


@pytest.mark.parametrize("name", CODE_FAMILIES)
def test_interventional_twin_shares_program_and_query(name):
    cf = _generate(name, n=6, seed=5).items
    iv = _generate(name, n=6, seed=5, variant="interventional").items
    ex = shared_executor()
    for a, b in zip(cf, iv):
        assert b["variant"] == "interventional" and a["variant"] == "counterfactual"
        for key in ("id", "program", "entry_point", "latents", "observed", "intervention", "display_program",
                    "prior_answer"):
            assert a[key] == b[key], key
        assert "latent_values" not in a
        names = list(b["latents"])
        r = b["latent_values"]
        assert set(r) == set(names)
        # the revealed latents reproduce the observation, and the answer is their run at x'
        x = b["observed"]["inputs"]
        obs, new = ex.run([Job(b["program"], b["entry_point"], ({**x, **r}, {**x, **b["intervention"], **r}))])[0]
        assert obs.value == b["observed"]["output"]
        assert b["answer"] == [new.value]
        assert new.value in a["answer"]
        # the interventional prompt is the counterfactual one with the latents revealed
        observation = a["prompt"].split("The hidden value(s)")[0]
        assert b["prompt"].startswith(observation)
        assert "In that run, the hidden value(s) were " in b["prompt"] and "unknown" not in b["prompt"]
        question = a["prompt"].split("\n")[-4].replace("could", "would")
        assert question in b["prompt"]
        assert "a single value inside \\boxed{}" in b["prompt"] and "set of values" in a["prompt"]


def test_seeds_do_not_share_streams():
    one = _generate("if_else", n=2, seed=1).items
    two = _generate("if_else", n=2, seed=2).items
    assert one[1]["program"] != two[0]["program"]
    assert one[0]["program"] != two[0]["program"]


def test_prefix_property_and_batching_do_not_change_items():
    short = _generate("while", n=6, seed=9)
    long = _generate("while", n=15, seed=9, window=4, programs_per_job=3)
    naive = _generate("while", n=6, seed=9, window=1, programs_per_job=1)
    assert long.items[:6] == short.items
    assert naive.items == short.items
    assert naive.report["rejected"] == short.report["rejected"]
    assert naive.report["attempts"] == short.report["attempts"]


def test_programs_are_composed_from_paper_blocks():
    """The fixed placeholders and the template's structure show up across a sample."""
    items = _generate("if_else", "hard", n=40, seed=2).items
    programs = [it["program"] for it in items]
    assert all(p.startswith("def generated_func_") for p in programs)
    assert all(it["entry_point"].startswith("generated_func_") for it in items)
    assert any("elif " in p for p in programs)
    assert any("        if r " in p for p in programs)  # the nested if on r
    assert any("% " in p.splitlines()[-1] for p in programs)  # return expression with a modulus
    assert any(len(it["answer"]) > 1 for it in items)  # several latents fit some observations
    depth = max(len(line) - len(line.lstrip()) for p in programs for line in p.splitlines())
    assert depth <= 12  # if_else: at most one nesting level below the main chain (3 indents)


def test_if_else_long_is_longer_and_deeper_than_if_else():
    short = _generate("if_else", "medium", n=20, seed=4).items
    long = _generate("if_else_long", "medium", n=20, seed=4).items

    def lines(items):
        return sum(it["program"].count("\n") for it in items) / len(items)

    def depth(items):
        return max(len(ln) - len(ln.lstrip()) for it in items for ln in it["program"].splitlines()) // 4

    assert lines(long) > 1.5 * lines(short)
    assert depth(long) > depth(short)


def test_bad_arguments_are_rejected():
    fam = FAMILIES.get("if_else")
    with pytest.raises(ValueError, match="variant"):
        generate_code_items(fam, variant="both", n=1, seed=0, config=fam.config())
    with pytest.raises(ValueError, match="n must be"):
        generate_code_items(fam, variant="counterfactual", n=-1, seed=0, config=fam.config())
    with pytest.raises(ValueError, match="IfElseConfig"):
        generate_code_items(fam, variant="counterfactual", n=1, seed=0, config=FAMILIES.get("while").config())
    assert generate_code_items(fam, variant="counterfactual", n=0, seed=0, config=fam.config()).items == []


def test_levels_at_one_seed_draw_independent_items():
    """Level and knobs enter each item's stream: easy and medium items share neither name nor skeleton."""
    easy = _generate("if_else", "easy", n=30, seed=1).items
    medium = _generate("if_else", "medium", n=30, seed=1).items
    assert sum(a["entry_point"] == b["entry_point"] for a, b in zip(easy, medium)) <= 1
    tweaked = generate_code_items(FAMILIES.get("if_else"), variant="counterfactual", n=30, seed=1, level="medium",
                                  config=FAMILIES.get("if_else").config("medium", const_high=10)).items
    assert sum(a["entry_point"] == b["entry_point"] for a, b in zip(tweaked, medium)) <= 1


def _variable_peak(item, executor):
    """Largest |value| any variable takes in the item's runs (every latent at x and x'), traced in a worker."""
    harness = item["program"] + """
def _cf_peak(names, domains, inputs, new_inputs):
    import itertools, sys
    peak = [0]
    def tracer(frame, event, arg):
        if frame.f_code.co_name == %r:
            for v in frame.f_locals.values():
                if type(v) is int:
                    peak[0] = max(peak[0], abs(v))
        return tracer
    for a in itertools.product(*domains):
        for x in (inputs, new_inputs):
            sys.settrace(tracer)
            try:
                %s(**x, **dict(zip(names, a)))
            finally:
                sys.settrace(None)
    return peak[0]
""" % (item["entry_point"], item["entry_point"])
    call = {"names": list(item["latents"]), "domains": list(item["latents"].values()),
            "inputs": item["observed"]["inputs"], "new_inputs": {**item["observed"]["inputs"], **item["intervention"]}}
    (result,), = executor.run([Job(harness, "_cf_peak", (call,))])
    assert result.ok, result.error
    return result.value


@pytest.mark.parametrize("name", ["while", "multi_r"])
def test_hard_values_stay_within_the_midrun_bound(name):
    """Every value every variable takes in an item's shown runs is within max_midrun_abs (traced independently)."""
    fam = FAMILIES.get(name)
    bound = fam.config("hard").max_midrun_abs
    assert bound == 10_000
    ex = shared_executor()
    items = _generate(name, "hard", n=25, seed=7).items
    peaks = [_variable_peak(item, ex) for item in items]
    assert max(peaks) <= bound
    assert max(abs(v) for item in items for v in item["prior_answer"]) <= bound


def test_helper_variables_are_read_unless_a_distractor_knob_asks():
    import re

    def unused_helpers(items):
        out = 0
        for item in items:
            lines = item["program"].splitlines()
            if any(line.strip().startswith("offset = ") for line in lines):
                reads = [line for line in lines if re.search(r"\boffset\b", line) and not line.strip().startswith("offset =")]
                out += not reads
        return out

    fam = FAMILIES.get("while")
    cfg = fam.config("hard", preprocess_prob=1.0)
    with_helpers = generate_code_items(fam, variant="counterfactual", n=60, seed=3, config=cfg, level="hard").items
    assert sum("offset = " in it["program"] for it in with_helpers) >= 10
    assert unused_helpers(with_helpers) == 0
    distract = generate_code_items(fam, variant="counterfactual", n=60, seed=3, level="hard",
                                   config=fam.config("hard", preprocess_prob=1.0, unused_helper_prob=1.0)).items
    assert unused_helpers(distract) > 0
