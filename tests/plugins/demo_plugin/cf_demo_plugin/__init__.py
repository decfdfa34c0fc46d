"""A minimal third-party plugin: one code family and one selector.

``demo_mod`` builds ``(a * x + r) % m`` programs; it reuses the shared
generation pipeline exactly as an installed family would.
"""

from dataclasses import dataclass, field

from cf_tasks.families.base import CodeFamily, FamilyConfig, Program
from selection.base import Selection, Selector


@dataclass(frozen=True)
class DemoConfig(FamilyConfig):
    modulus: int = field(default=4, metadata={"help": "modulus of the return value"})

    def validate(self) -> None:
        super().validate()
        if self.modulus < 2:
            raise ValueError("modulus must be at least 2")


class DemoModFamily(CodeFamily):
    name = "demo_mod"
    version = "0.0.1"
    description = "(a*x + r) % m with one latent"
    config_cls = DemoConfig
    levels = {"easy": DemoConfig(modulus=3), "medium": DemoConfig(modulus=4), "hard": DemoConfig(modulus=6)}

    def generate_program(self, rng, config):
        a = rng.randint(2, 9)
        body = f"    return ({a} * x + r) % {config.modulus}\n"
        return Program(
            source=f"def demo_func(x, r):\n{body}",
            display_source=f"import random\n\ndef demo_func(x):\n    r = random.randint(0, 11)\n{body}",
            entry_point="demo_func",
            inputs={"x": (0, 20)},
            latents={"r": tuple(range(12))},
        )


class FirstSelector(Selector):
    """Keep the first k rows (a trivial selector)."""

    name = "demo_first"
    config_cls = DemoConfig

    def select(self, pool, config):
        return Selection(indices=list(range(min(2, len(pool)))))


FAMILY = DemoModFamily()
SELECTOR = FirstSelector()
