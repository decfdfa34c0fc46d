"""``cf-train``: one subcommand per trainer plugin, plus ``collect`` and ``evaluate``.

    cf-train grpo --config configs/grpo_tiny_cpu.yaml [--set trl.max_steps=10 ...]
    cf-train sft  --config configs/sft_paper_qwen2.5_7b.yaml
    cf-train collect --samples out/samples_*.jsonl --out traces.jsonl
    cf-train collect --model PATH --family if_else --level medium --n 200 --out traces.jsonl
    cf-train evaluate --model runs/x/final --baseline Qwen/Qwen2.5-7B-Instruct --out runs/x/eval

Multi-GPU: ``accelerate launch --config_file configs/accelerate/multi_gpu.yaml -m training.cli grpo --config ...``.
Logging is configured here and nowhere else.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

from plugins import PLUGIN_ERRORS

logger = logging.getLogger("training.cli")

BUILTIN_COMMANDS = ("collect", "evaluate")


def _add_trainer_commands(sub: argparse._SubParsersAction) -> None:
    from plugins.registry import TRAINERS

    for name in TRAINERS.names():
        if name in BUILTIN_COMMANDS:
            logger.warning("trainer plugin %r is shadowed by the built-in command of that name", name)
            continue
        spec = TRAINERS.specs().get(name)
        p = sub.add_parser(name, help=f"train with the {name!r} trainer plugin"
                           + (f" ({spec.value})" if spec else ""))
        p.add_argument("--config", required=True, help="run config YAML (see training/configs/)")
        p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config field, dotted (e.g. trl.max_steps=10, data.n=64); repeatable")
        p.add_argument("--dry-run", action="store_true", help="load and check the config, print it, do not train")
        p.set_defaults(func=_run_trainer, trainer=name)


def _run_trainer(args: argparse.Namespace) -> int:
    from plugins.registry import TRAINERS

    from training.config import load_run_config, to_plain

    trainer = TRAINERS.get(args.trainer)
    if hasattr(trainer, "load_config"):
        config = trainer.load_config(args.config, args.overrides)
    else:
        config = load_run_config(trainer.config_cls, args.config, args.overrides)
    if args.dry_run:
        import yaml

        yaml.safe_dump(to_plain(config), sys.stdout, sort_keys=False)
        return 0
    run_dir = trainer.train(config)
    print(run_dir)
    return 0


def _add_collect(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("collect", help="keep only correct traces (rejection sampling) as an SFT file")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--samples", nargs="+", help="lm-eval --log_samples JSONL files")
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
    g.add_argument("--samples-per-prompt", type=int, default=4)
    g.add_argument("--temperature", type=float, default=0.7)
    g.add_argument("--top-p", type=float, default=0.95)
    g.add_argument("--max-new-tokens", type=int, default=1024)
    g.add_argument("--batch-size", type=int, default=4)
    g.add_argument("--no-chat", action="store_true", help="feed the raw prompt (no chat template)")
    p.set_defaults(func=_run_collect)


def _run_collect(args: argparse.Namespace) -> int:
    from training import collect

    stats = collect.CollectStats()
    if args.samples:
        candidates = collect.candidates_from_samples(args.samples, field_name=args.field)
    else:
        if bool(args.family) == bool(args.items):
            raise SystemExit("cf-train collect: with --model give exactly one of --family or --items")
        items = (collect.item_file(args.items) if args.items
                 else collect.family_items(args.family, args.level, args.n, args.seed, args.variant))
        spec = collect.GenerationSpec(samples_per_prompt=args.samples_per_prompt, temperature=args.temperature,
                                      top_p=args.top_p, max_new_tokens=args.max_new_tokens,
                                      batch_size=args.batch_size, chat=not args.no_chat, seed=args.seed)
        candidates = collect.candidates_from_model(args.model, items, spec)
    rows = collect.filter_traces(candidates, min_f1=args.min_f1, max_per_prompt=args.max_per_prompt, stats=stats)
    out = collect.write_collection(rows, args.out, stats)
    print(f"{out}: kept {stats.kept} of {stats.responses} responses ({stats.prompts} prompts)")
    return 0


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="lm-eval a checkpoint (and a baseline) on executable_cf; before/after table")
    p.add_argument("--model", required=True, help="trained model directory (e.g. RUN/final)")
    p.add_argument("--baseline", default=None, help="starting model, for the 'before' column")
    p.add_argument("-o", "--output", "--out", dest="out", required=True,
                   help="output folder (before.json, after.json, table.md, samples)")
    p.add_argument("--tasks", nargs="+", default=["executable_cf"], help="lm-eval task or group names")
    p.add_argument("--limit", type=float, default=None, help="items per task (int) or fraction")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-gen-toks", type=int, default=None)
    p.add_argument("--no-chat-template", action="store_true")
    p.add_argument("--include-path", default=None, help="extra task YAML folder")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    from training.config import EvalSpec
    from training.evaluate import evaluate_before_after

    limit = None if args.limit is None else (int(args.limit) if float(args.limit).is_integer() else args.limit)
    spec = EvalSpec(enabled=True, tasks=args.tasks, limit=limit, batch_size=args.batch_size,
                    max_gen_toks=args.max_gen_toks, apply_chat_template=not args.no_chat_template,
                    baseline=args.baseline is not None, include_path=args.include_path, seed=args.seed)
    spec.validate()
    out = evaluate_before_after(args.baseline, args.model, spec, args.out)
    print((Path(out) / "table.md").read_text(encoding="utf-8"), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cf-train", description="Train on executable counterfactuals (TRL).")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_trainer_commands(sub)
    _add_collect(sub)
    _add_evaluate(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return args.func(args)
    except (ValueError, OSError, *PLUGIN_ERRORS) as exc:  # config/data errors name their file and field
        if args.verbose:
            raise
        print(f"cf-train: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # ``accelerate launch -m training.cli ...``
    sys.exit(main())
