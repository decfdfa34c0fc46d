"""Tokens of an answer span: the vocabulary shared by the set reader and the number reader.

An answer span (the content of a box, or the text after "Final answer:") is
normalised (unicode look-alikes, LaTeX decorations, markdown) and cut into
tokens by one linear regular-expression scan, then grouped by brackets into a
tree. Nothing is evaluated: a number token carries an exact ``Fraction`` (or
``int``) parsed from its digits, a word is only classified by a fixed table.

Why a tokenizer and not "every number in the span": a careful grader reads
``f(5) = 2`` as 2, ``r=1 \\to 4`` as 4, ``0 \\text{ to } 6`` as a range and
``- 7`` as -7; all of that is structure around the numbers.

Cost bound: every function here is linear in its input, which callers cap
(:data:`MAX_SPAN_CHARS`); the bracket tree is built without recursion, so
nesting depth costs nothing but memory proportional to the input.
"""

from __future__ import annotations

import re
import unicodedata
from fractions import Fraction
from typing import Iterable, Union

MAX_SPAN_CHARS = 4096  # a final answer longer than this is not an answer
MAX_DIGITS = 64  # longer numbers are never gold values of our tasks
MAX_DEPTH = 16  # nesting of brackets that carry structure ([[1], [2]]); chains like [[[1]]] are free
MAX_TOKENS = 600  # a span with more tokens is no answer (256 values and their commas fit)
UNWRAP_PASSES = 6  # nested \text{...} levels unwrapped; deeper ones stay unknown commands

# Token kinds.
NUM, STR, CONST = "num", "str", "const"  # values: payload is the canonical value tuple
WORD, IDENT, CALL = "word", "ident", "call"  # prose words / identifiers (r, x, f, r_1, y2) / a name before "("
INWORD = "in_word"  # the word "in": membership only where a set follows it
EQ, IN, ARROW, COLON, CMP = "eq", "in", "arrow", "colon", "cmp"
COMMA, SEP, AND, OR = "comma", "sep", "and", "or"  # list separators (SEP: ; newline \\ \quad &)
COND, RANGE, CONNECT = "cond", "range", "connect"  # if/when/for..., to/through/between, so/thus/therefore
OP, FUNC, PERCENT, CURRENCY = "op", "func", "percent", "currency"
DOT, ELLIPSIS, EMPTY, BAD = "dot", "ellipsis", "empty", "bad"
OPEN, CLOSE = "open", "close"

Value = tuple  # ("num", int | Fraction) | ("str", str) | ("bool", bool) | ("none", None) | ("bad", str)
UNMATCHABLE: Value = ("bad", "unmatchable")


Token = tuple  # (kind, text, payload): payload is the value tuple of NUM/STR/CONST tokens, else None


class Group:
    """A bracketed group: ``(...)``, ``[...]`` or ``{...}`` (``\\{...\\}`` included)."""

    __slots__ = ("open", "children")
    kind = "group"

    def __init__(self, open_: str) -> None:
        self.open = open_
        self.children: list[Node] = []

    def __repr__(self) -> str:  # debugging aid
        return f"Group({self.open!r}, {self.children!r})"


Node = Union[Token, Group]

# -- normalisation -----------------------------------------------------------------------------

_SUPERSCRIPTS = "\u2070\u00b9\u00b2\u00b3\u2074\u2075\u2076\u2077\u2078\u2079"
_SUP_RUN = re.compile(f"[{_SUPERSCRIPTS}\u207b]+")  # 10²³ is 10^{23}, not (10^2)^3
_SUB_RUN = re.compile("[\u2080-\u2089]+")
_SUP_MAP = str.maketrans({**{c: str(d) for d, c in enumerate(_SUPERSCRIPTS)}, "\u207b": "-"})
_SUB_MAP = str.maketrans({chr(0x2080 + d): str(d) for d in range(10)})
_DASHES = str.maketrans({c: "-" for c in "\u2212\u2013\u2014\u2012\u2010\u2011\ufe63\u2796"} | {"\u2044": "/"})

_LEFT_RIGHT = re.compile(r"\\(?:left|right)\s*[.]|\\(?:left|right|[bB]igg?[lrm]?)(?![A-Za-z])")
_SPACING = re.compile(r"\\(?:displaystyle|textstyle|scriptstyle|limits|nolimits|hfill|phantom)(?![A-Za-z])"
                      r"|\\[,;:! ]|~|\\(?:\(|\)|\[|\])|\\?\$|`")
_ESCAPES = {"\\{": "{", "\\}": "}", "\\lbrace": "{", "\\rbrace": "}", "\\%": "%", "\\#": " ", "\\&": "&",
            "\\_": "_"}
_ESCAPE_RE = re.compile(r"\\lbrace(?![A-Za-z])|\\rbrace(?![A-Za-z])|\\[{}%#&_]")
_UNWRAP = re.compile(
    r"\\(?:text|textbf|textit|textrm|textsf|texttt|textnormal|mathrm|mathbf|mathit|mathsf|mathtt|mathnormal|"
    r"mbox|hbox|operatorname|boxed|fbox|emph|underline|bm|boldsymbol|color\{[a-z]+\})\s*\{([^{}]*)\}"
)
_FRAC_NAMES = re.compile(r"\\[dtc]frac(?![A-Za-z])")
_LITERAL_FRAC = re.compile(r"\\frac\s*(?:\{\s*([-+]?\s*[0-9]+(?:\.[0-9]+)?)\s*\}|([0-9]))"
                           r"\s*(?:\{\s*([-+]?\s*[0-9]+(?:\.[0-9]+)?)\s*\}|([0-9]))")
_THOUSANDS = re.compile(r"(?<![0-9.,])[0-9]{1,3}(?:(?:,|\{,\}|\\,)[0-9]{3})+(?![0-9]|,[0-9])")
# Markdown emphasis (**4**, *4*, __4__) opens after a space and closes before one; 10**10 is an operator.
_EMPHASIS = re.compile(r"(?:(?<=\s)|^)(?:\*{1,3}|__)(?=\S)|(?<=\S)(?:\*{1,3}|__)(?=\s|$|[.,;:!?)])")


def _join_digits(match: re.Match) -> str:
    return _DIGIT_SEPARATOR.sub("", match.group())


_DIGIT_SEPARATOR = re.compile(r"\{,\}|\\,|,")


def normalise(span: str, *, thousands: bool = False) -> str:
    """One canonical spelling of an answer span (see the module docstring).

    ``thousands`` joins digit groups (``1,234``, ``1{,}234``, ``1\\,234``): right
    for the one-number reader, wrong for sets, where a comma separates values.
    """
    text = span
    if not text.isascii():
        text = _SUP_RUN.sub(lambda m: "^{" + m.group().translate(_SUP_MAP) + "}", text)
        text = _SUB_RUN.sub(lambda m: "_{" + m.group().translate(_SUB_MAP) + "}", text)
        text = unicodedata.normalize("NFKC", text).translate(_DASHES)  # full-width digits, …, ½
    if "\\" in text:
        text = _LEFT_RIGHT.sub(" ", text)
        if thousands:
            text = _THOUSANDS.sub(_join_digits, text)
        text = _SPACING.sub(" ", text)
        text = _ESCAPE_RE.sub(lambda m: _ESCAPES[m.group()], text)
        for _ in range(UNWRAP_PASSES):
            text, n = _UNWRAP.subn(lambda m: " " + m.group(1) + " ", text)
            if not n:
                break
        text = _FRAC_NAMES.sub(r"\\frac", text)
        text = _LITERAL_FRAC.sub(
            lambda m: f" {(m.group(1) or m.group(2)).replace(' ', '')}/{(m.group(3) or m.group(4)).replace(' ', '')} ",
            text)
    else:
        if thousands:
            text = _THOUSANDS.sub(_join_digits, text)
        text = _SPACING.sub(" ", text)
    if "*" in text or "__" in text:
        text = _EMPHASIS.sub(" ", text)
    return text


# -- tokens --------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(
    r"(?P<nl>\n)"
    r"|(?P<ws>[ \t\r\f\v\x00]+)"
    r"|(?P<ellipsis>\.{2,}|\\(?:ldots|cdots|dots[cbomi]?|vdots|ddots)(?![A-Za-z]))"
    r"""|(?P<str>(?<![\w'"])'[^'\\\n]{0,200}'(?![\w'])|(?<![\w'"])"[^"\\\n]{0,200}"(?![\w"]))"""
    r"|(?P<num>(?<![\w.])(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)(?:[ \t]*/[ \t]*[-+]?[0-9]+(?:\.[0-9]+)?)?)"
    r"(?P<numtail>[^\W_][\w]*)?"
    r"|(?P<word>[^\W\d_][^\W_]*(?:_(?:\{[^{}]{0,16}\}|[^\W_]+))*(?:'[^\W_]*)*)"
    r"|(?P<cmd>\\[A-Za-z]+)"
    r"|(?P<sym>->|=>|==|:=|<=|>=|!=|\\\\"
    r"|[=<>:,;(){}\[\]+\-*/^%!?|&.#'\"_$€£¥₹¢×·÷±→↦⇒⟶⟹⟼∈≤≥≠≈∅∪∨∧])"
    r"|(?P<bad>.)",
    re.S,
)

_WORDS = {
    **dict.fromkeys(("and", "plus", "also"), AND),
    **dict.fromkeys(("or", "nor"), OR),
    **dict.fromkeys(("is", "are", "was", "were", "be", "equals", "equal", "being"), EQ),
    **dict.fromkeys(("gives", "give", "giving", "gave", "yields", "yield", "yielding", "returns", "return",
                     "returned", "returning", "produces", "produce", "produced", "outputs", "maps", "mapped",
                     "becomes", "become", "results", "leads", "goes", "corresponds"), ARROW),
    **dict.fromkeys(("if", "when", "whenever", "where", "for", "given", "assuming", "provided", "supposing",
                     "depending", "unless", "since", "because", "with", "using", "corresponding", "which",
                     "meaning"), COND),
    **dict.fromkeys(("to", "through", "thru", "till", "until", "between"), RANGE),
    **dict.fromkeys(("so", "thus", "therefore", "hence", "consequently", "ergo"), CONNECT),
    "in": INWORD,  # "y in {4, 10}"; elsewhere ("in total") just a word
}
KEYWORDS = frozenset(_WORDS)  # words with a role (and, or, is, if, to, so ...); every other word is decoration
_CONSTS = {"True": ("bool", True), "False": ("bool", False), "None": ("none", None)}
_COMMANDS = {
    **dict.fromkeys(("to", "rightarrow", "mapsto", "Rightarrow", "implies", "longrightarrow", "longmapsto",
                     "Longrightarrow", "rightsquigarrow"), ARROW),
    **dict.fromkeys(("in", "ni"), IN),
    **dict.fromkeys(("approx", "simeq", "cong", "equiv", "doteq", "sim"), EQ),
    **dict.fromkeys(("le", "leq", "ge", "geq", "lt", "gt", "neq", "ne", "leqslant", "geqslant", "notin"), CMP),
    **dict.fromkeys(("times", "cdot", "div", "pm", "mp", "ast", "star", "bmod", "mod", "pmod"), OP),
    **dict.fromkeys(("frac", "sqrt"), FUNC),
    **dict.fromkeys(("lor", "vee", "cup"), OR),
    **dict.fromkeys(("land", "wedge"), AND),
    **dict.fromkeys(("quad", "qquad", "newline", "hline", "cr"), SEP),
    **dict.fromkeys(("emptyset", "varnothing"), EMPTY),
    **dict.fromkeys(("mid", "vert", "lvert", "rvert"), BAD),
    "colon": COLON,
}
_SYMBOLS = {
    **dict.fromkeys(("->", "=>", "→", "↦", "⇒", "⟶", "⟹", "⟼"), ARROW),
    **dict.fromkeys(("=", "==", ":=", "≈"), EQ),
    **dict.fromkeys(("<", ">", "<=", ">=", "!=", "≤", "≥", "≠"), CMP),
    **dict.fromkeys(("+", "-", "*", "/", "^", "×", "·", "÷", "±"), OP),
    **dict.fromkeys(("(", "[", "{"), OPEN),
    **dict.fromkeys((")", "]", "}"), CLOSE),
    **dict.fromkeys((";", "&", "\\\\"), SEP),
    **dict.fromkeys((".", "!", "?"), DOT),
    **dict.fromkeys(("$", "€", "£", "¥", "₹", "¢"), CURRENCY),
    **dict.fromkeys(("'", '"', "#", "_"), None),  # stray quotes, markdown headings, lone underscores: nothing
    ":": COLON, ",": COMMA, "%": PERCENT, "∈": IN, "∅": EMPTY, "∪": OR, "∨": OR, "∧": AND, "|": BAD,
}
_IDENT_RE = re.compile(r"[A-Za-z](?:[0-9]+|_.*)?|[A-Za-z]\w*(?:_|[0-9])\w*")  # r, x, f, y2, r_1, r_{1}, my_func


def number_value(text: str) -> Value:
    """The exact value of a number token (``12``, ``2.50``, ``.5``, ``5/2``, ``7 / -2``)."""
    if text.isdigit():
        return ("num", int(text)) if len(text) <= MAX_DIGITS else UNMATCHABLE
    if sum(ch.isdigit() for ch in text) > MAX_DIGITS:
        return UNMATCHABLE
    text = text.replace(" ", "").replace("\t", "")
    if "/" in text:
        num, den = text.split("/")
        den_value = Fraction(den)
        if den_value == 0:
            return UNMATCHABLE
        value = Fraction(num) / den_value
    else:
        value = Fraction(text)
    return ("num", value.numerator if value.denominator == 1 else value)


class TooManyTokens(ValueError):
    """The span holds more than :data:`MAX_TOKENS` tokens."""


def tokenize(text: str) -> list[Token]:
    """The tokens of a normalised span (whitespace dropped, newlines kept as separators).

    Raises :class:`TooManyTokens` after :data:`MAX_TOKENS` tokens, so the cost is
    bounded whatever the input.
    """
    out: list[Token] = []
    append = out.append
    for m in _TOKEN_RE.finditer(text):
        kind = m.lastgroup
        if kind == "ws":
            continue
        if len(out) >= MAX_TOKENS:
            raise TooManyTokens(text[:40])
        raw = m.group()
        if kind == "sym":
            sym_kind = _SYMBOLS[raw]
            if sym_kind is not None:
                append((sym_kind, raw, None))
        elif kind == "num":
            append((NUM, raw, number_value(raw)))
        elif kind == "word":
            if raw in _CONSTS:
                append((CONST, raw, _CONSTS[raw]))
            elif text.startswith("(", m.end()):
                append((CALL, raw, None))  # f(7), generated_func_12(x=3), set([...])
            else:
                lower = raw.lower()
                append((_WORDS.get(lower, IDENT if _IDENT_RE.fullmatch(raw) else WORD), lower, None))
        elif kind == "nl":
            append((SEP, "\n", None))
        elif kind == "cmd":
            append((_COMMANDS.get(raw[1:], BAD), raw, None))
        elif kind == "str":
            append((STR, raw, ("str", raw[1:-1])))
        elif kind == "ellipsis":
            append((ELLIPSIS, raw, None))
        else:  # "numtail" (3x, 1e9, 10th: a number glued to letters is no value) and "bad"
            append((BAD, raw, None))
    return out


def tree(tokens: Iterable[Token]) -> list[Node]:
    """Group tokens by brackets, without recursion; unmatched brackets are dropped.

    A group whose only child is a group collapses into it (``[[[1]]]`` is ``[1]``),
    so depth left in the tree is depth that carries structure.
    """
    root: list[Node] = []
    stack: list[tuple[list[Node], Group | None]] = [(root, None)]
    for tok in tokens:
        kind = tok[0]
        if kind == OPEN:
            group = Group(tok[1])
            stack.append((group.children, group))
        elif kind == CLOSE:
            if len(stack) == 1:
                continue  # unmatched closing bracket
            children, group = stack.pop()
            parent = stack[-1][0]
            if len(children) == 1 and isinstance(children[0], Group):
                group = children[0]
            parent.append(group)
        else:
            stack[-1][0].append(tok)
    while len(stack) > 1:  # unclosed groups: their content joins the parent
        children, _ = stack.pop()
        stack[-1][0].extend(children)
    return root


_BRACKET_RE = re.compile(r"[\[\](){}]")
_OPENERS = "[({"


def strip_wrappers(span: str, minimum: int = 8) -> str:
    """``[[[...[1]...]]]`` -> ``[1]``: bracket pairs around the whole span, removed in one linear pass.

    Only worth it (and only done) for at least ``minimum`` wrappers: a 2,000-deep
    literal would otherwise cost 4,000 tokens.
    """
    body = span.strip()
    lead = len(body) - len(body.lstrip("[({ \t\n"))
    trail = len(body) - len(body.rstrip("])} \t\n"))
    opens = sum(ch in _OPENERS for ch in body[:lead])
    closes = sum(ch in "])}" for ch in body[len(body) - trail:]) if trail else 0
    wrappers = min(opens, closes)
    if wrappers < minimum or lead + trail >= len(body):
        return span
    depth = lowest = 0  # the inner text must never close a bracket it did not open
    for match in _BRACKET_RE.finditer(body, lead, len(body) - trail):
        depth += 1 if match.group() in _OPENERS else -1
        lowest = min(lowest, depth)
    wrappers += lowest
    if wrappers < minimum or depth != 0:
        return span
    # Drop the outer wrappers - 1 pairs; the innermost stays, so the text is still one group.
    first = [i for i in range(lead) if body[i] in _OPENERS][wrappers - 1]
    last = [i for i in range(len(body) - trail, len(body)) if body[i] in "])}"][-wrappers]
    return body[first:last + 1]


# -- shared structure helpers ---------------------------------------------------------------------

VALUE_KINDS = frozenset((NUM, STR, CONST))
SEPARATORS = frozenset((COMMA, SEP, AND, OR))
_FILLERS = frozenset((
    "the", "a", "an", "each", "every", "whether", "on", "of", "latent", "hidden", "value", "values", "that",
    "which", "we", "it", "its", "our", "this", "these", "those", "choose", "chosen", "pick", "picked", "take",
    "taken", "actual", "true", "observed", "observation", "run", "random", "unknown", "variable", "variables",
    "case", "cases", "consistent", "with", "both", "either", "one", "has", "have", "had", "can", "could",
    "would", "must", "should", "might", "may", "will", "then", "other", "possible", "possibly", "all",
))


def kind_of(node: Node) -> str:
    return node.kind if isinstance(node, Group) else node[0]


def is_value(node: Node | None) -> bool:
    return node is not None and not isinstance(node, Group) and node[0] in VALUE_KINDS


def last_index(nodes: list[Node], kinds: frozenset) -> int:
    for i in range(len(nodes) - 1, -1, -1):
        if kind_of(nodes[i]) in kinds:
            return i
    return -1


def split(nodes: list[Node], kinds: frozenset = SEPARATORS) -> list[list[Node]]:
    """Top-level items between separator tokens (empty items dropped)."""
    items: list[list[Node]] = [[]]
    for node in nodes:
        if kind_of(node) in kinds:
            if items[-1]:
                items.append([])
        else:
            items[-1].append(node)
    return [item for item in items if item]


def drop_conditions(nodes: list[Node]) -> list[Node]:
    """Remove condition clauses: ``4 if r = 1``, ``for r = 5, ...``, ``depending on whether r is 1 or 5``.

    A clause runs from its word (``if``, ``when``, ``for``, ``depending`` ...) to the next
    comma, semicolon, colon, arrow, sentence end or condition word, and through
    ``and``/``or`` only while what follows still belongs to it: the clause's own
    subject (``r = 1 or r = 2``) or a last value (``r is 1 or 5``); ``4 if r = 1
    and 10 if r = 5`` keeps ``and 10``. An ``is``/``=`` after the clause's value
    ends it too (``the value for x = 7 is 4``).
    """
    if not any(kind_of(n) == COND for n in nodes):
        return nodes
    out: list[Node] = []
    i, n = 0, len(nodes)
    while i < n:
        if kind_of(nodes[i]) == COND:
            i = _clause_end(nodes, i + 1)
        else:
            out.append(nodes[i])
            i += 1
    return out


_CLAUSE_STOP = frozenset((COMMA, SEP, DOT, COLON, ARROW, COND, CONNECT))


def _clause_end(nodes: list[Node], k: int) -> int:
    n = len(nodes)
    subject: str | None = None
    seen_value = False
    while k < n:
        node = nodes[k]
        kind = kind_of(node)
        if kind in _CLAUSE_STOP:
            return k
        if kind in (AND, OR):
            nxt = nodes[k + 1] if k + 1 < n else None
            signed = nxt is not None and kind_of(nxt) == OP and k + 2 < n and is_value(nodes[k + 2])
            if is_value(nxt) or signed:
                step = 2 if is_value(nxt) else 3
                after = nodes[k + step] if k + step < n else None
                if after is not None and kind_of(after) not in (COMMA, SEP, DOT):
                    return k  # "... and 10 if r = 5": the value starts a new item
                k += step
                seen_value = True
                continue
            if nxt is not None and kind_of(nxt) in (IDENT, WORD) and nxt[1] == subject:
                k += 1
                seen_value = False  # "r = 1 or r = 5": the second comparison belongs to the clause
                continue
            return k
        if kind == EQ and seen_value:
            return k
        if is_value(node):
            seen_value = True
        elif kind == IDENT and subject is None and node[1] not in _FILLERS:
            subject = node[1]
        k += 1
    return n


def after_last(nodes: list[Node], kinds: frozenset) -> list[Node]:
    """The nodes after the last top-level token of ``kinds`` (all of them when there is none)."""
    i = last_index(nodes, kinds)
    return nodes[i + 1:] if i >= 0 else nodes
