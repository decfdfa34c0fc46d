"""Read one exact number from a model's final answer (math word problems).

Model text is untrusted. Nothing here calls ``eval``, ``sympify`` or
``parse_expr``: the final-answer span is located by the project's bounded scan
(:func:`cf_tasks.answers.extract_answer_text`: the last ``\\boxed{}``, then
documented fallbacks), and the number is read by regular expressions into a
``fractions.Fraction``, so equality is exact (no floats).

Accepted inside the box (surrounding words, units and currency are ignored):

* integers and decimals, signed (``-3``, ``\u22123``, ``12.50``, ``.5``), with thousands
  separators ``1,234,567`` / ``1{,}234`` / ``1\\,234``;
* fractions ``3/4``, ``\\frac{3}{4}``, ``\\dfrac{-3}{4}``, ``\\tfrac34``;
* currency and unit decorations: ``\\$77``, ``77 dollars``, ``\\text{77 trays}``, ``77\\%``;
  quotes (``'77'``, what the reference solvers print) are ignored too.

A box holding several numbers is a hedge (``3 or 4``, ``3, 4``, ``1,5``) and
gives ``None`` (scored 0), and so does plain-text arithmetic (``11*7``) --
unless it is a pure LaTeX arithmetic expression (``11 \\times 7``,
``\\sqrt{49}``, ``2^{3}``). Those go to the optional
Math-Verify fallback (``pip install executable-cf[math]``), called with its
signal-based timeouts disabled (``parsing_timeout=None``: safe off the main
thread) and only on short spans; its sympy result is then evaluated by
:func:`_bounded_value`, which accepts only small rationals, sums, products,
small integer powers and exact square roots (so ``10^{10^{10}}`` is refused
instead of computed). Non-ASCII digits other than full-width ones are not
numbers here.
"""

from __future__ import annotations

import math
import re
import unicodedata
from fractions import Fraction
from typing import Any

from cf_tasks.answers import extract_answer_text

MAX_SPAN_CHARS = 512  # a single-number answer is never longer
MAX_FALLBACK_CHARS = 200  # longest span handed to Math-Verify
MAX_DIGITS = 64  # longer numbers are never gold values
MAX_BITS = 256  # bound on numerators/denominators inside the fallback evaluator

_UNWRAP = re.compile(r"\\(?:text|textbf|textrm|textit|textnormal|mathrm|mathbf|mathit|mbox|operatorname|boxed|fbox)"
                     r"\s*(?=\{)")
_HARMLESS = re.compile(r"\\(?:left|right|displaystyle|textstyle|quad|qquad|bigl|bigr|Bigl|Bigr|big|Big|dollar|"
                       r"euro|pounds|cents?)\b|\\[$%{}&#,;:!> ]|\\\\")
_FRAC = re.compile(r"\\[dt]?frac\s*(?:\{\s*([-+]?[0-9.]+)\s*\}|([0-9]))\s*(?:\{\s*([-+]?[0-9.]+)\s*\}|([0-9]))")
_THOUSANDS = re.compile(r"(?<![0-9.])[0-9]{1,3}(?:,[0-9]{3})+(?![0-9])")
_NUMBER = re.compile(r"(?<![0-9.])(?:([-+])\s*)?((?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:\s*/\s*[-+]?[0-9]+(?:\.[0-9]+)?)?)")
_LATEX_CMD = re.compile(r"\\[A-Za-z]+")
_ARITH_REST = re.compile(r"^(?:[\s{}()\[\]+\-*/^=×·÷]|\\(?:cdot|times|div|sqrt|frac|dfrac|tfrac|left|right))*$")
_CURRENCY = "$€£¥₹¢"
_BIG_POWER = re.compile(r"\^\s*\{[^}]*(?:\^|[0-9]{3})|\^\s*[0-9]{3}")


# NFKC would turn "10²" into "102"; mark super/subscript digits as powers/indices first.
_SCRIPT_DIGITS = str.maketrans(
    {**{sup: f"^{d}" for d, sup in enumerate("\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079")},
     **{chr(0x2080 + d): f"_{d}" for d in range(10)}}
)


def _normalise(span: str) -> str:
    text = unicodedata.normalize("NFKC", span.translate(_SCRIPT_DIGITS))  # full-width digits -> ASCII
    text = text.replace("\u2212", "-").replace("\u2013", "-").replace("\u2044", "/").replace("\x00", " ")
    text = text.replace("{,}", "").replace("\\,", "").replace("\\!", "")
    text = _UNWRAP.sub("", text)
    text = _HARMLESS.sub(" ", text)
    for ch in _CURRENCY + "%'\"`":
        text = text.replace(ch, " ")
    text = _FRAC.sub(lambda m: f" {m.group(1) or m.group(2)}/{m.group(3) or m.group(4)} ", text)
    return _THOUSANDS.sub(lambda m: m.group(0).replace(",", ""), text)


def _to_fraction(sign: str, token: str) -> Fraction | None:
    token = token.replace(" ", "")
    if sum(c.isdigit() for c in token) > MAX_DIGITS:
        return None
    try:
        if "/" in token:
            num, den = token.split("/", 1)
            value = Fraction(num) / Fraction(den)
        else:
            value = Fraction(token)
    except (ValueError, ZeroDivisionError):
        return None
    return -value if sign == "-" else value


def parse_number(span: str | None, *, fallback: bool = True) -> Fraction | None:
    """The single number in an answer span, exactly; ``None`` when absent, hedged or unreadable."""
    if not isinstance(span, str) or not span.strip() or len(span) > MAX_SPAN_CHARS:
        return None
    text = _normalise(span)
    matches = list(_NUMBER.finditer(text))
    if len(matches) > 16:
        return None
    rest = _NUMBER.sub(" ", text)
    commands = _LATEX_CMD.findall(rest)
    arithmetic = bool(commands) or any(op in rest for op in "^*×·÷")
    if len(matches) == 1 and not arithmetic:
        return _to_fraction(*matches[0].groups())
    if not matches:
        return None
    # Several numbers, or one inside an operator: only a pure LaTeX arithmetic expression goes on.
    latex = bool(commands) or "^" in rest
    if _BIG_POWER.search(text):  # power towers and huge exponents are never our answers: refuse cheaply
        return None
    if fallback and latex and "**" not in rest and _ARITH_REST.match(rest):
        return _math_verify_number(text)  # normalised: "10²" reaches it as "10^2"
    return None


def parse_final_number(response: str, *, fallback: bool = True) -> Fraction | None:
    """The number in a response's final answer (last ``\\boxed{}``, see :mod:`cf_tasks.answers`)."""
    return parse_number(extract_answer_text(response), fallback=fallback)


def _fits(value: Fraction) -> bool:
    return abs(value.numerator).bit_length() <= MAX_BITS and value.denominator.bit_length() <= MAX_BITS


def _bounded_value(expr: Any, depth: int = 0) -> Fraction | None:
    """Evaluate a small sympy number expression exactly, refusing anything large or non-rational."""
    if depth > 20:
        return None
    if getattr(expr, "is_Rational", False):
        value = Fraction(int(expr.p), int(expr.q))
        return value if _fits(value) else None
    if getattr(expr, "is_Float", False):
        text = str(expr)
        return _to_fraction("", text) if re.fullmatch(r"-?[0-9]+\.?[0-9]*", text) else None
    if getattr(expr, "is_Add", False) or getattr(expr, "is_Mul", False):
        parts = [_bounded_value(a, depth + 1) for a in expr.args]
        if any(p is None for p in parts):
            return None
        out = Fraction(0) if expr.is_Add else Fraction(1)
        for p in parts:
            out = out + p if expr.is_Add else out * p
            if not _fits(out):
                return None
        return out
    if getattr(expr, "is_Pow", False):
        base = _bounded_value(expr.base, depth + 1)
        exp = expr.exp
        if base is None or not getattr(exp, "is_Rational", False):
            return None
        if exp.q == 2 and exp.p == 1:  # exact square root only
            if base < 0:
                return None
            num, den = math.isqrt(base.numerator), math.isqrt(base.denominator)
            return Fraction(num, den) if num * num == base.numerator and den * den == base.denominator else None
        if exp.q != 1 or abs(int(exp.p)) > 64:
            return None
        e = int(exp.p)
        if max(abs(base.numerator).bit_length(), base.denominator.bit_length()) * abs(e) > MAX_BITS:
            return None
        if base == 0 and e < 0:
            return None
        return base ** e
    return None


def _math_verify_number(span: str) -> Fraction | None:
    if len(span) > MAX_FALLBACK_CHARS:
        return None
    try:
        from math_verify import parse
    except ImportError:  # optional extra: executable-cf[math]
        return None
    try:
        parsed = parse(f"${span}$", parsing_timeout=None)
    except Exception:  # noqa: BLE001 - a parser failure on model text is a wrong answer, not a crash
        return None
    if not parsed or isinstance(parsed[0], str):
        return None
    return _bounded_value(parsed[0])
