"""The one bridge from typed dataclass configs to argparse, shared by every CLI.

Configs are dataclasses whose fields carry their help text in
``field(metadata={"help": ...})``; a CLI exposes them with
:func:`add_dataclass_arguments` and builds the config back with
:func:`dataclass_from_args`, so a knob is declared once and its ``--help``
line, type, choices and default can never drift from the config.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, Literal


class DefaultsHelpFormatter(argparse.HelpFormatter):
    """Shows ``(default: X)`` for options that have a meaningful default (not None, False or suppressed)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if ("%(default)" in text or "(default: " in text or not action.option_strings
                or any(action.default is v for v in (None, False, argparse.SUPPRESS))):
            return text
        if isinstance(action, argparse.BooleanOptionalAction) and action.default is True:
            return text + " (default: on)" if text else "(default: on)"
        return f"{text} (default: %(default)s)" if text else "(default: %(default)s)"


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return tp, False


def _default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def add_dataclass_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type, *,
                            skip: tuple[str, ...] = (), required: tuple[str, ...] = (),
                            absent_keeps_default: bool = False) -> None:
    """One ``--field-name`` option per field of ``cls``.

    bools become ``--x/--no-x``, ``list[T]`` fields take one or more values (and
    may be repeated), ``Literal`` fields and ``metadata["choices"]`` become
    choices, ``metadata["short"]`` adds short flags. Nested dataclass fields are
    skipped (expose them with their own call). With ``absent_keeps_default``
    an option the user did not give is missing from the namespace (argparse
    ``SUPPRESS``), so several configs can share one parser and each keeps its own
    defaults; ``--help`` shows the dataclass default either way.
    """
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        if f.name in skip or dataclasses.is_dataclass(kind):
            continue
        base, _ = _unwrap_optional(kind)
        default = _default_of(f)
        help_text = f.metadata.get("help", "")
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS if absent_keeps_default else default}
        if base is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(base) in (list, tuple):
            kwargs.update(nargs="+", action="extend", type=typing.get_args(base)[0], metavar=f.name.upper())
        elif typing.get_origin(base) is Literal:
            kwargs["choices"] = typing.get_args(base)
        else:
            kwargs.update(type=base, metavar=f.name.upper())
        if "choices" in f.metadata:
            kwargs["choices"] = f.metadata["choices"]
        if "choices" in kwargs:
            kwargs.pop("metavar", None)
        if f.name in required:
            kwargs["required"] = True
        if not any(default is v for v in (None, False)) and default != ():
            shown = "on" if default is True else default
            help_text = f"{help_text} (default: {shown})".strip()
        kwargs["help"] = help_text.replace("%", "%%")
        parser.add_argument(*f.metadata.get("short", ()), "--" + f.name.replace("_", "-"), **kwargs)


def dataclass_from_args(cls: type, args: argparse.Namespace, **overrides: Any) -> Any:
    """Build ``cls`` from the options :func:`add_dataclass_arguments` added (absent ones keep defaults)."""
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
    values.update(overrides)
    return cls(**values)
