"""What a problem family is, and the shared pipeline for code families.

A family turns ``(rng, config)`` into a :class:`Program`; it knows nothing about
prompts or scoring. The pipeline in :mod:`cf_tasks.generation` executes the
program for every latent value, applies the quality filters and builds items.
Families that are not code (the GSM word problems) implement
``generate_items`` themselves and return the same :class:`GenerationResult`.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping


@dataclass(frozen=True)
class Program:
    """A generated function ``y = f(inputs, latents)``.

    ``source`` is executable: the entry point takes the inputs and the latents as
    keyword parameters. ``display_source`` is what the prompt shows: the same
    logic with each latent drawn inside the body as ``r = random.randint(lo, hi)``
    (as in the paper's figures).
    """

    source: str
    display_source: str
    entry_point: str
    inputs: Mapping[str, tuple[int, int]]  # name -> inclusive range to sample queries from
    latents: Mapping[str, tuple[int, ...]]  # name -> finite domain, in order


@dataclass(frozen=True)
class FamilyConfig:
    """Base of every family's config. Subclasses add knobs, each with ``metadata={"help": ...}``."""

    max_abs_value: int = field(default=10_000, metadata={"help": "Reject items whose outputs exceed this magnitude."})
    max_attempts: int = field(default=200, metadata={"help": "Candidate programs tried per item before giving up."})

    def validate(self) -> None:
        """Raise ``ValueError`` naming the field; called by :meth:`Family.config`."""
        if self.max_abs_value <= 0:
            raise ValueError("max_abs_value must be positive")
        if self.max_attempts <= 0:
            raise ValueError("max_attempts must be positive")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def field_help(cls) -> dict[str, str]:
        return {f.name: f.metadata.get("help", "") for f in dataclasses.fields(cls)}


@dataclass
class GenerationResult:
    items: list[dict]  # JSON records (see cf_tasks.records) with provenance fields
    report: dict[str, Any]  # counts per filter, attempts, timing


_NUMBER_FIELD_TYPES = {"int": (int,), "float": (int, float)}


def _check_override_type(family: str, fld: dataclasses.Field, value: Any) -> None:
    """Reject a wrong-typed number override (``--set max_attempts=abc``) with a message naming the field.

    Without it the wrong type surfaced later as a bare ``TypeError`` from a
    comparison inside ``validate`` or the generator. Other field types are left
    to the config's own ``__post_init__``/``validate`` (they may coerce).
    """
    allowed = _NUMBER_FIELD_TYPES.get(fld.type if isinstance(fld.type, str) else getattr(fld.type, "__name__", ""))
    if allowed is None:
        return
    if isinstance(value, bool) or not isinstance(value, allowed):
        kind = "an integer" if fld.type in ("int", int) else "a number"
        raise ValueError(f"family {family!r}: config field {fld.name!r} must be {kind}, got {value!r}")


class Family:
    """Base class of problem families. Register an instance under ``executable_cf.families``."""

    name: ClassVar[str]
    version: ClassVar[str]
    description: ClassVar[str] = ""
    config_cls: ClassVar[type[FamilyConfig]] = FamilyConfig
    levels: ClassVar[Mapping[str, FamilyConfig]] = {}
    variants: ClassVar[tuple[str, ...]] = ("counterfactual", "interventional")
    default_level: ClassVar[str] = "medium"

    def config(self, level: str | None = None, **overrides: Any) -> FamilyConfig:
        """The config of a named level with field overrides, validated."""
        level = level or self.default_level
        if level not in self.levels:
            raise ValueError(f"family {self.name!r} has no level {level!r}; levels: {', '.join(self.levels)}")
        base = self.levels[level]
        known = {f.name for f in dataclasses.fields(base)}
        unknown = set(overrides) - known
        if unknown:
            raise ValueError(
                f"family {self.name!r}: unknown config field(s) {', '.join(sorted(unknown))}; "
                f"fields: {', '.join(sorted(known))}"
            )
        fields = {f.name: f for f in dataclasses.fields(base)}
        for key, value in overrides.items():
            _check_override_type(self.name, fields[key], value)
        cfg = dataclasses.replace(base, **overrides)
        cfg.validate()
        return cfg

    def generate_items(self, *, variant: str, n: int, seed: int, config: FamilyConfig,
                       level: str | None = None, executor=None, progress: bool = False) -> GenerationResult:
        raise NotImplementedError

    # -- reference solvers (used by the cf_oracle / cf_no_abduction lm-eval models) ----------
    def oracle_answer(self, doc: Mapping[str, Any], executor=None) -> list:
        """Solve an item from its structured fields (never from ``doc["answer"]``)."""
        raise NotImplementedError

    def no_abduction_answer(self, doc: Mapping[str, Any], executor=None) -> list:
        """Answer while ignoring the observation (the prior); shows the counterfactual drop."""
        raise NotImplementedError


class CodeFamily(Family):
    """A family of generated Python functions; subclasses implement :meth:`generate_program`."""

    def generate_program(self, rng: random.Random, config: FamilyConfig) -> Program:
        raise NotImplementedError

    def sample_query(self, rng: random.Random, program: Program, config: FamilyConfig) -> tuple[dict, dict]:
        """Observed inputs and an intervention on one input (a different value in its range)."""
        observed = {name: rng.randint(lo, hi) for name, (lo, hi) in program.inputs.items()}
        target = rng.choice(sorted(program.inputs))
        lo, hi = program.inputs[target]
        new = rng.randint(lo, hi - 1) if hi > lo else lo
        if new >= observed[target] and hi > lo:
            new += 1
        return observed, {target: new}

    def generate_items(self, *, variant: str, n: int, seed: int, config: FamilyConfig,
                       level: str | None = None, executor=None, progress: bool = False) -> GenerationResult:
        from cf_tasks.generation import generate_code_items

        return generate_code_items(self, variant=variant, n=n, seed=seed, config=config, level=level,
                                   executor=executor, progress=progress)

    def oracle_answer(self, doc: Mapping[str, Any], executor=None) -> list:
        from cf_tasks.abduction import solve_doc

        return solve_doc(doc, executor=executor).answer

    def no_abduction_answer(self, doc: Mapping[str, Any], executor=None) -> list:
        from cf_tasks.abduction import solve_doc

        return solve_doc(doc, executor=executor, ignore_observation=True).answer
