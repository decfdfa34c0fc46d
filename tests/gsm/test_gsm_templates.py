"""Story templates: every domain renders every structure it supports, and its items solve."""

from fractions import Fraction as F

import pytest

from cf_tasks.families.gsm import FAMILY
from cf_tasks.families.gsm.family import make_item
from cf_tasks.families.gsm.solver import solve_hidden
from cf_tasks.families.gsm.templates import DOMAINS, HIDEABLE, build_graph, format_amount
from cf_tasks.lmeval.math_scoring import process_results

PAPER_TEXT = ("Every catering tray is $6. There is a per-tray service fee. For 6 trays the total is $42. "
              "If instead 11 trays were ordered, what amount would be shown?")


def test_at_least_twelve_domains_with_money_and_unit_stories():
    assert len(DOMAINS) >= 12
    assert sum(d.money for d in DOMAINS.values()) >= 6
    assert sum(not d.money for d in DOMAINS.values()) >= 4
    for domain in DOMAINS.values():
        assert {"extra", "fixed"} <= set(domain.components), domain.name
        assert len(domain.distractors) >= 2


def test_paper_example_is_expressible_and_solved():
    item = make_item("catering", ("extra",), "extra", {"count": 6, "rate": 6, "extra": 1}, {"count": 11})
    assert item["question"] == PAPER_TEXT
    assert item["answer"] == ["77"] and item["prior_answer"] == ["66"]
    assert item["n_ops"] == 2
    doc = {k: v for k, v in item.items() if k not in ("answer", "hidden_value", "target")}
    assert FAMILY.oracle_answer(doc) == ["77"]  # abduced: fee = $1, then 11 * (6 + 1)
    assert FAMILY.no_abduction_answer(doc) == ["66"]
    twin = make_item("catering", ("extra",), "extra", {"count": 6, "rate": 6, "extra": 1}, {"count": 11},
                     variant="interventional")
    # the interventional twin keeps the paper's story and observation and states the fee before the question
    assert twin["question"] == PAPER_TEXT.replace(" If instead", " The service fee is $1 per tray. If instead")
    assert FAMILY.no_abduction_answer(twin) == ["77"]


def _values(graph):
    return {name: F(3) if name in ("count", "count2", "periods", "people") else F(5) for name in graph.quantities}


@pytest.mark.parametrize("name", sorted(DOMAINS))
@pytest.mark.parametrize("level", ["easy", "hard"])
def test_generated_items_per_domain_solve_to_gold(name, level):
    config = FAMILY.config(level, domains=(name,))
    for variant in ("counterfactual", "interventional"):
        result = FAMILY.generate_items(variant=variant, n=12, seed=7, config=config, level=level)
        assert len(result.items) == 12
        for item in result.items:
            assert item["domain"] == name
            assert FAMILY.oracle_answer(item) == item["answer"]
            response = f"So the answer is \\boxed{{{item['answer'][0]}}}."
            assert process_results(item, [response]) == {"acc": 1.0}
            graph_ops = item["n_ops"]
            assert config.min_ops <= graph_ops <= config.max_ops
            if variant == "counterfactual":
                assert FAMILY.no_abduction_answer(item) != item["answer"]


def test_units_and_money_formatting():
    assert format_amount(DOMAINS["catering"], F(13, 2)) == "$6.50"
    assert format_amount(DOMAINS["car_rental"], F(7)) == "€7"
    assert format_amount(DOMAINS["bakery"], F(1)) == "1 cup of flour"
    assert format_amount(DOMAINS["bakery"], F(3)) == "3 cups of flour"


def test_build_graph_rejects_unsupported_components():
    with pytest.raises(ValueError, match="does not support"):
        build_graph(DOMAINS["reading"], ("people",))
    with pytest.raises(ValueError, match="unknown"):
        build_graph(DOMAINS["reading"], ("teleport",))


def test_solver_recovers_hidden_for_every_domain_graph():
    for domain in DOMAINS.values():
        graph = build_graph(domain, tuple(domain.components))
        values = _values(graph)
        for hidden in (h for h in HIDEABLE if h in graph.quantities):
            known = {k: v for k, v in values.items() if k != hidden}
            assert solve_hidden(graph, hidden, known, graph.evaluate(values)).value == values[hidden]
