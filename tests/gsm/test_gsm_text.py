"""Story text quality: grammar over every template x slot value, no contradictory distractors, rate
interventions that name what changes, interventional twins that only add the revealing sentence, and levels
that draw independent items."""

import itertools
from fractions import Fraction as F

import pytest

from cf_tasks.families.gsm import FAMILY
from cf_tasks.families.gsm.family import dedup_key, item_stream, make_item, propose, stream_key
from cf_tasks.families.gsm.lint import (check_articles, check_capitals, check_contradictions, check_doubled_words,
                                        check_number_agreement, check_rate_intervention, check_redundancy,
                                        check_text, check_twins, domain_nouns, level_overlap, sentences)
from cf_tasks.families.gsm.templates import (COMPONENTS, COUNT_QUANTITIES, DOMAINS, HIDEABLE, Story, _slots,
                                             build_graph, format_amount, rate_scope, render)

PAPER_TEXT = ("Every catering tray is $6. There is a per-tray service fee. For 6 trays the total is $42. "
              "If instead 11 trays were ordered, what amount would be shown?")


# -- the checks themselves catch what they claim ------------------------------------------------
@pytest.mark.parametrize("text, check", [
    ("Lena is 33 years old. Lena is 8 years old.", check_contradictions),
    ("The party room has 12 chairs. The party room has 12 chairs.", check_contradictions),
    ("The taxi also waits for 8 minutes of waiting, billed at $2 per minute.", check_redundancy),
    ("The driver has a 8-year-old car.", check_articles),
    ("The driver has an 18-year-old car and a 11-hour shift.", check_articles),
    ("There is an surcharge.", check_articles),
    ("It is a hourly rate.", check_articles),
    ("3 litres leak out through a crack.", check_capitals),
    ("The the order is ready.", check_doubled_words),
])
def test_checks_catch_known_slips(text, check):
    assert check(text)


@pytest.mark.parametrize("text", [
    "In total, 1 egg break and are thrown away.", "1 litre of paint are left over.", "She bakes for 1 days.",
    "She bakes 3 batch of bread.", "3 litres of paint is left over.",
])
def test_number_agreement_catches_known_slips(text):
    nouns = [("egg", "eggs"), ("litre of paint", "litres of paint"), ("day", "days"),
             ("batch of bread", "batches of bread")]
    assert check_number_agreement(text, nouns)


@pytest.mark.parametrize("text", [
    PAPER_TEXT, "An hour of work costs £5. A one-off fee of $8 is added. An 8-year-old car, an 11-page and "
    "an 18-page booklet, a 1-page note, a 12-page letter, an €80 fee, a $100 fee and a one-time fee.",
    "For 3 trays each week the total for the 3 weeks is $42.", "The same order is delivered every week for 3 weeks.",
])
def test_checks_pass_clean_text(text):
    nouns = [("tray", "trays"), ("week", "weeks")]
    assert check_text(text, nouns) == []


# -- every template x slot value ----------------------------------------------------------------
def _probe_values(domain):
    """Base values plus one probe per reachable edge: 0/1 second items, 1 unit, 8/11/18 ('an'), cents."""
    base = {"count": F(6), "rate": F(7), "extra": F(2), "count2": F(3), "rate2": F(4), "periods": F(3),
            "fixed": F(5), "discount": F(3), "people": F(4)}
    probes = [{}]
    for name in base:
        options = [8, 11, 18, 25]
        if name == "count2":
            options += [0, 1]
        elif name not in COUNT_QUANTITIES:
            options += [1] + (["2.5", "0.25"] if domain.money else [])
        probes += [{name: F(v)} for v in options]
    return [{**base, **probe} for probe in probes]


def _component_sets(domain):
    yield ()
    yield tuple(c for c in COMPONENTS if c in domain.components)
    for comp in domain.components:
        yield (comp,)


@pytest.mark.parametrize("name", sorted(DOMAINS))
def test_every_template_and_slot_value_is_grammatical(name):
    """Each sentence template of the domain, filled with every probe value under every component set."""
    domain = DOMAINS[name]
    nouns = domain_nouns(domain)
    checked, problems = set(), []
    for comps in _component_sets(domain):
        story = Story(name, comps, "extra", "count", {})
        for values in _probe_values(domain):
            slots = {**_slots(domain, story, values), "y": format_amount(domain, F(42))}
            for key, options in domain.texts.items():
                for template in options:
                    try:
                        text = template.format(**slots)
                    except KeyError:  # a slot of a component this set does not have (e.g. {periods_n})
                        continue
                    if key == "ask":
                        text = f"If so, {text}"
                    elif key.startswith("if_"):
                        text = f"{text}, what then?"
                    if text not in checked:
                        checked.add(text)
                        problems += [f"{key}: {p}" for p in check_text(text, nouns)]
    for entity, template in domain.distractors:
        for d in range(2, 41):
            problems += [f"distractor {entity}: {p}" for p in check_text(template.format(d=d), nouns)]
    assert problems == [], sorted(set(problems))[:20]
    assert len(checked) > 100


@pytest.mark.parametrize("name", sorted(DOMAINS))
def test_every_structure_renders_clean_twins(name):
    """All component subsets x hidden x target x paraphrase, with two distractors: grammar, no contradiction,
    the interventional twin = counterfactual + one sentence stating the hidden value, rate scope named."""
    domain = DOMAINS[name]
    nouns = domain_nouns(domain)
    count = 0
    for r in range(len(domain.components) + 1):
        for comps in itertools.combinations(domain.components, r):
            comps = tuple(c for c in COMPONENTS if c in comps)
            graph = build_graph(domain, comps)
            values = {q: F(3) if q in COUNT_QUANTITIES else F(5) for q in graph.quantities}
            values.update(rate=F(7), **({"extra": F(2)} if "extra" in values else {}))
            y = graph.evaluate(values)
            for hidden in (h for h in HIDEABLE if h in graph.quantities):
                for target in (t for t in ("count", "periods", "count2", "people", "rate")
                               if t in graph.quantities and t != hidden and f"if_{t}" in domain.texts):
                    for paraphrase in (0, 1):
                        story = Story(name, comps, hidden, target, dict.fromkeys(domain.texts, paraphrase),
                                      ((0, 1, 8), (1, 2, 11)))
                        new = {target: F(0) if target == "count2" else values[target] + 1}
                        cf = render(domain, story, values, y, new, reveal=False)
                        iv = render(domain, story, values, y, new, reveal=True)
                        assert check_text(cf, nouns) == [] and check_text(iv, nouns) == [], (cf, iv)
                        assert cf.endswith("?") and format_amount(domain, y) in cf and "11" in cf
                        assert check_twins({"question": cf}, {"question": iv}) == []
                        revealed = sentences(iv)[-2]
                        if hidden == "count2":
                            assert "3 " in revealed, revealed
                        else:
                            assert format_amount(domain, values[hidden]) in revealed, revealed
                        item = {"story": story.to_json(), "question": cf}
                        assert check_rate_intervention(item, domain.labels) == []
                        count += 1
    assert count > 20


def test_rate_scope_names_the_other_charges():
    concert = DOMAINS["concert"]
    assert rate_scope(concert, ()) == rate_scope(concert, ("second", "discount")) == ""
    assert rate_scope(concert, ("extra",)) == " (excluding the booking fee, which stays the same)"
    assert rate_scope(concert, ("extra", "fixed")) == \
        " (excluding the booking fee and the handling fee, which stay the same)"
    for domain in DOMAINS.values():
        assert set(domain.labels) == {"extra", "fixed"}, domain.name
        assert len(set(domain.labels.values())) == 2, domain.name


def test_rate_intervention_with_a_per_ticket_fee_is_unambiguous():
    item = make_item("concert", ("extra",), "extra", {"count": 4, "rate": 20, "extra": 3}, {"rate": 17})
    assert "If instead each ticket had cost €17 (excluding the booking fee, which stays the same), " in \
        item["question"]
    assert item["answer"] == ["80"]  # 4 x (17 + 3): the fee is not part of the new price


# -- generated items ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hard_twins():
    config = FAMILY.config("hard", distractors_max=4)
    cf, iv = (FAMILY.generate_items(variant=v, n=400, seed=11, config=config, level="hard").items
              for v in ("counterfactual", "interventional"))
    return list(zip(cf, iv))


def test_generated_stories_have_no_contradictory_distractors(hard_twins):
    with_two = 0
    for cf, iv in hard_twins:
        indices = [d[0] for d in cf["story"]["distractors"]]
        assert len(set(indices)) == len(indices), cf["question"]
        assert check_contradictions(cf["question"]) == [] and check_contradictions(iv["question"]) == []
        with_two += len(indices) >= 2
    assert with_two > 50  # the check saw many stories with two distractors


def test_distractor_entities_are_distinct_per_domain():
    for domain in DOMAINS.values():
        entities = [entity for entity, _ in domain.distractors]
        assert len(entities) == len(set(entities)) >= 2, domain.name


def test_make_item_rejects_repeated_distractors():
    with pytest.raises(ValueError, match="distractors"):
        make_item("reading", (), "rate", {"count": 3, "rate": 5}, {"count": 4}, distractors=((1, 1, 33), (1, 2, 8)))


def test_generated_stories_are_grammatical(hard_twins):
    problems = []
    for cf, iv in hard_twins:
        nouns = domain_nouns(DOMAINS[cf["domain"]])
        problems += check_text(cf["question"], nouns) + check_text(iv["question"], nouns)
    assert problems == [], problems[:10]


def test_generated_rate_interventions_name_what_changes(hard_twins):
    scoped = 0
    for cf, _ in hard_twins:
        assert check_rate_intervention(cf, DOMAINS[cf["domain"]].labels) == [], cf["question"]
        scoped += cf["story"]["target"] == "rate" and bool({"extra", "fixed"} & set(cf["story"]["components"]))
    assert scoped > 20


def test_interventional_twin_is_the_counterfactual_story_plus_the_revealed_value(hard_twins):
    for cf, iv in hard_twins:
        assert check_twins(cf, iv) == [], (cf["question"], iv["question"])
        revealed = sentences(iv["question"])[-2]
        domain = DOMAINS[cf["domain"]]
        value = F(iv["stated_values"][iv["hidden"]])
        shown = f"{int(value)} " if iv["hidden"] == "count2" else format_amount(domain, value)
        assert shown in revealed, (revealed, value)
        assert iv["prompt"].endswith(cf["prompt"].split("\n\n", 1)[1])  # the same instruction: one number


# -- levels draw independent streams -------------------------------------------------------------
def test_levels_at_one_seed_are_independent():
    overlap = level_overlap(FAMILY, seed=5, n=80, levels=("easy", "medium", "hard"))
    assert overlap["domain"] < 0.25, overlap  # 1/14 if independent; 0.81 when the levels shared streams


def test_every_content_knob_enters_the_stream_but_not_the_retry_budget():
    medium = FAMILY.config("medium")
    assert stream_key("medium", medium) != stream_key("easy", medium)
    assert stream_key("medium", medium) != stream_key("medium", FAMILY.config("medium", amount_max=21))
    assert stream_key("medium", medium) == stream_key("medium", FAMILY.config("medium", max_attempts=500))

    def domains(**overrides):
        config = FAMILY.config("medium", **overrides)
        return [i["domain"] for i in FAMILY.generate_items(variant="counterfactual", n=30, seed=2, config=config,
                                                           level="medium").items]

    assert domains() == domains(max_attempts=500)
    assert domains() != domains(count_max=16)


def test_item_i_is_drawn_from_its_own_stream():
    """Replaying the documented stream (stream_key, seed, index) reproduces the generated items."""
    config = FAMILY.config("hard")
    items = FAMILY.generate_items(variant="counterfactual", n=12, seed=4, config=config, level="hard").items
    keys = set()
    for item in items:
        rng = item_stream(stream_key("hard", config), 4, item["index"])
        while True:
            cand = propose(rng, config)
            if cand.reject is None and dedup_key(cand) not in keys:
                keys.add(dedup_key(cand))
                break
        assert item["domain"] == cand.domain.name and item["story"]["hidden"] == cand.story.hidden
        assert item["known_values"]["count"] == str(cand.values["count"])
