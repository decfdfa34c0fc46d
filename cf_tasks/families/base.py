"""What a problem family is: the base classes every family plugin subclasses.

A family turns ``(rng, config)`` into a :class:`Program`; it knows nothing about
prompts or scoring. Code families implement only :meth:`CodeFamily.generate_program`
and inherit :meth:`CodeFamily.generate_items`, which runs the shared pipeline of
:mod:`cf_tasks.generation` (execute every program at every latent value, filter,
build items). Families that are not code (the GSM word problems) implement
``generate_items`` themselves and return the same :class:`GenerationResult`.

The data types live in :mod:`cf_tasks.families.types` (re-exported here), so the
pipeline imports them without importing this module: no import cycle.
"""

from __future__ import annotations

import dataclasses
import json
import random
from typing import Any, ClassVar, Mapping

from cf_tasks.families.types import (PIPELINE_DEFAULTS, CodePipelineConfig, FamilyConfig, GenerationError,
                                     GenerationResult, Program)

__all__ = ["Family", "CodeFamily", "FamilyConfig", "CodePipelineConfig", "PIPELINE_DEFAULTS", "GenerationError",
           "GenerationResult", "Program"]


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
    domain: ClassVar[str | None] = None
    """First part of the released dataset config names (``code`` in ``code-while-counterfactual``)."""

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

    # -- reference solvers (the cf_oracle / cf_no_abduction / cf_echo / cf_one_latent lm-eval models) --
    def oracle_answer(self, doc: Mapping[str, Any], executor=None) -> list:
        """Solve an item from its structured fields (never from ``doc["answer"]``)."""
        raise NotImplementedError

    def no_abduction_answer(self, doc: Mapping[str, Any], executor=None) -> list:
        """Answer while ignoring the observation (the prior); shows the counterfactual drop."""
        raise NotImplementedError

    def echo_answer(self, doc: Mapping[str, Any], executor=None) -> list:
        """The shortcut "nothing changes": answer the observed output."""
        return [observed_output(doc)]

    def one_latent_answer(self, doc: Mapping[str, Any], executor=None) -> list:
        """The shortcut "assume one latent": the answer under one consistent hidden value, chosen deterministically.

        The default suits families whose observation determines the hidden
        quantity uniquely (``gsm`` rejects items where it does not), where it is
        the oracle's answer; families with several consistent values override it.
        """
        return self.oracle_answer(doc, executor)


def observed_output(doc: Mapping[str, Any]) -> Any:
    """``doc["observed"]["output"]`` of an item or of an lm-eval document (nested fields as JSON text)."""
    observed = doc.get("observed")
    if isinstance(observed, str):
        observed = json.loads(observed)
    if not isinstance(observed, Mapping) or "output" not in observed:
        raise ValueError(f"item {doc.get('id', '?')}: field 'observed' must be an object with an 'output'")
    return observed["output"]


class CodeFamily(Family):
    """A family of generated Python functions; subclasses implement :meth:`generate_program`."""

    domain = "code"

    def generate_program(self, rng: random.Random, config: FamilyConfig) -> Program:
        raise NotImplementedError

    def sample_rows(self, rng: random.Random, program: Program, k: int) -> list[dict]:
        """Input rows at which the pipeline tabulates the program (every row times every latent assignment).

        A query pairs two rows that differ in exactly one input (the observed run
        and the intervention). One input: ``k`` distinct values of its range (all
        of them if the range is smaller), so every pair of distinct values is
        equally likely. Several inputs: a base row and ``k - 1`` rows that change
        one input each.
        """
        names = list(program.inputs)
        if len(names) == 1:
            (name,), (lo, hi) = names, program.inputs[names[0]]
            values = range(lo, hi + 1)
            picked = rng.sample(values, k) if len(values) > k else list(values)
            return [{name: v} for v in picked]
        base = {name: rng.randint(lo, hi) for name, (lo, hi) in program.inputs.items()}
        rows = [base]
        for _ in range(k - 1):
            name = rng.choice(names)
            lo, hi = program.inputs[name]
            if hi > lo:
                value = rng.randint(lo, hi - 1)
                rows.append({**base, name: value + 1 if value >= base[name] else value})
        return rows

    def generate_items(self, *, variant: str, n: int, seed: int, config: FamilyConfig,
                       level: str | None = None, executor=None, progress: bool = False) -> GenerationResult:
        # Imported here so that loading a family plugin (e.g. ``cf-tasks families``) does not load
        # the pipeline; the dependency is one-way (the pipeline never imports this module).
        from cf_tasks.generation import generate_code_items

        return generate_code_items(self, variant=variant, n=n, seed=seed, config=config, level=level,
                                   executor=executor, progress=progress)

    # Per-document forms of the reference solvers; the lm-eval models batch many documents
    # through the same function (``cf_tasks.reference.solve_code_docs``).
    def oracle_answer(self, doc: Mapping[str, Any], executor=None) -> list:
        from cf_tasks.reference import solve_code_docs

        return solve_code_docs([doc], "cf_oracle", executor)[0]

    def no_abduction_answer(self, doc: Mapping[str, Any], executor=None) -> list:
        from cf_tasks.reference import solve_code_docs

        return solve_code_docs([doc], "cf_no_abduction", executor)[0]

    def one_latent_answer(self, doc: Mapping[str, Any], executor=None) -> list:
        from cf_tasks.reference import solve_code_docs

        return solve_code_docs([doc], "cf_one_latent", executor)[0]
