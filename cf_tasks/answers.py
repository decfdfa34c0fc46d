"""Parse a model's final answer into a set of values, without evaluating anything.

Model text is untrusted data. Nothing here calls ``eval``, ``ast.literal_eval``
on long input, ``sympify`` or ``parse_expr``: the answer is located by a
bounded brace scan and its elements are read by one regular expression.

Where the answer is taken from (first that applies):

1. the content of the **last** ``\\boxed{...}`` (or ``\\fbox{...}``), braces balanced;
2. the content of the last ``<answer>...</answer>`` tag;
3. the text after the last "final answer" / "answer:" marker, up to the end of its line.

Elements are ASCII integers and decimals (``-3``, ``2.5``, ``1,000`` inside a
number is not supported: commas separate elements), fractions ``a/b``,
``True``/``False``/``None`` and quoted strings. Anything else is ignored, so
``\\boxed{\\{3, 7\\}}`` and ``\\boxed{[3, 7]}`` both give ``{3, 7}``. A number
longer than :data:`MAX_DIGITS` digits makes the answer unmatchable (it can
never equal a gold value) instead of raising.
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any, Iterable

MAX_DIGITS = 64  # longer numbers are never gold values of our tasks
MAX_BOX_CHARS = 4096  # a final answer longer than this is not an answer
MAX_ELEMENTS = 256
MAX_BOX_CANDIDATES = 256  # "\\boxed" mentions examined from the end before giving up
MAX_TAIL_CHARS = 65536  # the tag and "answer:" fallbacks read only the response's tail

_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
_BRACE_RE = re.compile(r"[{}]")
_ANSWER_TAG_RE = re.compile(r"<answer>(.*?)</answer>", re.S | re.I)
_LAST_CLOSE_TAG_RE = re.compile(r".*</answer>", re.S | re.I)
_FINAL_RE = re.compile(r"(?:final answer|answer)\s*(?:is|:)\s*([^\n]*)", re.I)
_TOKEN_RE = re.compile(
    r"""(?P<str>'[^'\\\n]{0,200}'|"[^"\\\n]{0,200}")"""
    r"|(?P<num>(?<![\w.])[-+\u2212]?[0-9]+(?:\.[0-9]+)?(?:\s*/\s*[0-9]+)?(?!\w|\.[0-9]))"
    r"|(?P<const>\b(?:True|False|None)\b)"
)

Value = tuple  # ("num", Fraction) | ("str", str) | ("bool", bool) | ("none", None) | ("bad", str)
UNMATCHABLE: Value = ("bad", "unparseable")


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}``; ``None`` if absent or unbalanced.

    Scans at most :data:`MAX_BOX_CHARS` characters after the opening brace, so
    deeply nested or endless braces cost bounded time.
    """
    if not isinstance(text, str):
        return None
    return _last_box(text)[0]


def _last_box(text: str) -> tuple[str | None, bool]:
    """``(content of the last box or None, whether the text mentions a box command at all)``."""
    # Each needle's last position is cached and moved only when that candidate fails, so
    # the scan is linear; re-searching both needles every step was quadratic ("\\boxed" * 10**5
    # without braces took 11 s). Many bare "\\boxed" mentions after the last real box mean a
    # malformed answer, so at most MAX_BOX_CANDIDATES candidates are examined.
    boxed, fbox = text.rfind("\\boxed"), text.rfind("\\fbox")
    mentioned = boxed >= 0 or fbox >= 0
    for _ in range(MAX_BOX_CANDIDATES):
        pos = max(boxed, fbox)
        if pos < 0:
            return None, mentioned
        last = _BOX_RE.match(text, pos)
        if last is not None:
            break
        if pos == boxed:
            boxed = text.rfind("\\boxed", 0, pos)
        else:
            fbox = text.rfind("\\fbox", 0, pos)
    else:
        return None, mentioned
    start = last.end()
    depth = 1
    for brace in _BRACE_RE.finditer(text, start, min(len(text), start + MAX_BOX_CHARS)):
        depth += 1 if brace.group() == "{" else -1
        if depth == 0:
            return text[start:brace.start()], True
    return None, True


def extract_answer_text(text: str) -> str | None:
    """The final-answer span of a response (see the module docstring for the fallbacks)."""
    if not isinstance(text, str):
        return None
    boxed, mentioned = _last_box(text)
    if boxed is not None:
        return boxed
    if mentioned:
        return None  # a box was attempted but is malformed: do not fall back to other text
    tail = text[-MAX_TAIL_CHARS:]
    # Cut the tail after its last closing tag first: with no closing tag ahead, every
    # "<answer>" made the lazy scan run to the end ("<answer>" * 8192 took 4.6 s).
    closing = _LAST_CLOSE_TAG_RE.match(tail)
    tags = _ANSWER_TAG_RE.findall(tail, 0, closing.end()) if closing else []
    if tags:
        return tags[-1][:MAX_BOX_CHARS]
    finals = _FINAL_RE.findall(tail)
    if finals:
        return finals[-1][:MAX_BOX_CHARS]
    return None


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


def _number(token: str) -> Value:
    if len(token) > MAX_DIGITS:
        if sum(ch.isdigit() for ch in token) > MAX_DIGITS:
            return UNMATCHABLE
    if token.isdigit() or (token[0] == "-" and token[1:].isdigit()):
        return ("num", int(token))  # the common case, kept cheap
    token = token.replace("\u2212", "-").replace(" ", "")
    if "/" in token:
        num, den = token.split("/")
        if int(den) == 0:
            return UNMATCHABLE
        return ("num", Fraction(Fraction(num), Fraction(den)))
    if "." in token:
        return ("num", Fraction(token))
    return ("num", int(token))


def parse_elements(span: str) -> frozenset | None:
    """Values in an answer span; ``None`` when it holds no value at all."""
    if len(span) > MAX_BOX_CHARS:
        return None
    tokens = _TOKEN_RE.findall(span)
    if not tokens:
        return None
    if len(tokens) > MAX_ELEMENTS:
        return frozenset({UNMATCHABLE})
    values = set()
    for quoted, number, const in tokens:
        if number:
            values.add(_number(number))
        elif quoted:
            values.add(("str", quoted[1:-1]))
        elif const == "None":
            values.add(("none", None))
        else:
            values.add(("bool", const == "True"))
    return frozenset(values)


def parse_answer_set(text: str) -> frozenset | None:
    """The set of values in a response's final answer, or ``None`` when there is none."""
    span = extract_answer_text(text)
    if span is None:
        return None
    return parse_elements(span)


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
