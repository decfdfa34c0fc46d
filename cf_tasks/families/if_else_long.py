"""``if_else_long``: the surface-OOD family (deeper nesting, longer code).

Same building blocks as ``if_else`` but branches nest up to ``nesting_depth``
levels (inner chains test the latent, the input or both), bodies hold several
statements and several if-chains follow each other, later ones updating
``result`` in place.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import ClassVar

from cf_tasks.families.base import CodeFamily
from cf_tasks.families.types import Program
from cf_tasks.families.codeblocks import require_positive
from cf_tasks.families.if_else import IfElseConfig, compose_if_else


@dataclass(frozen=True)
class IfElseLongConfig(IfElseConfig):
    """Knobs of ``if_else_long``: ``if_else``'s plus the number of sequential if-chains."""

    nesting_depth: int = field(default=2, metadata={"help": "Nesting levels below the main chain (1 to 4)."})
    body_statements: int = field(default=2, metadata={"help": "Most statements in one branch body."})
    max_elifs: int = field(default=1, metadata={"help": "Most elif blocks per chain (drawn from 0..max)."})
    n_blocks: int = field(default=2, metadata={"help": "Sequential if-chains; later ones update result."})

    max_nesting: ClassVar[int] = 4

    def validate(self) -> None:
        super().validate()
        require_positive(self, "n_blocks", "nesting_depth")
        if self.n_blocks > 4:
            raise ValueError(f"n_blocks must be at most 4, got {self.n_blocks!r}")


class IfElseLongFamily(CodeFamily):
    name = "if_else_long"
    version = "2"
    description = "longer if/elif/else functions with deeper nesting and multi-statement bodies (surface OOD)"
    config_cls = IfElseLongConfig
    levels = {
        "easy": IfElseLongConfig(nesting_depth=2, body_statements=2, max_elifs=1, n_blocks=1, modulus_prob=0.4,
                                 multi_gold_prob=0.3),
        "medium": IfElseLongConfig(multi_gold_prob=0.5),
        "hard": IfElseLongConfig(nesting_depth=3, body_statements=3, max_elifs=2, n_blocks=2, latent_high=12,
                                 input_high=30, modulus_prob=0.7, modulus_high=20, preprocess_prob=0.5,
                                 multi_gold_prob=0.7, min_consistent=2),
    }

    def generate_program(self, rng: random.Random, config: IfElseLongConfig) -> Program:
        return compose_if_else(rng, config, n_blocks=rng.randint(1, config.n_blocks))


FAMILY = IfElseLongFamily()
