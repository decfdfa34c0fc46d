"""The one bridge from typed dataclass configs to argparse, shared by every CLI.

Configs are dataclasses whose fields carry their help text in
``field(metadata={"help": ...})``; a CLI exposes them with
:func:`add_dataclass_arguments` and builds the config back with
:func:`dataclass_from_args`, so a knob is declared once and its ``--help``
line, type, choices and default can never drift from the config. Every
``cf-*`` command goes through here; no module keeps a copy of its own.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any, Callable, Literal, Sequence


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


class _ExtendOverDefault(argparse._ExtendAction):
    """``--x a b --x c`` gives ``[a, b, c]``; the first use replaces a non-empty default instead of adding to it
    (plain ``action="extend"`` would turn ``--stages select`` into ``[warmup, ..., select, select]``)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        if getattr(namespace, self.dest, None) is self.default:
            setattr(namespace, self.dest, None)
        super().__call__(parser, namespace, values, option_string)


def _unwrap_optional(tp: Any) -> Any:
    """``X | None`` -> ``X``; ``X | Y | None`` -> ``X | Y`` (None is the "not given" default, never typed)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = tuple(a for a in typing.get_args(tp) if a is not type(None))
        return args[0] if len(args) == 1 else typing.Union[args]
    return tp


def _union_converter(members: Sequence[type]) -> Callable[[str], Any]:
    """For ``int | float`` and the like: the first member type that accepts the text, in declaration order."""
    def convert(text: str) -> Any:
        for member in members:
            try:
                return member(text)
            except (TypeError, ValueError):
                continue
        raise argparse.ArgumentTypeError(f"expected {' or '.join(m.__name__ for m in members)}, got {text!r}")

    convert.__name__ = " or ".join(m.__name__ for m in members)  # argparse names it in "invalid ... value"
    return convert


def _default_of(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return f.default_factory()  # type: ignore[misc]
    return None


def _shown(default: Any) -> str:
    """A default as ``--help`` prints it: bools as on/off, escapes visible (a template's newline reads ``\\n``)."""
    if isinstance(default, bool):
        return "on" if default else "off"
    if isinstance(default, (list, tuple)):
        return " ".join(map(str, default))
    return str(default).replace("\n", "\\n").replace("\t", "\\t")


def _type_kwargs(f: dataclasses.Field, base: Any) -> dict[str, Any]:
    """The argparse ``action``/``type``/``nargs``/``choices`` of one field, from its annotation."""
    if base is bool:
        return {"action": argparse.BooleanOptionalAction}
    origin = typing.get_origin(base)
    if origin in (list, tuple):
        item = typing.get_args(base)[0]
        return {"nargs": "+", "action": _ExtendOverDefault, "type": item, "metavar": f.name.upper()}
    if origin is Literal:
        choices = typing.get_args(base)
        return {"choices": choices, "type": type(choices[0])}
    if origin in (typing.Union, types.UnionType):
        return {"type": _union_converter(typing.get_args(base)), "metavar": f.name.upper()}
    return {"type": base, "metavar": f.name.upper()}


def add_dataclass_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type, *,
                            skip: tuple[str, ...] = (), required: tuple[str, ...] = (),
                            absent_keeps_default: bool = False) -> None:
    """One ``--field-name`` option per field of ``cls``, help text from ``metadata["help"]`` plus its default.

    bools become ``--x/--no-x``; ``list[T]`` fields take one or more values (and
    may be repeated); ``Literal`` fields and ``metadata["choices"]`` become
    choices; ``X | None`` is typed as ``X`` and a union such as ``int | float``
    takes the first member that parses; ``metadata["short"]`` adds short flags.
    Fields in ``skip`` and nested dataclass fields are left out (expose the
    latter with their own call, e.g. in an argument group). With
    ``absent_keeps_default`` an option the user did not give is missing from the
    namespace (argparse ``SUPPRESS``), so several configs can share one parser
    and each keeps its own defaults (or those of a config file); ``--help``
    shows the dataclass default either way.
    """
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        if f.name in skip or dataclasses.is_dataclass(kind):
            continue
        default = _default_of(f)
        kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS if absent_keeps_default else default}
        kwargs.update(_type_kwargs(f, _unwrap_optional(kind)))
        if "choices" in f.metadata:
            kwargs["choices"] = f.metadata["choices"]
        if "choices" in kwargs:
            kwargs.pop("metavar", None)
        if f.name in required:
            kwargs["required"] = True
        help_text = f.metadata.get("help", "")
        if not any(default is v for v in (None, False)) and default not in ((), []):
            help_text = f"{help_text} (default: {_shown(default)})".strip()
        kwargs["help"] = help_text.replace("%", "%%")
        parser.add_argument(*f.metadata.get("short", ()), "--" + f.name.replace("_", "-"), **kwargs)


def dataclass_from_args(cls: type, args: argparse.Namespace, **overrides: Any) -> Any:
    """Build ``cls`` from the options :func:`add_dataclass_arguments` added; absent ones keep their defaults.

    A nested dataclass field is built the same way from the same namespace (its
    fields were added by their own call), so one flat command line fills a
    config of several sections; ``overrides`` win over the namespace.
    """
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if dataclasses.is_dataclass(hints[f.name]):
            values[f.name] = dataclass_from_args(hints[f.name], args)
        elif hasattr(args, f.name):
            values[f.name] = getattr(args, f.name)
    values.update(overrides)
    return cls(**values)
