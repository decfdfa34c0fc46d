"""Run configs: typed dataclasses loaded from one YAML file per run.

Why one file: a run is reproducible from the file alone (it is copied into the
run directory, resolved). Our fields are typed dataclasses whose fields carry
``metadata={"help": ...}``; TRL's own arguments live under ``trl:`` and are
passed through to ``GRPOConfig``/``SFTConfig`` unchanged, after checking their
names against TRL's dataclass so a typo fails before a model is loaded.
Every error names the file and the dotted field.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Union

import yaml


class ConfigError(ValueError):
    """A config file or field is invalid; the message names the file and the field."""


# -- shared pieces -------------------------------------------------------------------------------------------


@dataclass
class LoraSpec:
    """LoRA adapters via peft; omit the ``lora:`` section (or set it to null) for full fine-tuning."""

    r: int = field(default=16, metadata={"help": "LoRA rank."})
    alpha: int = field(default=32, metadata={"help": "LoRA alpha (scaling = alpha / r)."})
    dropout: float = field(default=0.05, metadata={"help": "Dropout on the LoRA branch."})
    target_modules: Union[str, list[str]] = field(
        default="all-linear", metadata={"help": "Modules to adapt: 'all-linear' or a list of module names."})
    merge_on_save: bool = field(
        default=True, metadata={"help": "Also save the adapter merged into the base weights under final/ "
                                        "(so lm-eval and vLLM load it as a plain model)."})

    def validate(self) -> None:
        if self.r <= 0:
            raise ValueError("lora.r must be positive")
        if self.alpha <= 0:
            raise ValueError("lora.alpha must be positive")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError("lora.dropout must be in [0, 1)")

    def to_peft(self):
        from peft import LoraConfig

        return LoraConfig(r=self.r, lora_alpha=self.alpha, lora_dropout=self.dropout,
                          target_modules=self.target_modules, task_type="CAUSAL_LM")


@dataclass
class EvalSpec:
    """Post-training evaluation with lm-eval on ``executable_cf`` tasks (in-process)."""

    enabled: bool = field(default=False, metadata={"help": "Evaluate the final checkpoint after training."})
    tasks: list[str] = field(default_factory=lambda: ["executable_cf"],
                             metadata={"help": "lm-eval task or group names."})
    limit: Union[int, float, None] = field(
        default=None, metadata={"help": "lm-eval --limit: items per task, or a fraction of each task when below 1."})
    batch_size: int = field(default=8, metadata={"help": "lm-eval batch size for the HF model."})
    max_gen_toks: Union[int, None] = field(default=None, metadata={"help": "Override the tasks' max_gen_toks."})
    apply_chat_template: bool = field(default=True, metadata={"help": "Wrap prompts in the model's chat template."})
    baseline: bool = field(default=True, metadata={"help": "Also evaluate the starting model: the 'before' "
                                                           "column of the before/after table."})
    include_path: Union[str, None] = field(default=None, metadata={"help": "Extra task YAML folder for lm-eval."})
    include_default_tasks: bool = field(default=False, metadata={"help": "Also index lm-eval's bundled tasks (to "
                                                                         "evaluate e.g. gsm8k too); slower start."})
    seed: int = field(default=0, metadata={"help": "lm-eval random seed."})

    def validate(self) -> None:
        if not self.tasks:
            raise ValueError("evaluate.tasks must name at least one task")
        if self.batch_size <= 0:
            raise ValueError("evaluate.batch_size must be positive")


@dataclass
class FamilySpec:
    """One component of the prompt mix: a family, its level, its share of the prompts."""

    family: str = field(metadata={"help": "Family plugin name (cf-tasks families lists them)."})
    level: Union[str, None] = field(default=None, metadata={"help": "Difficulty level (family default if null)."})
    weight: float = field(default=1.0, metadata={"help": "Share of the prompts, relative to the other entries."})
    variant: str = field(default="counterfactual", metadata={"help": "counterfactual or interventional."})
    overrides: dict[str, Any] = field(default_factory=dict,
                                      metadata={"help": "Family config field overrides for this entry."})

    def validate(self) -> None:
        from cf_tasks.records import VARIANTS
        from plugins import FAMILIES

        if self.weight <= 0:
            raise ValueError("weight must be positive")
        if self.family not in FAMILIES:
            raise ValueError(f"family {self.family!r} is not installed; families: {', '.join(FAMILIES.names())}")
        if self.variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {self.variant!r}")


@dataclass
class PromptData:
    """Prompts for GRPO: generated from families on the fly and/or read from JSONL files of items."""

    families: list[FamilySpec] = field(default_factory=list, metadata={"help": "Family mix to generate from."})
    n: int = field(default=256, metadata={"help": "Prompts generated in total across the family mix."})
    jsonl: list[str] = field(default_factory=list, metadata={"help": "Item JSONL files (need prompt and answer)."})
    seed: int = field(default=0, metadata={"help": "Generation and shuffling seed."})
    chat: bool = field(default=True, metadata={"help": "Present each prompt as a user chat message "
                                                       "(the model's chat template is applied)."})
    system_prompt: Union[str, None] = field(default=None, metadata={"help": "Optional system message (chat only)."})
    shuffle: bool = field(default=True, metadata={"help": "Shuffle the prompts (seeded)."})
    decontaminate: bool = field(default=True, metadata={"help": "Drop generated prompts that are also problems of "
                                                                "the shipped evaluation tasks (default knobs)."})

    def validate(self) -> None:
        if not self.families and not self.jsonl:
            raise ValueError("data needs families (generated prompts) or jsonl files")
        if self.families and self.n <= 0:
            raise ValueError("data.n must be positive")


@dataclass
class SFTData:
    """Prompt-completion training rows from JSONL: GRAPE/BIDS selections or collected traces.

    Rows of a selection carry a ``formatted`` record (the exact text the selector scored and how it was
    tokenized) and are trained exactly so; ``chat`` and ``system_prompt`` apply to the other rows.
    """

    files: list[str] = field(metadata={"help": "JSONL files with prompt/completion or instruction/response columns."})
    prompt_field: Union[str, None] = field(default=None, metadata={"help": "Prompt column (auto-detected if null)."})
    completion_field: Union[str, None] = field(default=None,
                                               metadata={"help": "Completion column (auto-detected if null)."})
    chat: bool = field(default=True, metadata={"help": "Train on conversational rows (chat template applied)."})
    system_prompt: Union[str, None] = field(default=None, metadata={"help": "Optional system message (chat only)."})
    max_rows: Union[int, None] = field(default=None, metadata={"help": "Keep at most this many rows (after shuffle)."})
    seed: int = field(default=0, metadata={"help": "Shuffling seed."})
    shuffle: bool = field(default=True, metadata={"help": "Shuffle rows (seeded)."})
    max_dropped_fraction: float = field(
        default=0.01, metadata={"help": "Fail when more than this fraction of the rows has no trained token left "
                                        "after truncation to trl.max_length (TRL would drop them silently)."})

    def validate(self) -> None:
        if not self.files:
            raise ValueError("data.files must list at least one JSONL file")
        if self.max_rows is not None and self.max_rows <= 0:
            raise ValueError("data.max_rows must be positive")
        if not 0.0 <= self.max_dropped_fraction <= 1.0:
            raise ValueError("data.max_dropped_fraction must be in [0, 1]")


def _validate_resume(value: Any) -> None:
    if value is not None and not isinstance(value, (bool, str)):
        raise ValueError("resume_from_checkpoint must be true, false, null or a checkpoint path")


@dataclass
class GRPORunConfig:
    """One GRPO run. ``trl`` holds ``trl.GRPOConfig`` fields, passed through."""

    model: str = field(metadata={"help": "Model path or hub id of the policy to train."})
    output_dir: str = field(metadata={"help": "Run directory: checkpoints, final model, logs, evaluation."})
    data: PromptData = field(metadata={"help": "Where the prompts come from."})
    rewards: dict[str, float] = field(default_factory=lambda: {"exact_match": 1.0},
                                      metadata={"help": "Reward name (exact_match, f1, format or "
                                                        "'module:function') -> weight."})
    lora: Union[LoraSpec, None] = field(default=None, metadata={"help": "LoRA settings; null = full fine-tuning."})
    prompt_batch_size: Union[int, None] = field(
        default=None, metadata={"help": "Distinct prompts per optimizer step; sets gradient_accumulation_steps so "
                                        "that per_device_train_batch_size x processes x accumulation = "
                                        "prompt_batch_size x num_generations (the paper: 16 x 24)."})
    resume_from_checkpoint: Union[bool, str, None] = field(
        default=None, metadata={"help": "true: resume from the last checkpoint in output_dir if there is one; "
                                        "or a checkpoint path."})
    evaluate: EvalSpec = field(default_factory=EvalSpec, metadata={"help": "Post-training lm-eval run."})
    trl: dict[str, Any] = field(default_factory=dict, metadata={"help": "trl.GRPOConfig fields (passed through)."})

    trl_config_name: typing.ClassVar[str] = "GRPOConfig"

    def validate(self) -> None:
        if not self.rewards:
            raise ValueError("rewards must name at least one reward")
        from training.rewards import REWARDS

        for name, weight in self.rewards.items():
            if not isinstance(weight, (int, float)) or isinstance(weight, bool):
                raise ValueError(f"rewards.{name} must be a number")
            if ":" not in name and name not in REWARDS:
                raise ValueError(f"rewards.{name}: unknown reward; built-in rewards: {', '.join(sorted(REWARDS))} "
                                 "(or give 'module:function')")
        if self.prompt_batch_size is not None and self.prompt_batch_size <= 0:
            raise ValueError("prompt_batch_size must be positive")
        _validate_resume(self.resume_from_checkpoint)


@dataclass
class SFTRunConfig:
    """One SFT run. ``trl`` holds ``trl.SFTConfig`` fields, passed through."""

    model: str = field(metadata={"help": "Model path or hub id of the student."})
    output_dir: str = field(metadata={"help": "Run directory: checkpoints, final model, logs, evaluation."})
    data: SFTData = field(metadata={"help": "Training rows."})
    lora: Union[LoraSpec, None] = field(default=None, metadata={"help": "LoRA settings; null = full fine-tuning."})
    resume_from_checkpoint: Union[bool, str, None] = field(
        default=None, metadata={"help": "true: resume from the last checkpoint in output_dir if there is one; "
                                        "or a checkpoint path."})
    evaluate: EvalSpec = field(default_factory=EvalSpec, metadata={"help": "Post-training lm-eval run."})
    trl: dict[str, Any] = field(default_factory=dict, metadata={"help": "trl.SFTConfig fields (passed through)."})

    trl_config_name: typing.ClassVar[str] = "SFTConfig"

    def validate(self) -> None:
        _validate_resume(self.resume_from_checkpoint)


# -- loading ---------------------------------------------------------------------------------------------------

# Fields of ours that TRL's config must not also set (they would silently disagree).
_RESERVED_TRL_FIELDS = {"output_dir", "resume_from_checkpoint"}


def from_dict(cls: type, data: Any, *, source: str = "<config>", path: str = "") -> Any:
    """Build dataclass ``cls`` from plain data, checking names and types; errors name ``source`` and field."""
    where = f"{source}: {path or '<top level>'}"
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{source}: unknown field(s) {', '.join(_join(path, k) for k in unknown)}; "
                          f"known fields{' of ' + path if path else ''}: {', '.join(sorted(fields))}")
    kwargs = {}
    for name, f in fields.items():
        if name in data:
            kwargs[name] = _convert(hints[name], data[name], source, _join(path, name))
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ConfigError(f"{source}: missing required field {_join(path, name)!r} ({f.metadata.get('help', '')})")
    obj = cls(**kwargs)
    _validate(obj, source, path)
    return obj


def _validate(obj: Any, source: str, path: str) -> None:
    validate = getattr(obj, "validate", None)
    if validate is None:
        return
    try:
        validate()
    except ValueError as exc:
        message = str(exc)
        raise ConfigError(f"{source}: {path + ': ' if path and not message.startswith(path) else ''}{message}") from None


def _join(path: str, name: Any) -> str:
    return f"{path}.{name}" if path else str(name)


def _convert(tp: Any, value: Any, source: str, path: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        options = typing.get_args(tp)
        if value is None:
            if type(None) in options:
                return None
            raise ConfigError(f"{source}: {path} must not be null")
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _convert(option, value, source, path)
            except ConfigError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        raise ConfigError(f"{source}: {path}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")
    if tp is Any:
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, {} if value is None else value, source=source, path=path)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{source}: {path}: expected a list, got {type(value).__name__}")
        (item_tp,) = typing.get_args(tp) or (Any,)
        return [_convert(item_tp, v, source, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{source}: {path}: expected a mapping, got {type(value).__name__}")
        key_tp, val_tp = typing.get_args(tp) or (Any, Any)
        return {str(k): _convert(val_tp, v, source, _join(path, k)) for k, v in value.items()}
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp in (str, bool):
        if isinstance(value, tp):
            return value
    else:  # pragma: no cover - a field type this loader does not know is a programming error
        raise TypeError(f"unsupported config field type {tp!r} at {path}")
    raise ConfigError(f"{source}: {path}: expected {_type_name(tp)}, got {type(value).__name__} {value!r}")


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) in (Union, types.UnionType):
        return " or ".join(_type_name(t) for t in typing.get_args(tp))
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b.c=VALUE`` (VALUE parsed as YAML) -> (["a", "b", "c"], value)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set expects KEY=VALUE (dotted key), got {text!r}")
    return key.strip().split("."), yaml.safe_load(raw) if raw.strip() else None


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Apply ``--set`` overrides to raw config data (a copy)."""
    import copy

    data = copy.deepcopy(data)
    for text in overrides:
        keys, value = parse_override(text)
        node = data
        for key in keys[:-1]:
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            if not isinstance(child, dict):
                raise ConfigError(f"--set {text!r}: {key!r} is not a mapping")
            node = child
        node[keys[-1]] = value
    return data


def read_yaml(path: str | os.PathLike) -> dict:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{line}: invalid YAML: {getattr(exc, 'problem', exc)}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the config must be a mapping, got {type(data).__name__}")
    return data


def load_run_config(cls: type, path: str | os.PathLike, overrides: list[str] | None = None) -> Any:
    """Load and check a run config from YAML (``overrides`` are ``--set key=value`` strings)."""
    overrides = overrides or []
    data = apply_overrides(read_yaml(path), overrides)
    try:
        config = from_dict(cls, data, source=str(path))
        check_trl_fields(config, source=str(path))
    except ConfigError as exc:
        raise ConfigError(_blame_overrides(str(exc), overrides)) from None
    return config


def _blame_overrides(message: str, overrides: list[str]) -> str:
    """Say so when the field an error names was set by ``--set``, not by the file the message names."""
    head = re.split(r"; known fields| \(did you mean", message, maxsplit=1)[0]
    culprits = [text for text in overrides
                if re.search(rf"(?<![\w.]){re.escape('.'.join(parse_override(text)[0]))}(?![\w])", head)]
    return f"{message} (set on the command line: --set {', --set '.join(culprits)})" if culprits else message


def check_trl_fields(config: Any, source: str = "<config>") -> None:
    """Every ``trl.*`` key must be a field of TRL's config class; ours are reserved."""
    import trl

    trl_cls = getattr(trl, config.trl_config_name)
    known = {f.name for f in dataclasses.fields(trl_cls) if f.init}
    for key in config.trl:
        if key in _RESERVED_TRL_FIELDS:
            raise ConfigError(f"{source}: trl.{key} is set by our config; use the top-level {key!r} instead")
        if key not in known:
            import difflib

            close = difflib.get_close_matches(key, sorted(known), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ConfigError(f"{source}: trl.{key} is not a field of trl.{config.trl_config_name}{hint}")


def to_plain(config: Any) -> Any:
    """A config as plain data (for writing the resolved copy into the run directory)."""
    return dataclasses.asdict(config)
