"""``cf-report RUN_DIR... -o OUT``: a report over lm-eval outputs of one or more models.

A thin layer over :mod:`cf_tasks.report.builder`; logging is configured here only.
"""

from __future__ import annotations

import argparse
import logging
import sys

log = logging.getLogger("cf_tasks.report.cli")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cf-report",
        description="Tables, figures, failure-mode tags and judge scores from lm-eval outputs "
        "(lm_eval ... --output_path DIR --log_samples) of the executable_cf tasks.",
    )
    p.add_argument("runs", nargs="+", metavar="RUN_DIR",
                   help="lm-eval --output_path folder(s) or results/samples files; LABEL=PATH names the model")
    p.add_argument("-o", "--output", required=True, help="report folder to write")
    p.add_argument("--title", default="Executable counterfactuals report", help="report title")
    p.add_argument("--tags", action="store_true", help="add heuristic failure-mode tags (no judge needed)")
    g = p.add_argument_group("judge (optional; scores planning and execution 1-5)")
    g.add_argument("--judge-model", help="lm-eval model name (hf, vllm, ...) or, with --judge-endpoint, the endpoint's model")
    g.add_argument("--judge-model-args", default="", help="lm-eval model_args for the judge, e.g. pretrained=Qwen/...")
    g.add_argument("--judge-endpoint", help="OpenAI-compatible base URL (e.g. http://localhost:8000/v1)")
    g.add_argument("--judge-api-key-env", default="OPENAI_API_KEY", help="environment variable holding the API key")
    g.add_argument("--judge-rubric", default="judge_v1", help="rubric version (packaged) or path to a rubric .md")
    g.add_argument("--judge-limit", type=int, default=None, help="judge at most N samples per run and task")
    g.add_argument("--judge-batch-size", type=int, default=16, help="prompts per judge call")
    g.add_argument("--judge-max-tokens", type=int, default=1024, help="judge generation budget")
    g.add_argument("--judge-device", default=None, help="device for lm-eval judge backends (e.g. cuda:0, cpu)")
    g.add_argument("--judge-chat-template", action="store_true", help="wrap judge prompts in the model's chat template")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return p


def make_judge(args: argparse.Namespace):
    from cf_tasks.report.judge import LmEvalJudge, OpenAIJudge

    if args.judge_endpoint:
        if not args.judge_model:
            raise ValueError("--judge-endpoint needs --judge-model (the endpoint's model name)")
        return OpenAIJudge(args.judge_endpoint, args.judge_model, api_key_env=args.judge_api_key_env,
                           max_tokens=args.judge_max_tokens)
    if args.judge_model:
        return LmEvalJudge(
            args.judge_model,
            args.judge_model_args,
            gen_kwargs={"until": [], "max_gen_toks": args.judge_max_tokens, "do_sample": False},
            batch_size=args.judge_batch_size,
            device=args.judge_device,
            chat_template=args.judge_chat_template,
        )
    return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    from cf_tasks.report.builder import ReportOptions, build_report
    from cf_tasks.report.judge import load_rubric
    from cf_tasks.report.loader import LmEvalOutputError, load_runs, parse_run_arg

    try:
        parsed = [parse_run_arg(a) for a in args.runs]
        runs = load_runs([p for _, p in parsed], [lab for lab, _ in parsed])
        judge = make_judge(args)
        if judge is not None:
            load_rubric(args.judge_rubric)  # fail before any judging on a bad rubric
        options = ReportOptions(tags=args.tags, judge=judge, rubric=args.judge_rubric, judge_limit=args.judge_limit,
                                judge_batch_size=args.judge_batch_size, title=args.title, progress=True)
        result = build_report(runs, args.output, options)
    except (LmEvalOutputError, ValueError) as exc:
        print(f"cf-report: error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {result.report_path} ({len(runs)} run(s), {len(result.sample_rows)} samples, "
          f"figures: {', '.join(sorted(result.figures)) or 'none'})")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
