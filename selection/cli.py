"""``cf-select``: one subcommand per installed selector plugin, plus ``pool``.

Thin by design: each selector adds its own options (``add_cli_arguments``) and
runs through ``run_cli``; this module only builds the parser and sets up logging.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from plugins import PLUGIN_ERRORS, SELECTORS, PluginLoadError

# Built-in commands that are not selectors; "module:attr" of an object with
# add_cli_arguments/run_cli, imported only when the command is used.
BUILTIN_COMMANDS = {"pool": "selection.pool:COMMAND"}


def _load_builtin(spec: str):
    module, attr = spec.split(":")
    return getattr(importlib.import_module(module), attr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cf-select", description="Select SFT training data (GRAPE, BIDS, plugins).")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, spec in BUILTIN_COMMANDS.items():
        cmd = _load_builtin(spec)
        p = sub.add_parser(name, help=getattr(cmd, "help", ""), description=getattr(cmd, "help", ""))
        cmd.add_cli_arguments(p)
        p.set_defaults(_runner=cmd)
    for name in SELECTORS.names():
        try:
            selector = SELECTORS.get(name)
        except PluginLoadError as exc:
            p = sub.add_parser(name, help=f"(broken plugin: {exc})")
            p.set_defaults(_broken=exc)
            continue
        doc = (type(selector).__doc__ or "").strip().splitlines()
        p = sub.add_parser(name, help=doc[0] if doc else "", description="\n".join(doc))
        selector.add_cli_arguments(p)
        p.set_defaults(_runner=selector)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if getattr(args, "_broken", None) is not None:
        print(f"cf-select: {args._broken}", file=sys.stderr)
        return 2
    try:
        return int(args._runner.run_cli(args) or 0)
    except (ValueError, OSError, *PLUGIN_ERRORS) as exc:
        print(f"cf-select {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
