"""``multi_r``: the causal-structure-OOD family (three latents and ``for`` loops).

``result`` starts from the input and one latent, ``for`` loops (bounded by a
latent, a constant or ``x % k + 1``) update it, and a final if/else on the
latents adjusts it. Every latent is read somewhere: latents the loops left
unused get a closing test of their own. Abduction is over the joint domain
(``itertools.product`` of the latent ranges).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from cf_tasks.families.base import CodeFamily
from cf_tasks.families.types import Program
from cf_tasks.families.codeblocks import (RESULT, CodeConfig, Composer, assemble, function_name, require_positive,
                                         require_probability, uses)
from cf_tasks.records import MAX_DOMAIN_SIZE


@dataclass(frozen=True)
class MultiRConfig(CodeConfig):
    """Knobs of ``multi_r`` (plus the shared value ranges of :class:`CodeConfig`, applied to every latent)."""

    n_latents: int = field(default=3, metadata={"help": "Number of latents r1..rN (the paper uses three)."})
    latent_high: int = field(default=4, metadata={"help": "Largest value of each latent (randint high)."})
    max_iterations: int = field(default=4, metadata={"help": "Loop bound: most iterations of any for loop."})
    n_loops: int = field(default=2, metadata={"help": "Most sequential for loops (drawn from 1..max)."})
    body_statements: int = field(default=1, metadata={"help": "Most statements in a loop body."})
    loop_if_prob: float = field(default=0.3, metadata={"help": "Probability that a loop body is an if/else."})
    final_if_prob: float = field(default=0.6, metadata={
        "help": "Probability of a closing if/else on a latent after the loops."})
    query_inputs: int = field(default=3, metadata={
        "help": "Input values each program is tabulated at (times all latent assignments; fewer than the other "
                "families because the joint domain is large)."})

    def validate(self) -> None:
        super().validate()
        require_positive(self, "n_latents", "n_loops", "body_statements", "max_iterations")
        require_probability(self, "loop_if_prob", "final_if_prob")
        if self.n_latents > 5:
            raise ValueError(f"n_latents must be at most 5, got {self.n_latents!r}")
        if self.latent_size ** self.n_latents > MAX_DOMAIN_SIZE:
            raise ValueError(f"n_latents: joint domain of {self.latent_size}^{self.n_latents} assignments exceeds "
                             f"{MAX_DOMAIN_SIZE}")
        if not 2 <= self.max_iterations <= 20:
            raise ValueError(f"max_iterations must be in [2, 20], got {self.max_iterations!r}")
        if self.n_loops > 3:
            raise ValueError(f"n_loops must be at most 3, got {self.n_loops!r}")


class MultiRFamily(CodeFamily):
    name = "multi_r"
    version = "2"
    description = "functions of x and three latents r1, r2, r3 with for loops (causal-structure OOD)"
    config_cls = MultiRConfig
    levels = {
        "easy": MultiRConfig(latent_high=3, max_iterations=3, n_loops=1, loop_if_prob=0.0, final_if_prob=0.5,
                             input_high=15, modulus_prob=0.3, expr_ops=1, preprocess_prob=0.0, multi_gold_prob=0.3),
        "medium": MultiRConfig(multi_gold_prob=0.4),
        "hard": MultiRConfig(latent_high=5, max_iterations=5, n_loops=2, body_statements=2, loop_if_prob=0.5,
                             final_if_prob=0.8, modulus_prob=0.7, modulus_high=20, preprocess_prob=0.4,
                             multi_gold_prob=0.7, min_consistent=2),
    }

    def generate_program(self, rng: random.Random, config: MultiRConfig) -> Program:
        name = function_name(rng)
        latents = [f"r{k}" for k in range(1, config.n_latents + 1)]
        c = Composer(rng, config, latents=latents)
        body: list[str] = []
        if rng.random() < config.preprocess_prob:
            body += c.preprocess()
        body.append(c.assignment(("x", rng.choice(latents))))
        c.carry = True
        for _ in range(rng.randint(1, config.n_loops)):
            body += c.for_loop(config.max_iterations, config.body_statements, config.loop_if_prob)
        if rng.random() < config.final_if_prob:
            r = rng.choice(latents)
            body += [f"if {c.latent_condition(r)}:", f"    {c.update()}", "else:", f"    {c.update()}"]
        for r in latents:  # every latent must matter somewhere (in the order r1, r2, ...)
            if not uses(body, r):
                body += [f"if {c.latent_condition(r)}:", f"    {RESULT} = {RESULT} + {r} * {c.const()}",
                         "else:", f"    {RESULT} = {RESULT} - {r}"]
        return assemble(name, body, c.return_expression(), inputs={"x": (config.input_low, config.input_high)},
                        latents={r: (config.latent_low, config.latent_high) for r in latents})


FAMILY = MultiRFamily()
