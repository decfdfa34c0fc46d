"""Exact abduction of the hidden quantity of a quantity graph.

Why sympy, and why cached: the equation ``output(graph; hidden) = observed`` is
solved *symbolically* once per graph structure (every quantity a symbol), and
the closed-form solutions are converted back into our own JSON expression
grammar (:mod:`.graph`) and evaluated with exact fractions for each item. A
graph structure recurs across thousands of items, so generation pays sympy's
cost once per structure instead of once per item (``benchmarks/bench_gsm.py``
measures both). Only expressions that we built ever reach sympy: nothing is
parsed from text (no ``sympify``/``parse_expr``).

Each candidate is checked by executing the graph forward with it (so a wrong
closed form can never slip through), then against the story's validity rules
(:meth:`Quantity.is_valid`: positive, integer or whole cents). Exactly one
valid candidate is required.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from fractions import Fraction
from typing import Mapping

from .graph import Expr, GraphError, QuantityGraph, evaluate, format_number, variables

OBSERVED = "__observed__"  # name of the observed outcome inside closed forms (not a valid story name)

OK, NON_UNIQUE, NO_SOLUTION, INVALID = "ok", "non_unique", "no_solution", "invalid"


@dataclass(frozen=True)
class Abduction:
    """The result of solving for the hidden quantity.

    ``status``: ``ok`` (one valid value), ``non_unique`` (the observation does not pin the value down:
    several valid values, or the outcome does not depend on it), ``no_solution`` (no value reproduces the
    observation), ``invalid`` (solutions exist but none is valid for the story).
    """

    status: str
    value: Fraction | None = None
    candidates: tuple[Fraction, ...] = ()


class Unsupported(ValueError):
    """A sympy result outside the expression grammar (e.g. an irrational root)."""


def _to_sympy(expr: Expr, symbols: dict):
    import sympy

    if isinstance(expr, str):
        if expr not in symbols:
            symbols[expr] = sympy.Symbol(expr)
        return symbols[expr]
    if "const" in expr:
        f = Fraction(expr["const"])
        return sympy.Rational(f.numerator, f.denominator)
    args = [_to_sympy(a, symbols) for a in expr["args"]]
    op = expr["op"]
    if op == "add":
        return sympy.Add(*args)
    if op == "mul":
        return sympy.Mul(*args)
    if op == "sub":
        return args[0] - args[1]
    return args[0] / args[1]


def _from_sympy(obj) -> Expr:
    """A sympy expression (sums, products, integer powers, rationals, symbols) as our grammar."""
    import sympy

    if obj.is_Symbol:
        return obj.name
    if obj.is_Rational:
        return {"const": format_number(Fraction(int(obj.p), int(obj.q)))}
    if obj.is_Add:
        return {"op": "add", "args": [_from_sympy(a) for a in obj.args]}
    if obj.is_Mul:
        return {"op": "mul", "args": [_from_sympy(a) for a in obj.args]}
    if obj.is_Pow and obj.exp.is_Integer:
        e = int(obj.exp)
        if e == 0:
            return {"const": "1"}
        if abs(e) > 8:
            raise Unsupported(f"power {e} too large")
        base = _from_sympy(obj.base)
        power = base if abs(e) == 1 else {"op": "mul", "args": [base] * abs(e)}
        return power if e > 0 else {"op": "div", "args": [{"const": "1"}, power]}
    raise Unsupported(f"cannot express {sympy.srepr(obj)[:80]} exactly")


# sympy's own checking and simplification are skipped (25x faster): every candidate is verified by
# executing the graph forward, which also discards any root that zeroes a denominator.
_SOLVE_OPTIONS = {"check": False, "simplify": False}

_CACHE: dict[tuple[str, str], tuple[Expr, ...] | None] = {}
_CACHE_LOCK = threading.Lock()


def closed_forms(output: Expr, hidden: str) -> tuple[Expr, ...] | None:
    """Symbolic solutions ``hidden = g(other quantities, __observed__)``, cached per structure.

    ``None`` when sympy's solutions fall outside the grammar; callers then solve numerically per item.
    """
    key = (json.dumps(output, sort_keys=True), hidden)
    with _CACHE_LOCK:
        if key in _CACHE:
            return _CACHE[key]
    import sympy

    symbols: dict = {}
    expr = _to_sympy(output, symbols)
    if hidden not in symbols:
        forms: tuple[Expr, ...] | None = ()
    else:
        y = sympy.Symbol(OBSERVED)
        try:
            solutions = sympy.solve(sympy.Eq(expr, y), symbols[hidden], **_SOLVE_OPTIONS)
            forms = tuple(_from_sympy(s) for s in solutions)
        except Unsupported:
            forms = None
    with _CACHE_LOCK:
        _CACHE[key] = forms
    return forms


def _numeric_candidates(output: Expr, hidden: str, known: Mapping[str, Fraction], observed: Fraction) -> list[Fraction]:
    """Per-item sympy solve with the numbers substituted (the slow path and the benchmark's baseline)."""
    import sympy

    symbols: dict = {}
    expr = _to_sympy(output, symbols)
    if hidden not in symbols:
        return []
    subs = {symbols[n]: sympy.Rational(v.numerator, v.denominator) for n, v in known.items() if n in symbols}
    eq = sympy.Eq(expr.subs(subs), sympy.Rational(observed.numerator, observed.denominator))
    solutions = sympy.solve(eq, symbols[hidden], **_SOLVE_OPTIONS)
    return [Fraction(int(s.p), int(s.q)) for s in solutions if s.is_Rational]


def depends_on(output: Expr, hidden: str, values: Mapping[str, Fraction], step: Fraction) -> bool:
    """Whether the outcome changes when ``hidden`` moves by one ``step`` from its value in ``values``.

    Exact for our graphs: the hidden quantity appears once in a tree of + - * /, so the outcome is a
    linear-fractional function of it: either constant or injective.
    """
    if hidden not in set(variables(output)):
        return False
    moved = {**values, hidden: values[hidden] + step}
    try:
        return evaluate(output, values) != evaluate(output, moved)
    except ZeroDivisionError:
        return True


def solve_hidden(graph: QuantityGraph, hidden: str, known: Mapping[str, Fraction], observed: Fraction,
                 *, naive: bool = False) -> Abduction:
    """Abduce the hidden quantity from one observed outcome.

    ``known`` holds every other quantity. ``naive=True`` skips the closed-form cache and calls sympy on
    the substituted equation (kept for the benchmark and as the fallback for unsupported closed forms).
    """
    if hidden not in graph.quantities:
        raise GraphError(f"hidden: unknown quantity {hidden!r}")
    missing = [n for n in graph.quantities if n != hidden and n not in known]
    if missing:
        raise GraphError(f"known_values: missing {', '.join(missing)}")
    output = graph.output
    forms = None if naive else closed_forms(output, hidden)
    raw: list[Fraction] = []
    if forms is None:
        raw = _numeric_candidates(output, hidden, known, observed)
    else:
        env = {**known, OBSERVED: observed}
        for form in forms:
            try:
                raw.append(evaluate(form, env))
            except ZeroDivisionError:  # the closed form's coefficient vanishes here
                continue
    candidates = []
    for c in sorted(set(raw)):
        try:
            if evaluate(output, {**known, hidden: c}) == observed:  # forward check by execution
                candidates.append(c)
        except ZeroDivisionError:
            continue
    quantity = graph.quantities[hidden]
    if not candidates:
        probe = {**known, hidden: quantity.minimum if quantity.minimum > 0 else quantity.step}
        if not depends_on(output, hidden, probe, quantity.step):
            try:
                same = evaluate(output, probe) == observed
            except ZeroDivisionError:
                same = False
            return Abduction(NON_UNIQUE if same else NO_SOLUTION)
        return Abduction(NO_SOLUTION)
    valid = tuple(c for c in candidates if quantity.is_valid(c))
    if not valid:
        return Abduction(INVALID, candidates=tuple(candidates))
    if len(valid) > 1:
        return Abduction(NON_UNIQUE, candidates=valid)
    return Abduction(OK, valid[0], valid)
