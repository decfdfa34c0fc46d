"""``if_else``: the paper's training and in-distribution family (Fig 2-4).

One ``if``/``elif``/``else`` chain on the input with at most one nesting level:
a branch may hold the template's nested ``if r {op} {threshold}`` whose arms
compute ``x {op} r`` and ``r {op} x``. An optional pre-processing block precedes
the chain and the return expression may end in ``% m``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import ClassVar

from cf_tasks.families.base import CodeFamily
from cf_tasks.families.types import Program
from cf_tasks.families.codeblocks import (CodeConfig, Composer, assemble, function_name, require_non_negative,
                                         require_positive, require_probability)


@dataclass(frozen=True)
class IfElseConfig(CodeConfig):
    """Knobs of the ``if_else`` family (plus the shared value ranges of :class:`CodeConfig`)."""

    nesting_depth: int = field(default=1, metadata={"help": "Nesting levels below the main chain (0 or 1)."})
    nested_prob: float = field(default=0.7, metadata={
        "help": "Probability that a branch is a nested if on the latent (when nesting is allowed)."})
    max_elifs: int = field(default=1, metadata={"help": "Most elif blocks in the main chain (drawn from 0..max)."})
    body_statements: int = field(default=1, metadata={"help": "Most statements in one branch body."})

    max_nesting: ClassVar[int] = 1  # the family's bound on nesting_depth (subclasses raise it)

    def validate(self) -> None:
        super().validate()
        require_non_negative(self, "nesting_depth", "max_elifs")
        require_positive(self, "body_statements")
        require_probability(self, "nested_prob")
        if self.nesting_depth > type(self).max_nesting:
            raise ValueError(f"nesting_depth must be at most {type(self).max_nesting} for this family, "
                             f"got {self.nesting_depth!r}")


def compose_if_else(rng: random.Random, cfg: IfElseConfig, n_blocks: int = 1) -> Program:
    """Pre-processing, ``n_blocks`` if-chains (later ones update ``result``) and the return."""
    name = function_name(rng)
    c = Composer(rng, cfg)
    body: list[str] = []
    if rng.random() < cfg.preprocess_prob:
        body += c.preprocess()
    for block in range(n_blocks):
        c.carry = block > 0
        body += c.if_chain(cfg.nesting_depth, rng.randint(0, cfg.max_elifs), cfg.body_statements, cfg.nested_prob)
    return assemble(name, body, c.return_expression(), inputs={"x": (cfg.input_low, cfg.input_high)},
                    latents={"r": (cfg.latent_low, cfg.latent_high)})


class IfElseFamily(CodeFamily):
    name = "if_else"
    version = "2"
    description = "if/elif/else functions of x and one latent r, at most one nesting level (paper's ID family)"
    config_cls = IfElseConfig
    levels = {
        "easy": IfElseConfig(input_high=15, latent_high=6, max_elifs=0, nested_prob=0.5, modulus_prob=0.3,
                             expr_ops=1, preprocess_prob=0.0, multi_gold_prob=0.3),
        "medium": IfElseConfig(multi_gold_prob=0.6),
        "hard": IfElseConfig(input_high=30, latent_high=12, max_elifs=2, nested_prob=0.9, modulus_prob=0.7,
                             modulus_high=20, body_statements=2, expr_ops=3, preprocess_prob=0.5,
                             multi_gold_prob=0.7, min_consistent=2),
    }

    def generate_program(self, rng: random.Random, config: IfElseConfig) -> Program:
        return compose_if_else(rng, config)


FAMILY = IfElseFamily()
