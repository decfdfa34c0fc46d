"""Exact, bounded evaluation of small LaTeX arithmetic (``11 \\times 7``, ``\\sqrt{49}``, ``2^{3}``).

Why our own and not Math-Verify: the grammar a one-number answer needs is tiny
(numbers, ``+ - \\times \\cdot \\div /``, ``^`` with an integer exponent,
``\\frac``, ``\\sqrt`` and ``\\sqrt[k]``, brackets), while Math-Verify costs
60-600 ms per uncached call on such input and seconds on a few nested brackets
(``benchmarks/bench_hostile_answers.py``), with a timeout that only works on
the main thread. This evaluator works on the token tree of
:mod:`cf_tasks.answer_tokens` with ``fractions.Fraction`` and refuses, in
bounded time, anything outside that grammar or outside the bounds below:
power towers, huge exponents, irrational roots, division by zero.

Cost bound: at most :data:`MAX_NODES` tokens and :data:`MAX_DEPTH` nested
groups; every intermediate numerator and denominator has at most
:data:`MAX_BITS` bits, so each operation is a small-integer operation.
"""

from __future__ import annotations

from fractions import Fraction

from cf_tasks import answer_tokens as T

MAX_NODES = 64  # tokens in one expression
MAX_DEPTH = 8  # nested groups
MAX_BITS = 256  # numerators and denominators of every intermediate result
MAX_EXPONENT = 64
MAX_ROOT = 8  # \sqrt[k]{...} for k up to this

_MULTIPLY = frozenset(("*", "×", "·", "\\times", "\\cdot", "\\ast"))
_DIVIDE = frozenset(("÷", "/", "\\div"))


class _Refused(Exception):
    """The expression is outside the grammar or the bounds: not a number we read."""


def evaluate(nodes: list) -> Fraction | None:
    """The exact value of a LaTeX arithmetic expression, or ``None``."""
    if _count(nodes) > MAX_NODES:
        return None
    try:
        parser = _Parser(nodes, 0)
        value = parser.expression()
        if not parser.done():
            return None
        return value
    except _Refused:
        return None


def _count(nodes: list) -> int:
    total, stack = 0, [nodes]
    while stack:
        for node in stack.pop():
            total += 1
            if isinstance(node, T.Group):
                stack.append(node.children)
        if total > MAX_NODES:
            break
    return total


def _has_power(node) -> bool:
    stack = [node] if isinstance(node, T.Group) else []
    while stack:
        for child in stack.pop().children:
            if isinstance(child, T.Group):
                stack.append(child)
            elif child[0] == T.OP and child[1] == "^":
                return True
    return False


def _checked(value: Fraction) -> Fraction:
    if abs(value.numerator).bit_length() > MAX_BITS or value.denominator.bit_length() > MAX_BITS:
        raise _Refused
    return value


def _root(value: Fraction, k: int) -> Fraction:
    """The exact k-th root of a non-negative rational, refusing irrational ones."""
    if value < 0 or k < 2 or k > MAX_ROOT:
        raise _Refused
    return Fraction(_integer_root(value.numerator, k), _integer_root(value.denominator, k))


def _integer_root(n: int, k: int) -> int:
    if n < 2:
        return n
    x = 1 << -(-n.bit_length() // k)  # an upper bound, then Newton's method downwards
    while True:
        y = ((k - 1) * x + n // x ** (k - 1)) // k
        if y >= x:
            break
        x = y
    if x ** k != n:
        raise _Refused
    return x


def _power(base: Fraction, exponent: Fraction) -> Fraction:
    if exponent.denominator != 1:
        if exponent.numerator == 1 and exponent.denominator <= MAX_ROOT:
            return _root(base, exponent.denominator)
        raise _Refused
    e = exponent.numerator
    if abs(e) > MAX_EXPONENT or (base == 0 and e < 0):
        raise _Refused
    if max(abs(base.numerator).bit_length(), base.denominator.bit_length()) * abs(e) > MAX_BITS:
        raise _Refused
    return _checked(base ** e)


class _Parser:
    """Recursive descent over one level of the token tree; groups recurse with ``depth + 1``."""

    def __init__(self, nodes: list, depth: int) -> None:
        if depth > MAX_DEPTH:
            raise _Refused
        self.nodes, self.depth, self.i = nodes, depth, 0

    def done(self) -> bool:
        return self.i == len(self.nodes)

    def peek(self):
        return self.nodes[self.i] if self.i < len(self.nodes) else None

    def take(self):
        node = self.peek()
        if node is None:
            raise _Refused
        self.i += 1
        return node

    def _op(self, names: frozenset) -> str | None:
        node = self.peek()
        if node is not None and not isinstance(node, T.Group) and node[0] == T.OP and node[1] in names:
            self.i += 1
            return node[1]
        return None

    def expression(self) -> Fraction:
        value = self.term()
        while (op := self._op(frozenset("+-"))) is not None:
            right = self.term()
            value = _checked(value + right if op == "+" else value - right)
        return value

    def term(self) -> Fraction:
        value = self.factor()
        while True:
            if self._op(_MULTIPLY) is not None:
                value = _checked(value * self.factor())
            elif self._op(_DIVIDE) is not None:
                right = self.factor()
                if right == 0:
                    raise _Refused
                value = _checked(value / right)
            elif self._starts_implicit_product():
                value = _checked(value * self.factor())  # 2\sqrt{9}, 3(4 + 1)
            else:
                return value

    def _starts_implicit_product(self) -> bool:
        node = self.peek()
        return node is not None and (isinstance(node, T.Group) or node[0] == T.FUNC)

    def factor(self) -> Fraction:
        sign = self._op(frozenset("+-"))
        if sign is not None:
            value = self.factor()
            return -value if sign == "-" else value
        base = self.atom()
        if self._op(frozenset("^")) is not None:
            if _has_power(self.peek()):
                raise _Refused  # 2^{2^{2}}: a power tower is never a final answer
            exponent = self.atom()
            if self._op(frozenset("^")) is not None:
                raise _Refused  # a^b^c: a tower, or ambiguous; never a final answer
            return _power(base, exponent)
        return base

    def atom(self) -> Fraction:
        node = self.take()
        if isinstance(node, T.Group):
            return self._group(node)
        kind, text = node[0], node[1]
        if kind == T.NUM:
            if node[2][0] != "num":
                raise _Refused
            return Fraction(node[2][1])
        if kind == T.FUNC and text == "\\frac":
            numerator, denominator = self._group(self.take()), self._group(self.take())
            if denominator == 0:
                raise _Refused
            return _checked(numerator / denominator)
        if kind == T.FUNC and text == "\\sqrt":
            k = 2
            nxt = self.peek()
            if isinstance(nxt, T.Group) and nxt.open == "[":
                index = self._group(self.take())
                if index.denominator != 1:
                    raise _Refused
                k = index.numerator
            return _root(self.atom(), k)
        raise _Refused

    def _group(self, node) -> Fraction:
        if not isinstance(node, T.Group):
            if not isinstance(node, tuple) or node[0] != T.NUM:
                raise _Refused  # \frac12 arrives as a literal fraction; anything else needs braces
            return Fraction(node[2][1]) if node[2][0] == "num" else self._refuse()
        inner = _Parser(node.children, self.depth + 1)
        value = inner.expression()
        if not inner.done():
            raise _Refused
        return value

    @staticmethod
    def _refuse() -> Fraction:
        raise _Refused
