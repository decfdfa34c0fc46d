"""The ``grape`` selector plugin: library call (``select``) and ``cf-select grape``.

Flow: load the pool (``selection.io``) -> score every candidate in resumable
shards (``scoring``) -> rank per instruction and keep the top k (``select``)
-> write the selected rows (each with its ``formatted`` record: the exact
prompt and completion text that was scored and how it was tokenized, which SFT
and BIDS replay), every candidate's score and a summary (atomic JSON/JSONL).
"""

from __future__ import annotations

import argparse
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from cf_tasks.jsonl import write_json
from plugins.cliargs import add_dataclass_arguments, dataclass_from_args
from selection.base import Selection, Selector
from selection.grape.config import GrapeConfig
from selection.grape.prompting import format_candidate
from selection.grape.scoring import ScoreRun, load_tokenizer, process_info, score_pool
from selection.grape.select import rank
from selection.io import (Pool, add_pool_arguments, candidate_row, check_model_path, columns_from_args, load_pool,
                          write_rows)
from selection.tokenization import FORMATTED_FIELD

logger = logging.getLogger(__name__)

EXIT_INCOMPLETE = 3


@dataclass
class GrapeResult:
    """Everything a GRAPE run produced; ``ranked`` is None while scoring is incomplete."""

    pool: Pool
    config: GrapeConfig
    run: ScoreRun | None
    ranked: list[list[int]] | None
    tokenizer: Any = None

    @property
    def complete(self) -> bool:
        return self.ranked is not None

    def mean(self, i: int, j: int) -> float | None:
        if self.run is None or self.run.scores is None:
            return None
        return self.run.scores[i][j].mean

    def formatted(self, i: int, j: int) -> dict[str, Any]:
        """How candidate ``j`` of instruction ``i`` was scored: its exact prompt/completion text and format."""
        c = self.config
        entry = self.pool.entries[i]
        return format_candidate(self.tokenizer, entry.instruction, entry.responses[j], template=c.template,
                                chat_template=c.chat_template, bos=c.bos).to_record()

    def selected_rows(self) -> Iterator[dict[str, Any]]:
        assert self.ranked is not None
        for i, (entry, order) in enumerate(zip(self.pool.entries, self.ranked)):
            for r, j in enumerate(order):
                yield candidate_row(self.pool, entry, j, {"score": self.mean(i, j), "rank": r, "response_index": j,
                                                          FORMATTED_FIELD: self.formatted(i, j)})

    def summary(self) -> dict[str, Any]:
        """Counts of the run (the ``.summary.json`` next to the output): nothing dropped goes unreported."""
        assert self.ranked is not None
        counts = self.run.counts() if self.run is not None and self.run.complete else {}
        first = next((self.formatted(i, order[0]) for i, order in enumerate(self.ranked) if order), None)
        return {
            "pool": self.pool.source, "instructions": len(self.pool.entries), "candidates": self.pool.n_candidates,
            "selected": sum(len(order) for order in self.ranked),
            "instructions_without_selection": sum(not order for order in self.ranked),
            "mode": self.config.mode, "top_k": self.config.top_k_column or self.config.top_k,
            "overlength_policy": self.config.overlength, **counts,
            "format": None if first is None else first["format"],
        }

    def score_rows(self) -> Iterator[dict[str, Any]]:
        """One row per candidate: where it came from, its score and whether it was selected."""
        assert self.ranked is not None
        for i, (entry, order) in enumerate(zip(self.pool.entries, self.ranked)):
            position = {j: r for r, j in enumerate(order)}
            for j, response in enumerate(entry.responses):
                c = self.run.scores[i][j] if self.run is not None and self.run.scores is not None else None
                s = None if c is None else c.score
                yield {
                    "instruction_index": i, "response_index": j, "origin": entry.origins[j],
                    "response": response, "score": None if s is None else s.mean,
                    "logprob_sum": None if s is None else s.logprob_sum, "n_tokens": None if s is None else s.n_tokens,
                    "skipped": c is not None and s is None, "prompt_tokens_cut": 0 if c is None else c.prompt_cut,
                    "selected": j in position, "rank": position.get(j),
                }


class GrapeSelector(Selector):
    """GRAPE: keep each instruction's response(s) with the highest mean token log-prob under the target model."""

    name = "grape"
    config_cls = GrapeConfig

    # -- library ------------------------------------------------------------------------------
    def run(self, pool: Pool | str | os.PathLike, config: GrapeConfig, *, work_dir: str | os.PathLike | None = None,
            scorer: Any = None, tokenizer: Any = None) -> GrapeResult:
        if not isinstance(pool, Pool):
            pool = load_pool(pool)
        if config.model is not None:
            tokenizer = tokenizer or load_tokenizer(config)
        elif config.chat_template:
            raise ValueError("--chat-template needs --model (its tokenizer renders the chat template)")
        needs_scores = config.mode != "random" or config.model is not None
        run = score_pool(pool, config, work_dir=work_dir, scorer=scorer, tokenizer=tokenizer) if needs_scores else None
        if run is not None and not run.complete:
            return GrapeResult(pool, config, run, None, tokenizer)
        ranked = []
        for i, entry in enumerate(pool.entries):
            means = [s.mean for s in run.scores[i]] if run is not None and run.scores is not None else None
            try:
                k = config.k_for(entry.row, len(entry.responses))
            except ValueError as exc:
                raise ValueError(f"{entry.origins[0]}: {exc}") from None
            ranked.append(rank(means, config.mode, n=len(entry.responses), seed=config.seed, key=entry.key)[:k])
        return GrapeResult(pool, config, run, ranked, tokenizer)

    def select(self, pool: Pool | str | os.PathLike, config: GrapeConfig, **kwargs: Any) -> Selection:
        """Indices into the pool's flat candidate list (``Pool.flat_index``), instruction by instruction."""
        result = self.run(pool, config, **kwargs)
        diagnostics: dict[str, Any] = {"complete": result.complete, "mode": config.mode}
        if result.run is not None:
            diagnostics.update(shards_total=result.run.shards_total, shards_computed=result.run.shards_computed,
                               shards_reused=result.run.shards_reused)
        if not result.complete:
            return Selection([], [], diagnostics)
        offsets, total = [], 0
        for e in result.pool.entries:
            offsets.append(total)
            total += len(e.responses)
        indices, scores = [], []
        for i, order in enumerate(result.ranked or []):
            for j in order:
                indices.append(offsets[i] + j)
                scores.append(result.mean(i, j))
        return Selection(indices, scores if result.run is not None else None, diagnostics)

    # -- command line -------------------------------------------------------------------------
    def add_cli_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--data", required=True, help="candidate pool (JSONL/Parquet; list or pair layout)")
        parser.add_argument("-o", "--output", required=True, help="selected rows (JSONL, one per kept response)")
        parser.add_argument("--scores-output", default=None,
                            help="every candidate's score (default: OUTPUT with .scores.jsonl)")
        add_pool_arguments(parser)
        group = parser.add_argument_group("GRAPE")
        add_dataclass_arguments(group, GrapeConfig)

    def run_cli(self, args: argparse.Namespace) -> int:
        template = args.template.replace("\\n", "\n").replace("\\t", "\t")  # shells pass "\n" literally
        config = dataclass_from_args(GrapeConfig, args, template=template)
        if config.model is not None:
            check_model_path(config.model)
        output = Path(args.output)
        work_dir = Path(config.work_dir) if config.work_dir else output.with_name(output.name + ".work")
        pool = load_pool(args.data, columns_from_args(args))
        logger.info("pool %s: %d instructions, %d candidates (%s layout)", args.data, len(pool.entries),
                    pool.n_candidates, pool.layout)
        result = self.run(pool, config, work_dir=work_dir)
        if not process_info(config).is_main:
            return 0
        if not result.complete:
            assert result.run is not None
            done = result.run.shards_reused + len(result.run.shards_computed)
            logger.warning("stopped after %d of %d shard(s) (--max-shards); rerun the same command to continue",
                           done, result.run.shards_total)
            return EXIT_INCOMPLETE
        scores_path = Path(args.scores_output) if args.scores_output else default_scores_path(output)
        n = write_rows(output, result.selected_rows())
        write_rows(scores_path, result.score_rows())
        summary = result.summary()
        write_json(default_scores_path(output, ".summary.json"), summary)
        logger.info("wrote %d selected response(s) to %s and all scores to %s", n, output, scores_path)
        if summary.get("instructions_without_selection"):
            logger.warning("%d instruction(s) have no selected response (every candidate skipped as over-length)",
                           summary["instructions_without_selection"])
        return 0


def default_scores_path(output: Path, suffix: str = ".scores.jsonl") -> Path:
    name = output.name[: -len(".jsonl")] if output.name.endswith(".jsonl") else output.name
    return output.with_name(name + suffix)


SELECTOR = GrapeSelector()
