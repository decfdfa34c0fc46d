"""Quantity graphs and the exact abduction solver."""

from fractions import Fraction as F

import pytest

from cf_tasks.families.gsm import solver
from cf_tasks.families.gsm.graph import (GraphError, Quantity, QuantityGraph, add, const, count_ops, div,
                                         evaluate, format_number, mul, sub, validate_expr)
from cf_tasks.families.gsm.solver import depends_on, solve_hidden


def money(name, step="1"):
    return Quantity(name, "money", F(step), F(step))


def count(name, minimum=1):
    return Quantity(name, "count", F(1), F(minimum))


PAPER = QuantityGraph({"count": count("count"), "rate": money("rate"), "extra": money("extra")},
                      mul("count", add("rate", "extra")))


def test_evaluate_and_ops():
    assert evaluate(PAPER.output, {"count": F(6), "rate": F(6), "extra": F(1)}) == 42
    assert PAPER.n_ops == 2
    expr = div(sub(add("a", "b", const("2.5")), "c"), "d")
    assert count_ops(expr) == 4
    assert evaluate(expr, {"a": F(1), "b": F(2), "c": F(1), "d": F(2)}) == F(9, 4)
    with pytest.raises(ZeroDivisionError):
        evaluate(expr, {"a": F(1), "b": F(2), "c": F(1), "d": F(0)})


def test_format_number_is_canonical():
    assert [format_number(F(x)) for x in ("77", "-3", "12.5", "0.05", "-0.25", "1/3")] == \
        ["77", "-3", "12.5", "0.05", "-0.25", "1/3"]


def test_graph_json_round_trip_and_errors():
    again = QuantityGraph.from_json(PAPER.to_json())
    assert again == PAPER
    with pytest.raises(GraphError, match="unknown quantity 'zz'"):
        QuantityGraph.from_json({"quantities": {"a": {"kind": "count"}}, "output": mul("a", "zz")})
    with pytest.raises(GraphError, match="output.op: unknown operation 'pow'"):
        validate_expr({"op": "pow", "args": ["a", "b"]})
    with pytest.raises(GraphError, match="'sub' takes 2 arguments"):
        validate_expr({"op": "sub", "args": ["a", "b", "c"]})
    with pytest.raises(GraphError, match="kind"):
        QuantityGraph.from_json({"quantities": {"a": {"kind": "banana"}}, "output": "a"})
    with pytest.raises(GraphError, match="exact number"):
        validate_expr({"const": 0.1})  # floats are inexact: refused


def test_solver_recovers_paper_fee_uniquely():
    result = solve_hidden(PAPER, "extra", {"count": F(6), "rate": F(6)}, F(42))
    assert (result.status, result.value) == ("ok", F(1))
    # the closed form is cached per structure and agrees with a per-item sympy solve
    naive = solve_hidden(PAPER, "extra", {"count": F(6), "rate": F(6)}, F(42), naive=True)
    assert naive == result


@pytest.mark.parametrize("hidden", ["count", "rate", "extra"])
def test_cached_and_naive_solvers_agree(hidden):
    values = {"count": F(7), "rate": F(3), "extra": F(2)}
    known = {k: v for k, v in values.items() if k != hidden}
    y = PAPER.evaluate(values)
    assert solve_hidden(PAPER, hidden, known, y).value == values[hidden]
    assert solve_hidden(PAPER, hidden, known, y, naive=True).value == values[hidden]


def test_solver_rejects_invalid_and_non_unique():
    # a per-tray fee of $0.50 is not valid when the story prices in whole dollars
    graph = QuantityGraph({"count": count("count"), "rate": money("rate"), "extra": money("extra")}, PAPER.output)
    result = solve_hidden(graph, "extra", {"count": F(2), "rate": F(6)}, F(13))
    assert result.status == "invalid" and result.candidates == (F(1, 2),)
    # ... but valid when cents are allowed
    cents = QuantityGraph({"count": count("count"), "rate": money("rate", "0.01"), "extra": money("extra", "0.01")},
                          PAPER.output)
    assert solve_hidden(cents, "extra", {"count": F(2), "rate": F(6)}, F(13)).value == F(13, 2) - 6
    # zero jugs of lemonade observed: their price cannot be inferred (closed form divides by zero)
    jugs = QuantityGraph({"count": count("count"), "rate": money("rate"), "count2": count("count2", 0),
                          "rate2": money("rate2")}, add(mul("count", "rate"), mul("count2", "rate2")))
    result = solve_hidden(jugs, "rate2", {"count": F(3), "rate": F(5), "count2": F(0)}, F(15))
    assert result.status == "non_unique"
    result = solve_hidden(jugs, "rate2", {"count": F(3), "rate": F(5), "count2": F(0)}, F(16))
    assert result.status == "no_solution"
    # a negative hidden count is never valid
    result = solve_hidden(jugs, "count2", {"count": F(3), "rate": F(5), "rate2": F(2)}, F(11))
    assert result.status == "invalid" and result.candidates == (F(-2),)


def test_solver_handles_division_and_quadratics():
    shared = QuantityGraph({"total": money("total"), "people": count("people")}, div("total", "people"))
    assert solve_hidden(shared, "people", {"total": F(60)}, F(15)).value == 4
    # hidden squared: two roots, only the positive one is valid -> unique
    square = QuantityGraph({"side": count("side"), "price": money("price")}, mul("side", "side", "price"))
    result = solve_hidden(square, "side", {"price": F(3)}, F(75))
    assert (result.status, result.value) == ("ok", F(5))
    # both roots valid (minimum 0 is not enough: -5 is still invalid) -> guard with a signed quantity
    signed = QuantityGraph({"x": Quantity("x", "amount", F(1), F(-100))}, mul("x", "x"))
    assert solve_hidden(signed, "x", {}, F(25)).status == "non_unique"


def test_solver_errors_name_the_field():
    with pytest.raises(GraphError, match="hidden: unknown quantity 'nope'"):
        solve_hidden(PAPER, "nope", {}, F(1))
    with pytest.raises(GraphError, match="known_values: missing rate"):
        solve_hidden(PAPER, "extra", {"count": F(6)}, F(42))


def test_depends_on():
    values = {"count": F(0), "rate": F(6), "extra": F(1)}
    assert not depends_on(PAPER.output, "extra", values, F(1))  # zero trays: the fee does not matter
    assert depends_on(PAPER.output, "extra", {**values, "count": F(2)}, F(1))
    assert not depends_on(mul("count", "rate"), "extra", values, F(1))


def test_closed_forms_are_cached_per_structure():
    solver._CACHE.clear()
    solve_hidden(PAPER, "extra", {"count": F(6), "rate": F(6)}, F(42))
    solve_hidden(PAPER, "extra", {"count": F(3), "rate": F(2)}, F(9))
    assert len(solver._CACHE) == 1
