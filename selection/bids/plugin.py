"""The ``bids`` selector plugin (entry point ``selection.bids.plugin:SELECTOR``)."""

from __future__ import annotations

import argparse
import dataclasses
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

from plugins.cliargs import add_dataclass_arguments, dataclass_from_args
from selection.base import Selection, Selector
from selection.bids.config import SUBCONFIGS, BidsConfig


class BidsSelector(Selector):
    """BIDS: balanced influence-based selection (z-scored LESS influence + greedy), and its baselines.

    Runs the LESS pipeline (LoRA warm-up, Adam-preconditioned projected gradients, influence matrix)
    from a training pool and per-task validation sets, or selects from an existing matrix:
    cf-select bids --influence A.npy --val-tasks tasks.json --budget 0.15 --output selected.json
    """

    name = "bids"
    config_cls = BidsConfig

    def select(self, pool: Any, config: BidsConfig) -> Selection:
        """Select from ``pool``, one of:

        - an influence matrix (``np.ndarray``, train x validation): only the
          selection runs; ``config.val_tasks`` names the JSON list of column tasks
          (or call :func:`selection.bids.pipeline.select_from_matrix` directly);
        - training rows: a list of dicts, a pool file path, or a
          :class:`selection.io.Pool` (one row per candidate, as ``candidate_row``
          writes it): the whole pipeline runs with ``config`` (validation sets,
          model and work folder from it; ``config.train`` is not read). Under a
          multi-process launch every rank calls this; rank 0 returns the
          selection, the other ranks an empty one.
        """
        from selection.bids.pipeline import load_tasks, run_pipeline, select_from_matrix

        if not isinstance(config, BidsConfig):
            raise ValueError(f"the bids selector needs a BidsConfig, got {type(config).__name__}")
        if isinstance(pool, np.ndarray):
            if config.val_tasks is None:
                raise ValueError("val_tasks: selecting from a matrix needs the task of each column "
                                 "(BidsConfig.val_tasks, or call selection.bids.pipeline.select_from_matrix)")
            return select_from_matrix(pool, load_tasks(config.val_tasks), config.select)
        rows, source = _training_rows(pool)
        config = dataclasses.replace(config, train=source)
        selection = run_pipeline(config, data=_data_with_rows(config, rows))
        from selection.distributed import init_ranks

        ranks = init_ranks(config.features.device)
        if not ranks.is_main:  # under a multi-process launch the selection is rank 0's
            return Selection([], None, {"rank": ranks.rank, "world_size": ranks.world})
        if selection is None:
            raise ValueError("stages: the select stage did not run, so there is no selection to return")
        return selection

    def add_cli_arguments(self, parser: argparse.ArgumentParser) -> None:
        add_dataclass_arguments(parser, BidsConfig, absent_keeps_default=True)
        titles = {"data": "data encoding", "warmup": "warm-up (LoRA)", "features": "gradient features",
                  "select": "selection"}
        for name, cls in SUBCONFIGS.items():
            add_dataclass_arguments(parser.add_argument_group(titles[name]), cls, absent_keeps_default=True)
        parser.add_argument("--no-progress", dest="progress", action="store_false", help="hide progress bars")

    def run_cli(self, args: argparse.Namespace) -> int:
        from selection.bids.diagnostics import format_diagnostics
        from selection.bids.pipeline import load_matrix, load_tasks, run_pipeline, select_from_matrix, write_selection

        config = dataclass_from_args(BidsConfig, args)  # one flat namespace fills every section
        config.validate()
        progress = getattr(args, "progress", True)
        if config.dry_run:
            return _dry_run(config)
        if config.influence is not None:
            A = load_matrix(config.influence)
            rows = None
            if config.selected_data and not config.train:
                raise ValueError("selected_data: writing the selected rows needs --train (the pool file)")
            if config.train:
                from selection.io import iter_rows

                rows = [row for _, row in iter_rows(config.train)]
                if len(rows) != A.shape[0]:
                    raise ValueError(f"{config.train}: {len(rows)} rows but the matrix has {A.shape[0]}")
            selection = select_from_matrix(A, load_tasks(config.val_tasks), config.select, progress=progress)
            selection.diagnostics["influence"] = str(config.influence)
            if rows is not None:
                from selection.bids.pipeline import default_rows_path
                from selection.io import write_rows

                rows_path = Path(config.selected_data) if config.selected_data else default_rows_path(config.output)
                selection.diagnostics["selected_data"] = str(rows_path)
                write_rows(rows_path, (rows[i] for i in selection.indices))
            png = write_selection(selection, config.output, plot=config.plot)
        else:
            from selection.distributed import init_ranks

            ranks = init_ranks(config.features.device)
            selection = run_pipeline(config, progress=progress)
            if not ranks.is_main:  # rank 0 reports for the job
                return 0
            if selection is None:
                print(f"stages {', '.join(config.stages)} done in {config.work_dir}")
                return 0
            png = Path(config.output).with_suffix(".png") if config.plot else None
        info = selection.diagnostics
        print(f"{info['method']} ({'z-scored' if info['normalized'] else 'raw'} matrix): selected {info['budget']} "
              f"of {info['pool_size']} rows -> {config.output}")
        print(format_diagnostics(info["diagnostics"]))
        if "selected_data" in info:
            print(f"selected rows: {info['selected_data']}")
        if png is not None:
            print(f"plot: {png}")
        return 0


def _dry_run(config: BidsConfig) -> int:
    """Print the per-GPU memory estimate of the warm-up and the feature stage; warn above the card size."""
    import sys

    from selection.bids.memory import dry_run_report

    text, warnings = dry_run_report(config)
    print(text)
    for line in warnings:
        print(line, file=sys.stderr)
    return 0


def _training_rows(pool: Any) -> tuple[list[dict], str]:
    from selection.io import Pool, candidate_row, iter_rows

    if isinstance(pool, (str, PathLike)):
        return [row for _, row in iter_rows(pool)], str(pool)
    if isinstance(pool, Pool):
        return [candidate_row(pool, e, j) for e in pool.entries for j in range(len(e.responses))], pool.source
    rows = list(pool)
    if not rows or not all(isinstance(r, dict) for r in rows):
        raise ValueError("pool must be an influence matrix, a pool file, a Pool or a non-empty list of rows (dicts)")
    return rows, "<memory>"


def _data_with_rows(config: BidsConfig, rows: list[dict]):
    """Validation sets from ``config.val``; training rows given in memory."""
    from selection.bids.pipeline import PipelineData, load_validation

    val_rows, val_tasks = load_validation(config)
    return PipelineData(rows, val_rows, val_tasks)


SELECTOR = BidsSelector()
