"""Read a model's final answer as a set of values, the way a careful grader would, evaluating nothing.

Model text is untrusted data. Nothing here calls ``eval``, ``ast.literal_eval``,
``sympify`` or ``parse_expr``: the answer is located by bounded scans
(:mod:`cf_tasks.answer_span`) and read from tokens (:mod:`cf_tasks.answer_tokens`).
The policy, in order, with examples, is ``docs/answers.md``; in short:

* **where**: after the last ``</think>``; the final list of boxes (``\\boxed{4},
  \\boxed{10}`` is ``{4, 10}`` when every box holds one value, else the last box
  counts); without a box, ``<answer>`` tags, answer markers, a last line that is
  only a list, a concluding sentence;
* **what**: statement prefixes go (``f(5) = 2`` is 2, ``f(x=7) \\in \\{4, 10\\}`` is
  ``{4, 10}``), mappings give their values (``r=1 \\to 4`` is 4), condition clauses
  and annotations go (``4 if r < 7``, ``4 (r=1)``), signs may be spaced or dashes
  (``- 7``, ``– 7``, ``−7`` are -7), fractions are exact (``\\frac{14}{2}`` is 7);
* **refused** (no answer, score 0): ellipses and ranges (``0, 1, \\ldots, 6``,
  ``0 \\text{ to } 6``, ``0 \\le y \\le 6``), arithmetic (``3 + 4``), unknown
  LaTeX, numbers glued to letters (``1e9``); hedges are *not* refused: they are
  sets, and the extra elements fail exact match.

Values: integers, decimals and fractions (exact, as ``int`` / ``Fraction``),
quoted strings, ``True``/``False``/``None``. A number longer than
:data:`MAX_DIGITS` digits is unmatchable (it can never equal a gold value).
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any, Iterable

from cf_tasks import answer_tokens as T
from cf_tasks.answer_span import (  # noqa: F401 - re-exported bounds
    MAX_BOX_CANDIDATES,
    MAX_BOX_CHARS,
    MAX_TAIL_CHARS,
    Located,
    last_box,
    locate,
)
from cf_tasks.answer_tokens import MAX_DIGITS, UNMATCHABLE, Value  # noqa: F401 - re-exported

MAX_ELEMENTS = 256  # more values in one answer: unmatchable

_REFUSED = None  # what the item readers return for an answer that must not be read
_MAPPING = frozenset((T.ARROW, T.COLON))
_STATEMENT = frozenset((T.EQ, T.IN))
_CONTAINER_CALLS = frozenset(("set", "list", "tuple", "frozenset", "sorted"))
_RANGE_WORDS = frozenset(("range", "interval", "integers", "inclusive", "exclusive"))
_SKIPPED = frozenset((T.WORD, T.IDENT, T.CALL, T.CURRENCY, T.DOT, T.RANGE, T.COND, T.CONNECT, T.INWORD, T.EMPTY))
_SIMPLE = re.compile(r"\s*(?:\\\{|[\[{(])?\s*(-?[0-9]{1,18}(?:\s*,\s*-?[0-9]{1,18})*)\s*(?:\\\}|[\]})])?\s*\.?\s*")


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` of the whole text; ``None`` if absent or unbalanced.

    Scans at most :data:`MAX_BOX_CHARS` characters after the opening brace, so
    deeply nested or endless braces cost bounded time.
    """
    if not isinstance(text, str):
        return None
    return last_box(text)[0]


def extract_answer_text(text: str) -> str | None:
    """The final answer's text (box contents of a box list joined by ", "), or ``None``."""
    located = locate(text)
    if located is None:
        return None
    return ", ".join(located.spans)


# -- gold values ---------------------------------------------------------------------------------

def canonical_value(value: Any) -> Value:
    """The comparable form of a gold value (JSON scalar)."""
    if isinstance(value, bool):
        return ("bool", value)
    if value is None:
        return ("none", None)
    if isinstance(value, int):
        return ("num", value)  # ints hash and compare equal to the equal Fraction
    if isinstance(value, float):
        return ("num", Fraction(value).limit_denominator(10**9))
    if isinstance(value, Fraction):
        return ("num", value)
    return ("str", str(value))


def canonical_set(values: Iterable[Any]) -> frozenset:
    return frozenset(canonical_value(v) for v in values)


# -- reading a span ------------------------------------------------------------------------------

def read_set(span: str, *, prose: bool = False) -> frozenset | None:
    """The values of one answer span; ``None`` when it holds none or must be refused.

    ``prose`` spans (after "Final answer:", a concluding sentence) are read from
    their last "so"/"thus"/"therefore" on: what comes before is the argument.
    """
    if not isinstance(span, str) or len(span) > T.MAX_SPAN_CHARS:
        return None
    simple = _SIMPLE.fullmatch(span)
    if simple is not None:  # the common "3, 7" / "\\{3, 7\\}": no tokenizer needed
        return frozenset([("num", int(v)) for v in simple.group(1).split(",")])
    try:
        tokens = T.tokenize(T.normalise(T.strip_wrappers(span)))
    except T.TooManyTokens:
        return frozenset({UNMATCHABLE})  # far more than MAX_ELEMENTS values, or no list at all
    if any(t[0] == T.ELLIPSIS for t in tokens):
        return None  # "0, 1, ..., 6" is a range, not a list of values
    if any(a[0] == T.DOT and b[0] == T.CALL for a, b in zip(tokens, tokens[1:])):
        return None  # a method call ("open(p).write('0') and 0"): code, not an answer
    nodes = T.tree(tokens)
    if prose:
        nodes = T.after_last(nodes, frozenset((T.CONNECT,)))
    values = _read_list(nodes, 0)
    if not values:
        return None
    if len(values) > MAX_ELEMENTS:
        return frozenset({UNMATCHABLE})
    return frozenset(values)


def _read_list(nodes: list, depth: int) -> list | None:
    """Values of a comma/``or``/``and`` separated list; ``None`` (refused) when an item is unreadable."""
    if depth > T.MAX_DEPTH:
        return _REFUSED
    nodes = _statement_value(T.drop_conditions(nodes))
    items = T.split(nodes)
    # "r_1=1, r_2=3 -> 4", "r = 3, f(6) = 9": beside mappings or statements about the function,
    # a bare assignment is a label (the latent), not an answer.
    labelled = any(T.last_index(item, _MAPPING) >= 0 or _is_call_statement(item) for item in items)
    out: list = []
    for item in items:
        if labelled and T.last_index(item, _MAPPING) < 0 and _is_assignment(item):
            continue
        values = _read_item(item, depth)
        if values is _REFUSED:
            return _REFUSED
        out.extend(values)
        if len(out) > MAX_ELEMENTS:
            break
    return out


def _statement_value(nodes: list) -> list:
    """``f(x=7) \\in {4, 10}``, ``S = {4, 10}``, ``y in [4, 10]``: the set after the last ``=``/``\\in``."""
    while True:
        cut = T.last_index(nodes, frozenset((T.EQ, T.IN, T.INWORD)))
        if cut < 0:
            return nodes
        rest = [n for n in nodes[cut + 1:] if T.kind_of(n) != T.DOT]
        if len(rest) != 1 or not isinstance(rest[0], T.Group):
            return nodes
        nodes = rest[0].children


def _is_assignment(item: list) -> bool:
    """``r = 1``, ``r_1=3``, ``the latent r must be 3``: a name given a value (a label, not an answer)."""
    eq = next((i for i, n in enumerate(item) if T.kind_of(n) == T.EQ), -1)
    if eq < 1 or not any(T.kind_of(n) == T.IDENT for n in item[:eq]):
        return False
    if not all(T.kind_of(n) in (T.IDENT, T.WORD) for n in item[:eq]):
        return False
    rest = [n for n in item[eq + 1:] if T.kind_of(n) != T.DOT]
    if rest and T.kind_of(rest[0]) == T.OP and rest[0][1] == "-":
        rest = rest[1:]
    return len(rest) == 1 and T.is_value(rest[0])


def _is_call_statement(item: list) -> bool:
    """``f(6) = 9``, ``generated_func_1(x=6) = 9``: a call, its arguments, then ``=``."""
    return (len(item) > 2 and T.kind_of(item[0]) == T.CALL and isinstance(item[1], T.Group)
            and T.kind_of(item[2]) in _STATEMENT)


def _is_range(item: list) -> bool:
    seen_value = False
    for i, node in enumerate(item):
        kind = T.kind_of(node)
        if T.is_value(node):
            seen_value = True
        elif kind == T.RANGE and (seen_value or node[1] == "between"):
            if any(T.is_value(n) for n in item[i + 1:]):
                return True
        elif kind == T.WORD and node[1] in _RANGE_WORDS:
            return True
    return False


def _is_annotation(group: T.Group) -> bool:
    """``(r=1)``, ``(two values)``, ``(for r = 5)``: a note without a value of its own.

    ``(or possibly 10)`` and ``(or 10 if r = 5)`` hold a value: they are part of the answer.
    """
    for item in T.split(T.drop_conditions(group.children)):
        if not _is_assignment(item) and any(T.is_value(n) for n in T.after_last(item, _MAPPING)):
            return False
    return True


def _read_item(item: list, depth: int) -> list | None:
    """The value(s) of one list item: after its mapping arrow and statement prefix, words skipped."""
    cut = T.last_index(item, _MAPPING)
    if cut >= 0:
        item = item[cut + 1:]
        while item and T.kind_of(item[0]) in (T.RANGE, T.INWORD):  # "maps to 4", "results in 4"
            item = item[1:]
    item = T.after_last(item, _STATEMENT)
    if _is_range(item):
        return _REFUSED
    out: list = []
    sign = None
    previous_value = False
    for i, node in enumerate(item):
        if isinstance(node, T.Group):
            caller = item[i - 1] if i else None
            if caller is not None and T.kind_of(caller) == T.CALL and caller[1] not in _CONTAINER_CALLS:
                if any(T.is_value(n) for n in item):
                    return _REFUSED  # "open(p).write('0') and 0": code, not "f(7) = 0"
                continue  # a bare "f(15)" names no value
            if (caller is None or T.kind_of(caller) != T.CALL) and _is_annotation(node):
                continue
            values = _read_list(node.children, depth + 1)
            if values is _REFUSED or (sign == "-" and len(values) != 1):
                return _REFUSED
            values = [_negate(values[0])] if sign == "-" else values
            if values and values[0] is _REFUSED:
                return _REFUSED
            out.extend(values)
            sign, previous_value = None, bool(values) or previous_value
            continue
        kind = node[0]
        if kind in T.VALUE_KINDS:
            value = _negate(node[2]) if sign == "-" else node[2]
            if value is _REFUSED:
                return _REFUSED
            out.append(value)
            sign, previous_value = None, True
        elif kind == T.OP and node[1] in "-+" and sign is None and not previous_value:
            sign = node[1]
        elif kind in _SKIPPED:
            continue
        else:  # an operator between values, a comparison, unknown LaTeX, "1e9": not an answer we can read
            return _REFUSED
    return _REFUSED if sign is not None else out


def _negate(value: Value) -> Value | None:
    if value[0] != "num":
        return _REFUSED
    return ("num", -value[1])


def parse_answer_set(text: str) -> frozenset | None:
    """The set of values in a response's final answer, or ``None`` when there is none (or it is refused)."""
    located = locate(text)
    if located is None or located.refused:
        return None
    if located.truncated:
        return frozenset({UNMATCHABLE})
    if len(located.spans) == 1:
        return read_set(located.spans[0], prose=located.prose)
    sets = [read_set(span) for span in located.spans]
    if all(s is not None and len(s) == 1 for s in sets):  # one value per box: the boxes are the list
        return frozenset().union(*sets)
    return sets[-1]


# -- gold formatting -----------------------------------------------------------------------------

def format_value(value: Value) -> str:
    kind, payload = value
    if kind == "num":
        payload = Fraction(payload)
        return str(payload.numerator) if payload.denominator == 1 else str(payload)
    if kind == "str":
        return repr(payload)
    if kind == "none":
        return "None"
    if kind == "bool":
        return str(payload)
    return "?"


def format_answer(values: Iterable[Any]) -> str:
    """``\\boxed{a, b}`` for gold values (what a perfect response ends with)."""
    from cf_tasks.records import canonical_set as sorted_set

    return "\\boxed{" + ", ".join(format_value(canonical_value(v)) for v in sorted_set(values)) + "}"
