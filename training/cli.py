"""``cf-train``: one subcommand per trainer plugin, plus ``collect``, ``evaluate`` and ``configs``.

    cf-train configs [--list | --copy DIR]             # the shipped run configs (names work as --config)
    cf-train grpo --config grpo_tiny_cpu.yaml [--set trl.max_steps=10 ...]
    cf-train grpo --config grpo_paper_qwen2.5_7b.yaml --dry-run --accelerate-config accelerate/deepspeed_zero3.yaml
    cf-train sft  --config sft_paper_qwen2.5_7b.yaml
    cf-train collect --samples 'out/samples_*.jsonl' --out traces.jsonl
    cf-train collect --model PATH --family if_else --level medium --n 200 --out traces.jsonl
    cf-train evaluate --model runs/x/final --baseline Qwen/Qwen2.5-7B-Instruct --out runs/x/eval
    cf-train evaluate --run-dir runs/x                 # (re)run a finished run's post-training evaluation

Multi-GPU: ``accelerate launch --config_file $(cf-train configs)/accelerate/deepspeed_zero3.yaml -m training.cli
grpo --config ...``. Logging is configured here and nowhere else.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path
from typing import Any, Sequence

from plugins import PLUGIN_ERRORS
from plugins.cliargs import add_dataclass_arguments, dataclass_from_args
from training.collect import GenerationSpec
from training.config import EvalSpec

logger = logging.getLogger("training.cli")

BUILTIN_COMMANDS = ("collect", "evaluate", "configs", "merge-lora")


def configs_dir() -> Path:
    """The folder of the shipped run configs (installed with the package)."""
    return Path(__file__).resolve().parent / "configs"


def resolve_config_path(value: str) -> Path:
    """A config file path, or the name of a shipped config (``grpo_tiny_cpu.yaml``, ``accelerate/multi_gpu.yaml``)."""
    path = Path(value)
    if path.is_file():
        return path
    for candidate in (configs_dir() / value, configs_dir() / f"{value}.yaml"):
        if candidate.is_file():
            return candidate
    shipped = ", ".join(sorted(str(p.relative_to(configs_dir())) for p in configs_dir().rglob("*.yaml")))
    raise FileNotFoundError(f"config not found: {value} (not a file, nor a shipped config: {shipped})")


def config_sections(cls: type) -> str:
    """The top-level sections of a run config and their fields, for ``--help``."""
    import textwrap
    import typing

    hints = typing.get_type_hints(cls)
    lines = ["config sections (YAML keys; docs/training.md):"]
    for f in dataclasses.fields(cls):
        help_text = f.metadata.get("help", "")
        inner = [a for a in typing.get_args(hints[f.name]) if dataclasses.is_dataclass(a)] or (
            [hints[f.name]] if dataclasses.is_dataclass(hints[f.name]) else [])
        if inner:
            help_text += " Fields: " + ", ".join(g.name for g in dataclasses.fields(inner[0])) + "."
        lines.append(textwrap.fill(help_text, width=110, initial_indent=f"  {f.name:<24} ",
                                   subsequent_indent=" " * 27))
    return "\n".join(lines)


def _add_trainer_commands(sub: argparse._SubParsersAction) -> None:
    from plugins.registry import TRAINERS

    for name in TRAINERS.names():
        if name in BUILTIN_COMMANDS:
            logger.warning("trainer plugin %r is shadowed by the built-in command of that name", name)
            continue
        spec = TRAINERS.specs().get(name)
        try:
            config_cls = getattr(TRAINERS.get(name), "config_cls", None)
        except PLUGIN_ERRORS:  # a broken plugin still gets its subcommand; running it reports the error
            config_cls = None
        p = sub.add_parser(name, help=f"train with the {name!r} trainer plugin" + (f" ({spec.value})" if spec else ""),
                           epilog=config_sections(config_cls) if dataclasses.is_dataclass(config_cls) else None,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("--config", required=True,
                       help="run config YAML, or the name of a shipped one (`cf-train configs` lists them)")
        p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config field, dotted (e.g. trl.max_steps=10, data.n=64); repeatable")
        p.add_argument("--dry-run", action="store_true",
                       help="check the config, print it and a per-GPU memory estimate; do not train")
        g = p.add_argument_group("memory estimate (--dry-run)")
        g.add_argument("--accelerate-config", default=None,
                       help="the accelerate config the run will use (a file or a shipped name such as "
                            "accelerate/deepspeed_zero3.yaml): strategy and number of GPUs")
        g.add_argument("--num-gpus", type=int, default=None, help="GPUs (processes); overrides the accelerate config")
        g.add_argument("--gpu-memory-gib", type=float, default=80.0,
                       help="memory of one card; the estimate warns above it (default: %(default)s, an 80 GB A100/H100)")
        p.set_defaults(func=_run_trainer, trainer=name)


def _run_trainer(args: argparse.Namespace) -> int:
    from plugins.registry import TRAINERS
    from selection.io import check_model_path

    from training.config import load_run_config, to_plain

    trainer = TRAINERS.get(args.trainer)
    path = resolve_config_path(args.config)
    if hasattr(trainer, "load_config"):
        config = trainer.load_config(path, args.overrides)
    else:
        config = load_run_config(trainer.config_cls, path, args.overrides)
    if isinstance(getattr(config, "model", None), str):
        check_model_path(config.model)
    if args.dry_run:
        import yaml

        yaml.safe_dump(to_plain(config), sys.stdout, sort_keys=False)
        print_memory_estimate(args, config)
        return 0
    run_dir = trainer.train(config)
    print(run_dir)
    return 0


def print_memory_estimate(args: argparse.Namespace, config: Any) -> None:
    """The ``--dry-run`` per-GPU memory estimate (training.memory); skipped with a reason when it cannot be made."""
    from training import memory

    if args.accelerate_config:
        dist = memory.distribution_from_accelerate_config(resolve_config_path(args.accelerate_config))
    else:
        dist = memory.distribution_from_env() or memory.Distribution()
    if args.num_gpus is not None:
        dist = memory.Distribution(dist.strategy, args.num_gpus, dist.source + f", --num-gpus {args.num_gpus}")
    if getattr(config, "trl_config_name", None) not in ("GRPOConfig", "SFTConfig") or not hasattr(config, "lora"):
        return  # a plugin's own config: no estimate
    settings = memory.trl_settings(config)
    trainer = "grpo" if config.trl_config_name == "GRPOConfig" else "sft"
    try:
        shape = memory.model_shape(config.model, config.lora)
    except (OSError, ValueError, ImportError) as exc:
        print(f"memory estimate unavailable: cannot read the config of {config.model}: {exc}")
        return
    prompt_tokens = _longest_prompt_tokens(config) if trainer == "grpo" else 0
    estimate = memory.estimate(shape, dist, settings, lora=config.lora is not None, trainer=trainer,
                               card_gib=args.gpu_memory_gib, prompt_tokens=prompt_tokens)
    print()
    print(estimate.render(), end="")


def _longest_prompt_tokens(config: Any) -> int:
    """An upper bound on the GRPO prompt length: UTF-8 bytes of a sample of the run's prompts (>= tokens for byte
    BPEs), plus 64 for a chat template's framing."""
    from training.data import prompt_rows

    sample = dataclasses.replace(config.data, n=min(config.data.n, 64), jsonl=config.data.jsonl[:1], decontaminate=False)
    try:
        rows = prompt_rows(sample)
    except (ValueError, OSError):
        return 0
    texts = [r["prompt"] if isinstance(r["prompt"], str) else " ".join(m["content"] for m in r["prompt"]) for r in rows]
    return max(len(t.encode("utf-8")) for t in texts) + 64


def _add_collect(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("collect", help="keep only correct traces (rejection sampling) as an SFT file")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--samples", nargs="+", help="lm-eval --log_samples JSONL files or glob patterns (quoted "
                                                  "patterns are expanded here; one that matches nothing is an error)")
    src.add_argument("--model", help="sample traces from this model (transformers) on --family or --items")
    p.add_argument("-o", "--output", "--out", dest="out", required=True,
                   help="output JSONL (prompt, completion, answer, id, family, ...)")
    p.add_argument("--field", default="resps", choices=["resps", "filtered_resps"],
                   help="which lm-eval response field to score and keep (default: the raw responses)")
    p.add_argument("--min-f1", type=float, default=None,
                   help="keep traces with set F1 >= this instead of requiring exact match")
    p.add_argument("--max-per-prompt", type=int, default=None, help="keep at most this many traces per prompt")
    g = p.add_argument_group("sampling (with --model)")
    g.add_argument("--family", help="family plugin to generate prompts from")
    g.add_argument("--level", default=None, help="family level (family default if omitted)")
    g.add_argument("--variant", default="counterfactual", choices=["counterfactual", "interventional"])
    g.add_argument("--n", type=int, default=100, help="prompts to generate from the family")
    g.add_argument("--seed", type=int, default=0, help="generation and sampling seed")
    g.add_argument("--items", help="item JSONL (prompt, answer) instead of --family")
    add_dataclass_arguments(g, GenerationSpec, skip=("seed",))  # --chat/--no-chat: the raw prompt, no template
    p.set_defaults(func=_run_collect)


def _run_collect(args: argparse.Namespace) -> int:
    from training import collect

    from selection.io import check_model_path

    stats = collect.CollectStats()
    if args.samples:
        candidates = collect.candidates_from_samples(collect.expand_paths(args.samples, "--samples"),
                                                     field_name=args.field)
    else:
        if bool(args.family) == bool(args.items):
            raise SystemExit("cf-train collect: with --model give exactly one of --family or --items")
        check_model_path(args.model)
        items = (collect.item_file(args.items) if args.items
                 else collect.family_items(args.family, args.level, args.n, args.seed, args.variant))
        spec = dataclass_from_args(collect.GenerationSpec, args)
        candidates = collect.candidates_from_model(args.model, items, spec)
    rows = collect.filter_traces(candidates, min_f1=args.min_f1, max_per_prompt=args.max_per_prompt, stats=stats)
    if not rows:
        rule = "exact match" if args.min_f1 is None else f"set F1 >= {args.min_f1}"
        print(f"cf-train collect: error: kept 0 of {stats.responses} responses ({stats.prompts} prompts): none is "
              f"correct by {rule}; nothing written to {args.out}", file=sys.stderr)
        return 1
    out = collect.write_collection(rows, args.out, stats)
    print(f"{out}: kept {stats.kept} of {stats.responses} responses ({stats.prompts} prompts)")
    return 0


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="lm-eval a checkpoint (and a baseline) on executable_cf; before/after table")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--model", help="trained model directory (e.g. RUN/final)")
    src.add_argument("--run-dir", help="a finished training run: evaluate it as its config's `evaluate` section says, "
                                       "into RUN_DIR/eval (what training runs in a fresh process)")
    p.add_argument("--baseline", default=None, help="starting model, for the 'before' column")
    p.add_argument("-o", "--output", "--out", dest="out", default=None,
                   help="output folder (before.json, after.json, table.md, samples); required with --model")
    add_dataclass_arguments(p, EvalSpec, skip=("enabled", "baseline", "apply_chat_template"))
    p.add_argument("--no-chat-template", action="store_true", help="feed raw prompts (no chat template)")
    p.set_defaults(func=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    from selection.io import check_model_path

    from training.evaluate import evaluate_before_after, evaluate_run

    if args.run_dir:
        out = evaluate_run(args.run_dir)
        if out is not None:
            print((Path(out) / "table.md").read_text(encoding="utf-8"), end="")
        return 0
    if args.out is None:
        raise SystemExit("cf-train evaluate: --out is required with --model")
    for name in (args.model, args.baseline):
        if name is not None:
            check_model_path(name)
    spec = dataclass_from_args(EvalSpec, args, enabled=True, apply_chat_template=not args.no_chat_template,
                               baseline=args.baseline is not None)
    spec.validate()
    out = evaluate_before_after(args.baseline, args.model, spec, args.out)
    if out is not None:  # None on the non-zero ranks of an `accelerate launch` evaluation
        print((Path(out) / "table.md").read_text(encoding="utf-8"), end="")
    return 0


def _add_merge_lora(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("merge-lora", help="merge a saved LoRA adapter into its base model (a plain checkpoint)")
    p.add_argument("--base", required=True, help="the base model (path or hub id) the adapter was trained on")
    p.add_argument("--adapter", required=True, help="the adapter folder (e.g. RUN/final-adapter or a checkpoint)")
    p.add_argument("-o", "--out", required=True, help="output folder for the merged model")
    p.set_defaults(func=_run_merge_lora)


def _run_merge_lora(args: argparse.Namespace) -> int:
    from selection.io import check_model_path

    from training.runtime import merge_adapter

    check_model_path(args.base, what="base model")
    if not (Path(args.adapter) / "adapter_config.json").is_file():
        raise FileNotFoundError(f"{args.adapter}: no adapter_config.json (not a LoRA adapter folder)")
    merge_adapter(args.base, Path(args.adapter), Path(args.out))
    print(args.out)
    return 0


def _add_configs(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("configs", help="print the folder of the shipped run configs (--list: their names; "
                                       "--copy DIR: copy them)")
    p.add_argument("--list", action="store_true", help="print the shipped config names (usable as --config)")
    p.add_argument("--copy", metavar="DIR", default=None, help="copy every shipped config into DIR (kept layout)")
    p.add_argument("--force", action="store_true", help="with --copy: overwrite files that exist")
    p.set_defaults(func=_run_configs)


def _run_configs(args: argparse.Namespace) -> int:
    import shutil

    root = configs_dir()
    files = sorted(p.relative_to(root) for p in root.rglob("*.yaml"))
    if args.copy is None:
        print("\n".join(str(rel) for rel in files) if args.list else root)
        return 0
    dest = Path(args.copy)
    clashes = [str(rel) for rel in files if (dest / rel).exists()]
    if clashes and not args.force:
        raise FileExistsError(f"{dest}: would overwrite {', '.join(clashes)} (pass --force)")
    for rel in files:
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(root / rel, dest / rel)
    print(f"copied {len(files)} configs to {dest}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cf-train", description="Train on executable counterfactuals (TRL).")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_trainer_commands(sub)
    _add_collect(sub)
    _add_evaluate(sub)
    _add_configs(sub)
    _add_merge_lora(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from training.launch import LaunchError

    try:
        return args.func(args)
    except (ValueError, OSError, LaunchError, *PLUGIN_ERRORS) as exc:  # config/data errors name file and field
        if args.verbose:
            raise
        print(f"cf-train: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # ``accelerate launch -m training.cli ...``
    sys.exit(main())
