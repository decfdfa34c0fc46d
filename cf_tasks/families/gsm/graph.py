"""Quantity graphs: the causal model behind a GSM-style word problem.

A word problem here is a small arithmetic graph over named quantities (counts,
unit prices, fees, ...) whose root is the amount the story reports. The graph
is kept as plain JSON so that an item carries its own causal model and can be
re-solved from the file alone (``GsmFamily.oracle_answer``), without trusting
the generator's arithmetic.

Expression grammar (JSON)::

    expr := "name"                         a quantity
          | {"const": "2.5"}               an exact decimal or fraction
          | {"op": "add", "args": [expr, ...]}   n-ary sum (n >= 2)
          | {"op": "mul", "args": [expr, ...]}   n-ary product (n >= 2)
          | {"op": "sub", "args": [a, b]}
          | {"op": "div", "args": [a, b]}

Numbers are exact ``fractions.Fraction`` throughout and serialised as decimal
strings (``"6"``, ``"6.5"``) or ``"p/q"`` when the decimal does not terminate.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Iterator, Mapping

Expr = Any  # str | dict, see the module docstring

OPS = {"add": (2, None), "mul": (2, None), "sub": (2, 2), "div": (2, 2)}  # op -> (min args, max args)
KINDS = ("count", "money", "amount")  # integer count; currency (maybe cents); a measured amount in units
MAX_DEPTH = 32


class GraphError(ValueError):
    """A malformed graph or expression; the message names the offending field."""


def to_fraction(value: Any, field: str = "value") -> Fraction:
    """An exact number from an int or a decimal/fraction string (never a float: floats are inexact)."""
    if isinstance(value, bool):
        raise GraphError(f"{field}: expected a number, got a boolean")
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, Fraction):
        return value
    if isinstance(value, str) and 0 < len(value) <= 64:
        try:
            return Fraction(value)
        except (ValueError, ZeroDivisionError):
            pass
    raise GraphError(f"{field}: expected an exact number (int or decimal string), got {value!r}")


def terminates(value: Fraction) -> bool:
    """Whether ``value`` has a finite decimal expansion (denominator of the form 2^a 5^b)."""
    d = value.denominator
    for p in (2, 5):
        while d % p == 0:
            d //= p
    return d == 1


def format_number(value: Fraction) -> str:
    """Canonical text of an exact number: ``"77"``, ``"-3"``, ``"12.5"``, ``"0.05"``; ``"1/3"`` if non-terminating.

    This is the representation of gold answers (``doc["answer"] == [format_number(v)]``).
    """
    if value.denominator == 1:
        return str(value.numerator)
    if not terminates(value):
        return f"{value.numerator}/{value.denominator}"
    sign = "-" if value < 0 else ""
    v = abs(value)
    digits = 0
    while (v * 10**digits).denominator != 1:
        digits += 1
    scaled = str((v * 10**digits).numerator).rjust(digits + 1, "0")
    return f"{sign}{scaled[:-digits]}.{scaled[-digits:]}"


def validate_expr(expr: Expr, names: frozenset[str] | None = None, field: str = "output", depth: int = 0) -> None:
    """Check the grammar (and, given ``names``, that every referenced quantity exists)."""
    if depth > MAX_DEPTH:
        raise GraphError(f"{field}: expression nested deeper than {MAX_DEPTH}")
    if isinstance(expr, str):
        if names is not None and expr not in names:
            raise GraphError(f"{field}: unknown quantity {expr!r}")
        return
    if not isinstance(expr, dict):
        raise GraphError(f"{field}: expected a quantity name or an object, got {type(expr).__name__}")
    if "const" in expr:
        if set(expr) != {"const"}:
            raise GraphError(f"{field}: a constant has only the key 'const'")
        to_fraction(expr["const"], f"{field}.const")
        return
    op, args = expr.get("op"), expr.get("args")
    if op not in OPS:
        raise GraphError(f"{field}.op: unknown operation {op!r}; known: {', '.join(OPS)}")
    lo, hi = OPS[op]
    if not isinstance(args, list) or len(args) < lo or (hi is not None and len(args) > hi):
        raise GraphError(f"{field}.args: {op!r} takes {lo}{'' if hi == lo else '+'} arguments")
    for i, arg in enumerate(args):
        validate_expr(arg, names, f"{field}.args[{i}]", depth + 1)


@functools.lru_cache(maxsize=1024)
def _const(text: str | int) -> Fraction:
    return to_fraction(text)


def evaluate(expr: Expr, values: Mapping[str, Fraction]) -> Fraction:
    """Execute the graph exactly. Raises ``ZeroDivisionError`` on a zero divisor, ``KeyError`` on a missing value."""
    if isinstance(expr, str):
        return values[expr]
    if "const" in expr:
        return _const(expr["const"])
    op = expr["op"]
    args = [evaluate(a, values) for a in expr["args"]]
    if op == "add":
        return sum(args, Fraction(0))
    if op == "mul":
        out = Fraction(1)
        for a in args:
            out *= a
        return out
    if op == "sub":
        return args[0] - args[1]
    return args[0] / args[1]  # div


def variables(expr: Expr) -> Iterator[str]:
    """Quantity names in first-appearance order (with repeats)."""
    if isinstance(expr, str):
        yield expr
    elif "op" in expr:
        for arg in expr["args"]:
            yield from variables(arg)


def count_ops(expr: Expr) -> int:
    """Binary operations in the graph (an n-ary sum of k terms counts k - 1)."""
    if isinstance(expr, str) or "const" in expr:
        return 0
    return len(expr["args"]) - 1 + sum(count_ops(a) for a in expr["args"])


# -- small constructors: the graph API used by the story templates ----------------------------
def add(*args: Expr) -> dict:
    return {"op": "add", "args": list(args)}


def mul(*args: Expr) -> dict:
    return {"op": "mul", "args": list(args)}


def sub(a: Expr, b: Expr) -> dict:
    return {"op": "sub", "args": [a, b]}


def div(a: Expr, b: Expr) -> dict:
    return {"op": "div", "args": [a, b]}


def const(value: int | str | Fraction) -> dict:
    return {"const": format_number(to_fraction(value))}


@functools.lru_cache(maxsize=256)
def _quantity_json(kind: str, step: Fraction, minimum: Fraction) -> tuple:
    return (("kind", kind), ("step", format_number(step)), ("minimum", format_number(minimum)))


@dataclass(frozen=True)
class Quantity:
    """One node of the graph: its kind decides which values are valid (see :func:`is_valid`)."""

    name: str
    kind: str  # one of KINDS
    step: Fraction = Fraction(1)  # values are multiples of step (1 for counts, 0.01 for money with cents)
    minimum: Fraction = Fraction(1)  # smallest valid value (0 allowed for optional extras)

    def is_valid(self, value: Fraction) -> bool:
        return value >= self.minimum and (value / self.step).denominator == 1

    def to_json(self) -> dict:
        return dict(_quantity_json(self.kind, self.step, self.minimum))

    @classmethod
    def from_json(cls, name: str, obj: Any, field: str) -> "Quantity":
        if not isinstance(obj, dict):
            raise GraphError(f"{field}: expected an object")
        kind = obj.get("kind")
        if kind not in KINDS:
            raise GraphError(f"{field}.kind: expected one of {', '.join(KINDS)}, got {kind!r}")
        step = to_fraction(obj.get("step", 1), f"{field}.step")
        if step <= 0:
            raise GraphError(f"{field}.step: must be positive")
        return cls(name, kind, step, to_fraction(obj.get("minimum", 1), f"{field}.minimum"))


@dataclass(frozen=True)
class QuantityGraph:
    """Quantities plus the expression of the reported outcome."""

    quantities: Mapping[str, Quantity]
    output: Expr

    def evaluate(self, values: Mapping[str, Fraction]) -> Fraction:
        return evaluate(self.output, values)

    @property
    def n_ops(self) -> int:
        return count_ops(self.output)

    def to_json(self) -> dict:
        return {"quantities": {n: q.to_json() for n, q in self.quantities.items()}, "output": self.output}

    @classmethod
    def from_json(cls, obj: Any, field: str = "graph") -> "QuantityGraph":
        if not isinstance(obj, dict) or not isinstance(obj.get("quantities"), dict):
            raise GraphError(f"{field}.quantities: expected an object of quantities")
        quantities = {n: Quantity.from_json(n, q, f"{field}.quantities.{n}") for n, q in obj["quantities"].items()}
        output = obj.get("output")
        validate_expr(output, frozenset(quantities), f"{field}.output")
        return cls(quantities, output)
