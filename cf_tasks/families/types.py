"""The data types every family and the generation pipeline share.

A leaf module: it imports nothing from the rest of the package, so that
:mod:`cf_tasks.families.base` (the family classes) may use the pipeline in
:mod:`cf_tasks.generation` while the pipeline uses these types, without an
import cycle.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping


class GenerationError(RuntimeError):
    """An item could not be generated within ``config.max_attempts`` candidates."""


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


@dataclass(frozen=True)
class CodePipelineConfig(FamilyConfig):
    """Knobs of the shared code pipeline: query search and the shortcut filters.

    Why they exist: without them most gold sets are singletons that equal what
    any one consistent latent gives, and a fifth of them equal the observed
    output, so answering the observation or assuming one latent scores well
    (see ``docs/families.md``, "Shortcut filters"). A code family whose config
    is a plain :class:`FamilyConfig` gets the defaults below.
    """

    min_gold_size: int = field(default=1, metadata={
        "help": "Reject queries whose gold set has fewer values (filter gold_too_small)."})
    multi_gold_prob: float = field(default=0.0, metadata={
        "help": "Share of items (drawn per item) whose gold set must hold at least 2 values; bounds what "
                "assuming one consistent latent can score (filter gold_too_small)."})
    min_consistent: int = field(default=1, metadata={
        "help": "Reject queries where fewer latent assignments reproduce the observation (filter too_few_consistent)."})
    reject_echo: bool = field(default=True, metadata={
        "help": "Reject queries whose gold set is exactly {observed output}, which answering the observation "
                "would get right (filter echo)."})
    max_midrun_abs: int | None = field(default=None, metadata={
        "help": "Reject programs unless interval analysis proves every intermediate value stays within this "
                "magnitude on every run (filter midrun_bound); None: no check."})
    query_inputs: int = field(default=6, metadata={
        "help": "Input values each program is tabulated at (times every latent assignment); queries pair two of them."})
    queries_per_program: int = field(default=24, metadata={
        "help": "Queries (observed input, intervened input, true latents) drawn from one program's table "
                "before the program is dropped (counted in exhausted_programs)."})

    def validate(self) -> None:
        super().validate()
        for name in ("min_gold_size", "min_consistent", "queries_per_program"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if isinstance(self.query_inputs, bool) or not isinstance(self.query_inputs, int) or self.query_inputs < 2:
            raise ValueError(f"query_inputs must be an integer >= 2, got {self.query_inputs!r}")
        if not 0.0 <= self.multi_gold_prob <= 1.0:
            raise ValueError(f"multi_gold_prob must be a probability in [0, 1], got {self.multi_gold_prob!r}")
        if not isinstance(self.reject_echo, bool):
            raise ValueError(f"reject_echo must be true or false, got {self.reject_echo!r}")
        if self.max_midrun_abs is not None and (isinstance(self.max_midrun_abs, bool)
                                                or not isinstance(self.max_midrun_abs, int)
                                                or self.max_midrun_abs <= 0):
            raise ValueError(f"max_midrun_abs must be a positive integer or null, got {self.max_midrun_abs!r}")


PIPELINE_DEFAULTS = CodePipelineConfig()
"""The pipeline knobs a code family gets when its config does not declare them."""


@dataclass
class GenerationResult:
    items: list[dict]  # JSON records (see cf_tasks.records) with provenance fields
    report: dict[str, Any]  # counts per filter, attempts, timing
