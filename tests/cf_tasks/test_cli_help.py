"""``--help`` shows what a default is, and counts that make no dataset are errors (issue 11)."""

import argparse
from dataclasses import dataclass, field
from typing import Literal, Optional

import pytest

from cf_tasks.cli import build_parser, main
from plugins.cliargs import DefaultsHelpFormatter, add_dataclass_arguments, dataclass_from_args


def _help(*command: str) -> str:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command[0]].format_help()


def test_generate_help_shows_defaults_once():
    text = " ".join(_help("generate").split())
    assert "number of items (default: 200)" in text
    assert "(default: 1234)" in text and "(default: counterfactual)" in text
    assert "(default: None)" not in text and text.count("(default: 200)") == 1


@pytest.mark.parametrize("bad", ["0", "-3", "two"])
def test_generate_n_must_be_a_positive_count(bad, tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["generate", "--family", "while", "--n", bad, "-o", str(tmp_path / "out")])
    assert exc.value.code == 2
    assert "--n" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@dataclass(frozen=True)
class _Demo:
    steps: int = field(default=0, metadata={"help": "how many steps"})
    mode: Literal["a", "b"] = field(default="a", metadata={"help": "which mode"})
    tags: list[str] = field(default_factory=list, metadata={"help": "labels"})
    fast: bool = field(default=True, metadata={"help": "go fast"})
    name: Optional[str] = field(default=None, metadata={"help": "a name"})


def test_one_dataclass_bridge_types_defaults_and_round_trip():
    parser = argparse.ArgumentParser(formatter_class=DefaultsHelpFormatter)
    add_dataclass_arguments(parser, _Demo)
    text = " ".join(parser.format_help().split())
    assert "how many steps (default: 0)" in text and "go fast (default: on)" in text
    assert "(default: None)" not in text and text.count("(default: 0)") == 1
    args = parser.parse_args(["--steps", "3", "--mode", "b", "--tags", "x", "y", "--tags", "z", "--no-fast"])
    assert dataclass_from_args(_Demo, args) == _Demo(steps=3, mode="b", tags=["x", "y", "z"], fast=False)
    with pytest.raises(SystemExit):
        parser.parse_args(["--mode", "c"])
    shared = argparse.ArgumentParser()
    add_dataclass_arguments(shared, _Demo, absent_keeps_default=True)
    assert vars(shared.parse_args(["--steps", "2"])) == {"steps": 2}
    assert dataclass_from_args(_Demo, shared.parse_args([])) == _Demo()


@dataclass
class _Inner:
    depth: int = field(default=1, metadata={"help": "how deep"})


@dataclass
class _Outer:
    stages: list[str] = field(default_factory=lambda: ["a", "b"], metadata={"help": "stages to run"})
    budget: int | float = field(default=0.5, metadata={"help": "a count or a fraction"})
    template: str = field(default="Q: {x}\nA:", metadata={"help": "prompt template"})
    level: Literal[1, 2] = field(default=1, metadata={"help": "a numbered level"})
    inner: _Inner = field(default_factory=_Inner)


def test_bridge_lists_replace_their_default_unions_parse_and_nested_configs_fill():
    parser = argparse.ArgumentParser()
    add_dataclass_arguments(parser, _Outer)
    add_dataclass_arguments(parser.add_argument_group("inner"), _Inner)
    text = " ".join(parser.format_help().split())
    assert "(default: a b)" in text and "(default: Q: {x}\\nA:)" in text
    assert dataclass_from_args(_Outer, parser.parse_args(["--stages", "b"])).stages == ["b"]  # not [a, b, b]
    assert dataclass_from_args(_Outer, parser.parse_args([])) == _Outer()
    parsed = dataclass_from_args(_Outer, parser.parse_args(["--budget", "7", "--level", "2", "--depth", "3"]))
    assert parsed.budget == 7 and isinstance(parsed.budget, int) and parsed.level == 2 and parsed.inner.depth == 3
    assert dataclass_from_args(_Outer, parser.parse_args(["--budget", "0.25"])).budget == 0.25
    with pytest.raises(SystemExit):
        parser.parse_args(["--budget", "lots"])
    shared = argparse.ArgumentParser()
    add_dataclass_arguments(shared, _Outer, absent_keeps_default=True)
    assert vars(shared.parse_args(["--stages", "c", "--stages", "d"])) == {"stages": ["c", "d"]}
