"""The selector interface shared by GRAPE, BIDS and third-party selectors.

A selector plugin is an object registered under the entry-point group
``executable_cf.selectors`` with:

- ``name`` and ``config_cls`` (a dataclass whose fields carry ``metadata={"help": ...}``);
- ``select(pool, config) -> Selection``: the library call;
- ``add_cli_arguments(parser)`` and ``run_cli(args) -> int``: its ``cf-select NAME`` subcommand.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any, ClassVar, Sequence


@dataclass
class Selection:
    """Indices into the pool in selection order, with per-index scores and diagnostics."""

    indices: list[int]
    scores: list[float] | None = None
    diagnostics: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"indices": [int(i) for i in self.indices]}
        if self.scores is not None:
            out["scores"] = [float(s) for s in self.scores]
        out.update(self.diagnostics)
        return out


class Selector:
    """Base class; subclasses set ``name`` and ``config_cls`` and implement ``select``."""

    name: ClassVar[str]
    config_cls: ClassVar[type]

    def select(self, pool: Any, config: Any) -> Selection:
        raise NotImplementedError

    def add_cli_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add this selector's options to its ``cf-select NAME`` subparser."""

    def run_cli(self, args: argparse.Namespace) -> int:
        raise NotImplementedError(f"selector {self.name!r} has no command-line interface")


def parse_budget(value: str | float | int, pool_size: int) -> int:
    """A budget given as a count (``300``) or a fraction of the pool (``0.15``)."""
    number = float(value)
    if number <= 0:
        raise ValueError(f"budget must be positive, got {value!r}")
    count = int(round(number * pool_size)) if number < 1 else int(number)
    if number >= 1 and number != int(number):
        raise ValueError(f"a budget of 1 or more must be a whole count, got {value!r}")
    return max(1, min(count, pool_size))


def selected_subset(rows: Sequence[Any], selection: Selection) -> list[Any]:
    return [rows[i] for i in selection.indices]
