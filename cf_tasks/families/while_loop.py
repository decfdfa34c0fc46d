"""``while``: the control-flow-OOD family (``while`` loops never seen in training).

``result`` is initialised from the input and the latent, then updated by one or
more ``while`` loops and returned (optionally ``% m``). Every loop provably
terminates within ``max_iterations`` iterations: its counter starts at a value
bounded by construction (a constant, ``x % k + 1`` or a latent whose whole
range fits) and moves by one in an unconditional last statement
(:meth:`Composer.while_loop`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from cf_tasks.families.base import CodeFamily
from cf_tasks.families.types import Program
from cf_tasks.families.codeblocks import (CodeConfig, Composer, assemble, function_name, require_positive,
                                         require_probability)

MAX_ITERATIONS_CAP = 50


@dataclass(frozen=True)
class WhileConfig(CodeConfig):
    """Knobs of the ``while`` family (plus the shared value ranges of :class:`CodeConfig`)."""

    latent_high: int = field(default=6, metadata={"help": "Largest value of the latent (randint high)."})
    max_iterations: int = field(default=6, metadata={"help": "Loop bound: most iterations of any loop."})
    n_loops: int = field(default=1, metadata={"help": "Most sequential while loops (drawn from 1..max)."})
    body_statements: int = field(default=2, metadata={"help": "Most statements in a loop body."})
    loop_if_prob: float = field(default=0.4, metadata={"help": "Probability that a loop body is an if/else."})

    def validate(self) -> None:
        super().validate()
        require_positive(self, "n_loops", "body_statements")
        require_probability(self, "loop_if_prob")
        if not 2 <= self.max_iterations <= MAX_ITERATIONS_CAP:
            raise ValueError(f"max_iterations must be in [2, {MAX_ITERATIONS_CAP}], got {self.max_iterations!r}")
        if self.n_loops > 3:
            raise ValueError(f"n_loops must be at most 3, got {self.n_loops!r}")


class WhileFamily(CodeFamily):
    name = "while"
    version = "2"
    description = "functions with counter-bounded while loops over x and one latent r (control-flow OOD)"
    config_cls = WhileConfig
    levels = {
        "easy": WhileConfig(max_iterations=4, latent_high=4, body_statements=1, loop_if_prob=0.2, input_high=15,
                            modulus_prob=0.3, expr_ops=1, preprocess_prob=0.0, multi_gold_prob=0.3),
        "medium": WhileConfig(modulus_prob=0.7, loop_if_prob=0.6, multi_gold_prob=0.6),
        "hard": WhileConfig(max_iterations=8, latent_high=8, n_loops=2, body_statements=3, loop_if_prob=0.6,
                            modulus_prob=0.7, modulus_high=20, preprocess_prob=0.5, multi_gold_prob=0.7,
                            min_consistent=2),
    }

    def generate_program(self, rng: random.Random, config: WhileConfig) -> Program:
        name = function_name(rng)
        c = Composer(rng, config)
        body: list[str] = []
        if rng.random() < config.preprocess_prob:
            body += c.preprocess()
        body.append(c.assignment(("x",)))
        c.carry = True
        for _ in range(rng.randint(1, config.n_loops)):
            body += c.while_loop(config.max_iterations, config.body_statements, config.loop_if_prob)
        return assemble(name, body, c.return_expression(), inputs={"x": (config.input_low, config.input_high)},
                        latents={"r": (config.latent_low, config.latent_high)})


FAMILY = WhileFamily()
