"""Read one exact number from a model's final answer (math word problems).

Model text is untrusted. Nothing here calls ``eval``, ``sympify``, ``parse_expr``
or a third-party parser: the answer is located exactly as for the code tasks
(:func:`cf_tasks.answer_span.locate`: after the last ``</think>``, the final box
list, then the unboxed fallbacks), tokenized by :mod:`cf_tasks.answer_tokens`,
and the number is built as a ``fractions.Fraction``, so equality is exact.

Read (``docs/answers.md`` has the full policy):

* the value after the last ``=`` or ``\\approx`` (``11 \\times 7 = 77``, ``x \\approx 581.75``);
* integers and decimals, signed (``-3``, ``\u22123``, ``– 3``), thousands separators
  (``1,234,567``, ``1{,}234``, ``1\\,234``), fractions (``3/4``, ``\\frac{3}{4}``, ``\\tfrac34``),
  mixed numbers (``7\\frac{1}{2}``, ``7 1/2``); currency, units, ``%``, words and quotes around
  the number are ignored (``\\$77``, ``77 \\text{ dollars}``, ``'77'``);
* LaTeX arithmetic, exactly and within bounds (:mod:`cf_tasks.latex_arith`): ``11 \\times 7``,
  ``\\sqrt{49}``, ``2^{3}``; multi-digit superscripts are one exponent (``10²³`` is 10^23).

Refused (score 0): several numbers (a hedge: ``3 or 4``, ``3, 4``, ``1,5``), plain-text
arithmetic (``11*7``, ``1+2``), power towers, irrational values, boxes in a list that
disagree (``\\boxed{3}, \\boxed{4}``), and anything longer than :data:`MAX_SPAN_CHARS`.
"""

from __future__ import annotations

import re
from fractions import Fraction

from cf_tasks import answer_tokens as T
from cf_tasks.answer_span import locate
from cf_tasks.latex_arith import evaluate

MAX_SPAN_CHARS = 512  # a single-number answer is never longer
MAX_EXPRESSION_CHARS = 200  # longest span read as arithmetic
MAX_DIGITS = T.MAX_DIGITS

_PLAIN = re.compile(r"\s*[-+]?[0-9]{1,64}(?:\.[0-9]{1,64})?\s*")
# "\$77", "77 dollars", "77 \text{ trays}": the common decorated answer, read without the tokenizer
_DECORATED = re.compile(r"\s*(?:\\?\$|€|£)?\s*([0-9]{1,64}(?:\.[0-9]{1,64})?)\s*"
                        r"(?:\\text\s*\{\s*([A-Za-z ]{0,40})\}|([A-Za-z ]{0,40}))\s*\.?\s*")
_STATEMENT = frozenset((T.EQ,))
_DECORATION = frozenset((T.WORD, T.IDENT, T.CALL, T.CURRENCY, T.PERCENT, T.DOT, T.INWORD, T.RANGE, T.COND,
                         T.CONNECT, T.EMPTY))
_SINGLE_DECORATION = _DECORATION | T.SEPARATORS  # with one number, "77," and "77\n" are still 77
# In a concluding sentence the number follows its verb: "so 11 trays would cost $77".
_PROSE_VERBS = frozenset(("cost", "costs", "pay", "pays", "paid", "spend", "spends", "spent", "earn", "earns",
                          "earned", "total", "totals", "comes", "amounts", "need", "needs", "needed", "makes",
                          "get", "gets", "receive", "receives", "shown", "show", "shows", "charged", "charge",
                          "owe", "owes", "bill", "read", "reads", "use", "uses", "used", "takes", "take"))


def _last_verb_before_number(nodes: list) -> int:
    """Index of the last amount verb with a number after it ("pays $77 in total"), else -1."""
    last_value = max((i for i, n in enumerate(nodes) if T.is_value(n)), default=-1)
    return max((i for i, n in enumerate(nodes[:last_value])
                if T.kind_of(n) == T.WORD and n[1] in _PROSE_VERBS), default=-1)


def _single_number(nodes: list) -> Fraction | None:
    """The one number among decorations (units, currency, words), or ``None``."""
    core = [n for n in nodes if T.kind_of(n) not in _SINGLE_DECORATION and not _is_unit_group(n)]
    while len(core) == 1 and isinstance(core[0], T.Group):
        core = [n for n in core[0].children if T.kind_of(n) not in _SINGLE_DECORATION]
    sign = ""
    if core and not isinstance(core[0], T.Group) and core[0][0] == T.OP and core[0][1] in "-+":
        sign, core = core[0][1], core[1:]
    if not core or any(isinstance(n, T.Group) or n[0] not in (T.NUM, T.STR) for n in core):
        return None
    numbers = [_number_of(n) for n in core]
    if any(v is None for v in numbers):
        return None
    if len(numbers) == 2 and _is_mixed(core, numbers):  # 7 1/2
        numbers = [numbers[0] + numbers[1]]
    if len(numbers) != 1:
        return None  # several numbers: a hedge
    return -numbers[0] if sign == "-" else numbers[0]


def _number_of(node) -> Fraction | None:
    kind, text, payload = node
    if kind == T.STR:  # '77': what reference solvers print for string answers
        inner = payload[1].strip()
        return Fraction(inner) if _PLAIN.fullmatch(inner) else None
    return Fraction(payload[1]) if payload[0] == "num" else None


def _is_mixed(core: list, numbers: list) -> bool:
    whole, part = numbers
    return ("/" not in core[0][1] and "." not in core[0][1] and "/" in core[1][1]
            and whole.denominator == 1 and 0 < part < 1)


def _is_unit_group(node) -> bool:
    """``(dollars)``, ``\\text{ per tray}`` that stayed bracketed: words only."""
    return isinstance(node, T.Group) and bool(node.children) and all(
        T.kind_of(n) in (T.WORD, T.IDENT, T.DOT) for n in node.children)


_LATEX_HINT = re.compile(r"\\(?:times|cdot|div|[dtc]?frac|sqrt)(?![A-Za-z])|\^|[\u00b2\u00b3\u00b9\u2070-\u2079]")


def _expression_value(nodes: list, span: str) -> Fraction | None:
    """A LaTeX arithmetic expression's value; leading currency and trailing units are allowed.

    Plain-text arithmetic (``11*7``, ``1+2``, ``2**10``) is not read: the instruction asks
    for the number itself, and only LaTeX (``\\times``, ``\\frac``, ``\\sqrt``, ``^``) is math notation.
    """
    if len(span) > MAX_EXPRESSION_CHARS or not _LATEX_HINT.search(span):
        return None
    start, end = 0, len(nodes)
    while start < end and T.kind_of(nodes[start]) == T.CURRENCY:
        start += 1
    while end > start and (T.kind_of(nodes[end - 1]) in _DECORATION or _is_unit_group(nodes[end - 1])):
        end -= 1
    core = nodes[start:end]
    return evaluate(core) if core else None


def parse_number(span: str | None, *, arithmetic: bool = True, prose: bool = False) -> Fraction | None:
    """The single number in an answer span, exactly; ``None`` when absent, hedged or unreadable.

    ``arithmetic=False`` reads literal numbers only (no ``11 \\times 7``). ``prose``
    spans are read from their last "so"/"thus" and last amount verb on.
    """
    if not isinstance(span, str) or not span.strip() or len(span) > MAX_SPAN_CHARS:
        return None
    if _PLAIN.fullmatch(span):
        return Fraction(span.strip())
    decorated = _DECORATED.fullmatch(span)
    if decorated is not None and not any(w.lower() in T.KEYWORDS for w in
                                         (decorated.group(2) or decorated.group(3) or "").split()):
        return Fraction(decorated.group(1))
    try:
        tokens = T.tokenize(T.normalise(span, thousands=True))
    except T.TooManyTokens:
        return None
    if any(t[0] == T.ELLIPSIS for t in tokens):
        return None
    nodes = T.tree(tokens)
    if prose:
        nodes = T.after_last(nodes, frozenset((T.CONNECT,)))
        nodes = T.drop_conditions(nodes)
        nodes = nodes[_last_verb_before_number(nodes) + 1:]
    nodes = T.after_last(nodes, _STATEMENT)
    value = _single_number(nodes)
    if value is None and arithmetic:
        value = _expression_value(nodes, span)
    if value is None or abs(value.numerator).bit_length() > 4 * MAX_DIGITS:
        return None
    return value


def parse_final_number(response: str, *, arithmetic: bool = True) -> Fraction | None:
    """The number in a response's final answer; boxes of one list must agree."""
    located = locate(response)
    if located is None or located.refused or located.truncated:
        return None
    values = {parse_number(span, arithmetic=arithmetic, prose=located.prose) for span in located.spans}
    if len(values) != 1:
        return None  # \boxed{3}, \boxed{4}: a hedge
    return values.pop()
