"""The selector interface shared by GRAPE, BIDS and third-party selectors.

A selector plugin is an object registered under the entry-point group
``executable_cf.selectors`` with:

- ``name`` and ``config_cls`` (a dataclass whose fields carry ``metadata={"help": ...}``);
- ``select(pool, config) -> Selection``: the library call;
- ``add_cli_arguments(parser)`` and ``run_cli(args) -> int``: its ``cf-select NAME`` subcommand.
"""

from __future__ import annotations

import argparse
import numbers
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


def budget_value(value: str | float | int) -> int | float:
    """A budget as a count (an ``int``, or text without a point: ``"300"``) or a fraction (a ``float``,
    or text such as ``"0.15"``, in ``(0, 1]``; ``1.0`` = the whole pool). Anything else is an error."""
    if isinstance(value, bool):
        raise ValueError(f"budget must be a count or a fraction, got {value!r}")
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                raise ValueError(f"budget must be a count (300) or a fraction (0.15), got {text!r}") from None
    if isinstance(value, numbers.Integral):
        if value < 1:
            raise ValueError(f"a budget count must be at least 1, got {value!r}")
        return int(value)
    if isinstance(value, numbers.Real):
        if not 0 < value <= 1:
            raise ValueError(f"a budget fraction must be in (0, 1] (1.0 = the whole pool), got {value!r}; "
                             "give a count as a whole number (300)")
        return float(value)
    raise ValueError(f"budget must be a count or a fraction, got {value!r}")


def parse_budget(value: str | float | int, pool_size: int) -> int:
    """The number of rows a budget selects from a pool of ``pool_size`` (see :func:`budget_value`).

    A fraction rounds to the nearest count (at least 1); a count above the pool size is an error.
    """
    budget = budget_value(value)
    if isinstance(budget, float):
        return max(1, min(pool_size, int(round(budget * pool_size))))
    if budget > pool_size:
        raise ValueError(f"budget {budget} is more than the pool's {pool_size} row(s); give at most {pool_size} "
                         "or a fraction (1.0 = all)")
    return budget


def selected_subset(rows: Sequence[Any], selection: Selection) -> list[Any]:
    return [rows[i] for i in selection.indices]
