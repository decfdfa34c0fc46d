"""Code-block composition shared by the code families (the paper's Fig 2-4 templates).

The paper builds functions from a three-level placeholder template
(Vashishtha, Dai et al., *Executable Counterfactuals*, ICLR 2026, arXiv 2510.01539, Figures 2-4):

* fixed placeholders: the function name ``generated_func_NNNN``, the latent draw
  ``r = random.randint(lo, hi)`` and the ``return``;
* structural placeholders: a pre-processing block, the main condition, a nested
  ``if`` on the latent, ``elif`` blocks, the ``else`` branch, branch bodies and
  the return expression (optionally wrapped in ``% m`` so that several latent
  values fit one observation);
* value placeholders: comparison and arithmetic operators, thresholds, constants,
  the latent range and the modulus.

:class:`Composer` draws the structural and value placeholders from one RNG;
each family stacks the blocks it needs and :func:`assemble` fills the fixed
placeholders, producing both the executable source (latents are keyword
parameters) and the display source shown in prompts (latents drawn inside the
body). Only integer ``+ - *`` and ``%`` by positive constants are emitted, so
every program is total on integers; loops are counter-bounded so they provably
terminate (see :meth:`Composer.while_loop`).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import Sequence

from cf_tasks.families.types import CodePipelineConfig, Program

RESULT = "result"
"""The variable every body assigns and the return expression reads."""

CMP_OPS = ("<", "<=", ">", ">=")
ARITH_WEIGHTS = (("+", 5), ("-", 4), ("*", 2))
_ARITH_TABLE = tuple(op for op, weight in ARITH_WEIGHTS for _ in range(weight))


def require_positive(cfg: object, *names: str) -> None:
    for name in names:
        if getattr(cfg, name) <= 0:
            raise ValueError(f"{name} must be positive, got {getattr(cfg, name)!r}")


def require_non_negative(cfg: object, *names: str) -> None:
    for name in names:
        if getattr(cfg, name) < 0:
            raise ValueError(f"{name} must be >= 0, got {getattr(cfg, name)!r}")


def require_probability(cfg: object, *names: str) -> None:
    for name in names:
        value = getattr(cfg, name)
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be a probability in [0, 1], got {value!r}")


def require_ordered(cfg: object, low: str, high: str, min_width: int = 0) -> None:
    lo, hi = getattr(cfg, low), getattr(cfg, high)
    if hi - lo < min_width:
        raise ValueError(f"{high} ({hi}) must be at least {low} ({lo}) + {min_width}")


@dataclass(frozen=True)
class CodeConfig(CodePipelineConfig):
    """Knobs shared by every code family (value placeholders and ranges, plus the pipeline's filters)."""

    input_low: int = field(default=0, metadata={"help": "Smallest value of the input x (observed and intervened)."})
    input_high: int = field(default=20, metadata={"help": "Largest value of the input x."})
    latent_low: int = field(default=1, metadata={"help": "Smallest value of each latent (randint low)."})
    latent_high: int = field(default=8, metadata={"help": "Largest value of each latent (randint high)."})
    const_low: int = field(default=1, metadata={"help": "Smallest constant in arithmetic expressions."})
    const_high: int = field(default=9, metadata={"help": "Largest constant in arithmetic expressions."})
    expr_ops: int = field(default=2, metadata={"help": "Most binary operators in one arithmetic expression."})
    modulus_prob: float = field(default=0.5, metadata={
        "help": "Probability that the return expression ends in '% m' (makes several latents fit)."})
    modulus_low: int = field(default=3, metadata={"help": "Smallest modulus m of the return expression."})
    modulus_high: int = field(default=12, metadata={"help": "Largest modulus m of the return expression."})
    preprocess_prob: float = field(default=0.3, metadata={
        "help": "Probability of a pre-processing block before the main logic."})
    unused_helper_prob: float = field(default=0.0, metadata={
        "help": "Distractor code: probability that a pre-processing helper variable is not forced into the "
                "next expression (it may then stay unused); 0 means every helper is read."})
    max_midrun_abs: int | None = field(default=10_000, metadata={
        "help": "Reject queries whose shown runs assign any variable a value above this magnitude "
                "(filter midrun_bound); null: no check."})

    def validate(self) -> None:
        super().validate()
        require_ordered(self, "input_low", "input_high", 2)
        require_ordered(self, "latent_low", "latent_high", 1)
        require_ordered(self, "const_low", "const_high", 0)
        require_positive(self, "const_low", "modulus_low", "expr_ops")
        require_ordered(self, "modulus_low", "modulus_high", 0)
        if self.modulus_low < 2:
            raise ValueError(f"modulus_low must be at least 2, got {self.modulus_low!r}")
        require_probability(self, "modulus_prob", "preprocess_prob", "unused_helper_prob")

    @property
    def latent_size(self) -> int:
        return self.latent_high - self.latent_low + 1


class Composer:
    """Draws code blocks (lists of source lines) from one RNG under one config.

    ``inputs`` and ``latents`` are the variable names the blocks may read;
    ``extra_atoms`` grows when a pre-processing block introduces a variable.
    Every draw goes through ``self.rng`` in a fixed order, so a seed fixes the
    program (no set iteration, no ``hash()``).
    """

    def __init__(self, rng: random.Random, cfg: CodeConfig, inputs: Sequence[str] = ("x",),
                 latents: Sequence[str] = ("r",)):
        self.rng = rng
        self.cfg = cfg
        self.inputs = tuple(inputs)
        self.latents = tuple(latents)
        self.extra_atoms: list[str] = []
        self.pending: list[str] = []  # helper variables the next expression must read
        self.carry = False  # when True, new assignments to ``result`` must read its previous value

    # -- draws --------------------------------------------------------------------
    # ``random.Random.randint``/``choice`` cost ~1 us each through ``_randbelow``;
    # composition makes dozens of draws per program, so these use one ``random()``
    # each. Both are deterministic for a seeded ``Random`` on every platform.
    def randint(self, lo: int, hi: int) -> int:
        return lo + int(self.rng.random() * (hi - lo + 1))

    def pick(self, seq: Sequence):
        return seq[int(self.rng.random() * len(seq))]

    # -- value placeholders ------------------------------------------------------
    def const(self) -> int:
        return self.randint(self.cfg.const_low, self.cfg.const_high)

    def small_const(self) -> int:
        """A multiplier for updates of ``result`` (kept small so values stay bounded)."""
        return self.randint(2, 3)

    def cmp_op(self) -> str:
        return self.pick(CMP_OPS)

    def arith_op(self) -> str:
        return self.pick(_ARITH_TABLE)

    def input_threshold(self) -> int:
        """A threshold strictly inside the input range, so both sides of a test are reachable."""
        return self.randint(self.cfg.input_low + 1, self.cfg.input_high - 1)

    def latent_threshold(self, op: str) -> int:
        """A threshold that splits the latent range into two non-empty parts under ``op``."""
        lo, hi = self.cfg.latent_low, self.cfg.latent_high
        if op in ("<", ">="):
            return self.randint(lo + 1, hi)
        return self.randint(lo, hi - 1)

    def modulus(self) -> int:
        return self.randint(self.cfg.modulus_low, self.cfg.modulus_high)

    # -- conditions --------------------------------------------------------------
    def input_condition(self) -> str:
        """The main ``{condition_type}``: a test on an input (Fig 3: ``x > 15``; Fig 4: ``x < 3 or x >= 9``)."""
        x = self.pick(self.inputs)
        kind = self.rng.random()
        if kind < 0.55:
            return f"{x} {self.cmp_op()} {self.input_threshold()}"
        if kind < 0.8:
            a, b = sorted((self.input_threshold(), self.input_threshold()))
            if a == b:
                b += 1
            if self.rng.random() < 0.5:
                return f"{x} < {a} or {x} >= {b}"
            return f"{a} <= {x} < {b}"
        k = self.randint(2, 4)
        return f"{x} % {k} == {self.randint(0, k - 1)}"

    def latent_condition(self, latent: str | None = None) -> str:
        """The nested test on a latent (Fig 2: ``if r {comparison_op} {threshold}``)."""
        r = latent or self.pick(self.latents)
        if self.rng.random() < 0.8:
            op = self.cmp_op()
            return f"{r} {op} {self.latent_threshold(op)}"
        k = 2 if self.cfg.latent_size < 6 else self.randint(2, 3)
        return f"{r} % {k} == {self.randint(0, k - 1)}"

    def mixed_condition(self) -> str:
        """Either kind of test, or both joined (used by ``elif`` blocks and deeper nesting)."""
        u = self.rng.random()
        if u < 0.4:
            return self.input_condition()
        if u < 0.8:
            return self.latent_condition()
        joiner = self.pick(("and", "or"))
        return f"{self.latent_condition()} {joiner} {self.input_condition()}"

    # -- expressions and statements ---------------------------------------------
    def atoms(self) -> list[str]:
        return [*self.inputs, *self.latents, *self.extra_atoms, *((RESULT,) if self.carry else ())]

    def arith(self, must_use: Sequence[str] = (), n_ops: int | None = None, extra: Sequence[str] = ()) -> str:
        """An arithmetic expression over inputs, latents and constants (``{arithmetic_op}`` placeholders).

        ``must_use`` names that must appear (e.g. Fig 2's ``x {op} r`` uses both).
        """
        pool = self.atoms() + list(extra)
        n_ops = self.randint(1, self.cfg.expr_ops) if n_ops is None else n_ops
        terms: list[str] = list(must_use) + [h for h in self.pending if h not in must_use]
        self.pending = []
        while len(terms) < n_ops + 1:
            if self.rng.random() < 0.35:
                terms.append(str(self.const()))
            else:  # prefer names not used yet, so that ``x - x`` style terms stay rare
                fresh = [a for a in pool if a not in terms]
                terms.append(self.pick(fresh or pool))
        if not any(t in pool for t in terms):
            terms[0] = self.pick(pool)
        for i in range(len(terms) - 1, 0, -1):  # Fisher-Yates with the fast draws
            j = int(self.rng.random() * (i + 1))
            terms[i], terms[j] = terms[j], terms[i]
        expr = terms[0]
        for term in terms[1:]:
            op = self.arith_op()
            if op == "*" and (" + " in expr or " - " in expr) and self.rng.random() < 0.5:
                expr = f"({expr}) * {term}"
            else:
                expr = f"{expr} {op} {term}"
        return expr

    def assignment(self, must_use: Sequence[str] = ()) -> str:
        if self.carry and RESULT not in must_use:
            must_use = (*must_use, RESULT)
        return f"{RESULT} = {self.arith(must_use)}"

    def update(self, extra: Sequence[str] = ()) -> str:
        """A statement that updates ``result`` in place (used by long bodies and loop bodies)."""
        u = self.rng.random()
        atom = self.pick(self.atoms() + list(extra))
        if u < 0.35:
            return f"{RESULT} = {RESULT} + {atom}"
        if u < 0.6:
            return f"{RESULT} = {RESULT} - {atom}"
        if u < 0.75:
            return f"{RESULT} = {RESULT} * {self.small_const()}"
        if u < 0.9:
            return f"{RESULT} = {RESULT} + {atom} * {self.randint(2, max(2, self.cfg.const_high))}"
        return f"{RESULT} = {RESULT} % {self.modulus()}"

    def body(self, n_statements: int, must_use: Sequence[str] = ()) -> list[str]:
        """A branch body: an assignment to ``result`` followed by in-place updates."""
        lines = [self.assignment(must_use)]
        for _ in range(n_statements - 1):
            lines.append(self.update())
        return lines

    # -- structural blocks --------------------------------------------------------
    def preprocess(self) -> list[str]:
        """The ``{preprocessing_block}``: shift the input, or derive a helper variable."""
        x = self.pick(self.inputs)
        u = self.rng.random()
        if u < 0.35:
            op = self.pick(("+", "-"))
            return [f"{x} = {x} {op} {self.const()}"]
        if u < 0.65:
            return [f"if {x} {self.cmp_op()} {self.input_threshold()}:", f"    {x} = {x} - {self.const()}"]
        name = "offset"
        r = self.pick(self.latents)
        expr = self.pick((f"{x} % {self.randint(2, 5)}", f"{r} * {self.const()}", f"{x} - {r}"))
        self.extra_atoms.append(name)
        if self.rng.random() >= self.cfg.unused_helper_prob:
            self.pending.append(name)  # the next expression reads it: no unused helper code
        return [f"{name} = {expr}"]

    def if_chain(self, depth: int, n_elifs: int, body_statements: int, nested_prob: float,
                 first_condition: str | None = None) -> list[str]:
        """``if {cond}: ... {elif_block} else: ...`` whose branches may nest further ``if``s.

        ``depth`` is the number of nesting levels still allowed below this chain
        (``if_else`` allows one, as in the paper's Fig 2; ``if_else_long`` more).
        Leaf bodies use a latent, so most paths depend on it.
        """
        conditions = [first_condition or self.input_condition()]
        conditions += [self.mixed_condition() for _ in range(n_elifs)]
        lines: list[str] = []
        for i, cond in enumerate(conditions):
            lines.append(f"{'if' if i == 0 else 'elif'} {cond}:")
            lines += _indent(self.branch(depth, body_statements, nested_prob))
        lines.append("else:")
        lines += _indent(self.branch(depth, body_statements, nested_prob))
        return lines

    def branch(self, depth: int, body_statements: int, nested_prob: float) -> list[str]:
        """A branch body: a nested ``if`` on a latent (while depth allows) or a plain body."""
        if depth > 0 and self.rng.random() < nested_prob:
            n = self.randint(1, body_statements)
            if depth == 1:
                r = self.pick(self.latents)
                x = self.pick(self.inputs)
                # Fig 2: ``if r {cmp} {t}: result = x {op1} r  else: result = r {op2} x``
                return [f"if {self.latent_condition(r)}:", *_indent(self.body(n, (x, r))),
                        "else:", *_indent(self.body(n, (r, x)))]
            # Inner chains: rarely an elif, and nesting gets less likely with depth so that
            # deep configs grow long code without exploding in size.
            n_elifs = 1 if self.rng.random() < 0.25 else 0
            return self.if_chain(depth - 1, n_elifs, body_statements, nested_prob * 0.6,
                                 first_condition=self.mixed_condition())
        n = self.randint(1, body_statements)
        must = (self.pick(self.latents),) if self.rng.random() < 0.7 else ()
        return self.body(n, must)

    def loop_update_block(self, counter: str, body_statements: int, if_prob: float) -> list[str]:
        """Statements of a loop body; may contain an ``if`` on the counter, an input or a latent."""
        extra = (counter,)
        if self.rng.random() < if_prob:
            u = self.rng.random()
            if u < 0.4:
                cond = f"{counter} % 2 == {self.randint(0, 1)}"
            elif u < 0.7:
                cond = self.latent_condition()
            else:
                cond = f"{RESULT} {self.cmp_op()} {self.randint(self.cfg.input_low, self.cfg.input_high)}"
            then = self.update(extra)
            other = self.update(extra)
            if other == then:  # one redraw: identical arms make the test pointless
                other = self.update(extra)
            return [f"if {cond}:", f"    {then}", "else:", f"    {other}"]
        return [self.update(extra) for _ in range(self.randint(1, body_statements))]

    def loop_bound(self, max_iterations: int, allow_latent: bool = True) -> str:
        """A loop bound whose value is provably at most ``max_iterations``.

        A latent is allowed only when its whole range fits; ``x % k + 1`` lies in
        ``[1, k]`` for any integer ``x`` because Python's ``%`` with positive
        ``k`` is non-negative.
        """
        options = ["const", "input"]
        if allow_latent and self.cfg.latent_high <= max_iterations:
            options += ["latent", "latent"]
        kind = self.pick(options)
        if kind == "latent":
            return self.pick(self.latents)
        if kind == "input":
            return f"{self.pick(self.inputs)} % {self.randint(2, max_iterations)} + 1"
        return str(self.randint(2, max_iterations))

    def while_loop(self, max_iterations: int, body_statements: int, if_prob: float) -> list[str]:
        """A ``while`` loop that provably terminates within ``max_iterations`` iterations.

        Two shapes: a counter ``i`` counting up to a bounded value (optionally with a
        second exit test on ``result``), or a countdown ``n`` from a bounded value.
        The counter step is the body's unconditional last statement and the body
        has no ``continue``, so each iteration moves the counter by exactly one.
        """
        bound = self.loop_bound(max_iterations)
        if self.rng.random() < 0.6:
            guard = f"i < {bound}"
            if self.rng.random() < 0.35:
                guard += f" and {RESULT} {self.pick(('<', '<=', '!='))} {self.randint(10, 60)}"
            return ["i = 0", f"while {guard}:", *_indent(self.loop_update_block("i", body_statements, if_prob)),
                    "    i = i + 1"]
        return [f"n = {bound}", "while n > 0:", *_indent(self.loop_update_block("n", body_statements, if_prob)),
                "    n = n - 1"]

    def for_loop(self, max_iterations: int, body_statements: int, if_prob: float, bound: str | None = None) -> list[str]:
        """``for i in range(bound):`` with a bound of at most ``max_iterations``."""
        bound = bound or self.loop_bound(max_iterations)
        return [f"for i in range({bound}):", *_indent(self.loop_update_block("i", body_statements, if_prob))]

    def return_expression(self) -> str:
        """The ``{return_expression}``: ``result``, or a combination wrapped in ``% m`` (Fig 4)."""
        r = self.pick(self.latents)
        x = self.pick(self.inputs)
        if self.rng.random() < self.cfg.modulus_prob:
            m = self.modulus()
            inner = self.pick((RESULT, f"{RESULT} * {self.const()} - {r}", f"{RESULT} + {x}",
                                     f"{RESULT} + {r}"))
            return f"({inner}) % {m}" if " " in inner else f"{inner} % {m}"
        return self.pick((RESULT, RESULT, f"{RESULT} + {r}", f"{RESULT} - {x}"))


def _indent(lines: Sequence[str], levels: int = 1) -> list[str]:
    pad = "    " * levels
    return [pad + line for line in lines]


def function_name(rng: random.Random) -> str:
    """The fixed ``{function_name}`` placeholder (Fig 3: ``generated_func_1234``)."""
    return f"generated_func_{rng.randint(0, 9999):04d}"


def assemble(name: str, body: Sequence[str], return_expr: str, *, inputs: dict[str, tuple[int, int]],
             latents: dict[str, tuple[int, int]]) -> Program:
    """Fill the fixed placeholders: signature, latent draws and ``return``.

    ``source`` takes inputs and latents as keyword parameters (what the executor
    calls); ``display_source`` draws each latent with ``random.randint`` inside
    the body, as in the paper's figures. Both share the body lines verbatim.
    """
    body_lines = [*_indent(body), f"    return {return_expr}"]
    params = ", ".join([*inputs, *latents])
    source = "\n".join([f"def {name}({params}):", *body_lines]) + "\n"
    draws = [f"    {r} = random.randint({lo}, {hi})" for r, (lo, hi) in latents.items()]
    display = "\n".join(["import random", "", "", f"def {name}({', '.join(inputs)}):", *draws, *body_lines]) + "\n"
    return Program(
        source=source,
        display_source=display,
        entry_point=name,
        inputs=dict(inputs),
        latents={r: tuple(range(lo, hi + 1)) for r, (lo, hi) in latents.items()},
    )


def uses(lines: Sequence[str], name: str) -> bool:
    """Whether ``name`` occurs as a whole word in the lines (cheap token check)."""
    pattern = re.compile(rf"\b{re.escape(name)}\b")
    return any(pattern.search(line) for line in lines)
