"""The BIDS stages end to end: warm-up -> features -> matrix -> select.

Every stage reads and writes inside ``work_dir`` and skips what is already
there, so rerunning an interrupted command continues where it stopped:

```
work_dir/
  tasks.json                      task of each validation column
  warmup/epoch-{e}/               LoRA adapter + optimizer state (checkpoints.py)
  features/epoch-{e}/train/       shard-00000.npy ... (Adam-preconditioned, projected, normalised)
  features/epoch-{e}/val/         shard-00000.npy ... (plain gradients)
  influence.npy                   A (train x validation, float64), influence.progress.json
```

The selection alone (:func:`select_from_matrix`) needs only ``A`` and the
task of each column.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from cf_tasks.jsonl import write_json
from selection.base import Selection, parse_budget
from selection.bids.config import BidsConfig, SelectConfig
from selection.bids.greedy import check_matrix, select, task_index, zscore_columns

logger = logging.getLogger(__name__)


# -- selection on a matrix ----------------------------------------------------------------------

def select_from_matrix(A: np.ndarray, tasks: Sequence[str], config: SelectConfig, *,
                       progress: bool = False) -> Selection:
    """Run the configured method on ``A`` (train x validation); ``tasks[j]`` is column ``j``'s task."""
    config.validate()
    if A.ndim != 2 or A.shape[1] != len(tasks):
        raise ValueError(f"the influence matrix has shape {A.shape} but {len(tasks)} validation task label(s) "
                         "were given (one per column expected)")
    check_matrix(A)
    names, ids = task_index(tasks)
    normalize = config.resolved_normalize()
    M = zscore_columns(A) if normalize else np.asarray(A, dtype=np.float64)
    budget = parse_budget(config.budget, M.shape[0])
    result = select(M, budget, config.method, task_ids=ids, seed=config.seed, progress=progress)
    from selection.bids.diagnostics import compute_diagnostics

    diag = compute_diagnostics(M, result.indices, names, ids, method=config.method, normalized=normalize)
    scores = None if config.method == "random" else [float(s) for s in result.gains]
    info = {"method": config.method, "normalized": normalize, "budget": budget, "pool_size": int(M.shape[0]),
            "n_validation": int(M.shape[1]), "seed": config.seed, "diagnostics": diag}
    return Selection([int(i) for i in result.indices], scores, info)


def load_tasks(path: str | Path) -> list[str]:
    path = Path(path)
    try:
        tasks = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: invalid JSON: {exc.msg} (line {exc.lineno})") from None
    if not isinstance(tasks, list) or not all(isinstance(t, str) and t for t in tasks):
        raise ValueError(f"{path}: expected a JSON list with the (non-empty) task name of each validation column")
    return tasks


def load_matrix(path: str | Path) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"influence matrix not found: {path}")
    try:
        return np.load(path, mmap_mode="r")
    except ValueError as exc:
        if "pickled" in str(exc):  # numpy's message advises allow_pickle, which would run code from the file
            raise ValueError(f"{path}: not a numeric .npy array (not .npy at all, or pickled objects, which are "
                             "never loaded)") from None
        raise ValueError(f"{path}: not a .npy array: {exc}") from None


def write_selection(selection: Selection, output: str | Path, *, plot: bool = True) -> Path | None:
    """Write the selection JSON atomically (and the PNG next to it); returns the PNG path."""
    output = Path(output)
    write_json(output, selection.to_json())
    if not plot:
        return None
    from selection.bids.diagnostics import plot_diagnostics

    info = selection.diagnostics
    title = f"{info['method']} ({'z-scored' if info['normalized'] else 'raw'}), {info['budget']} of {info['pool_size']}"
    return plot_diagnostics(info["diagnostics"], output.with_suffix(".png"), title=title)


# -- the pipeline -------------------------------------------------------------------------------

@dataclasses.dataclass
class PipelineData:
    train_rows: list[dict[str, Any]]
    val_rows: list[dict[str, Any]]
    val_tasks: list[str]


def parse_val_specs(specs: Sequence[str]) -> list[tuple[str | None, Path]]:
    """``TASK=FILE`` or ``FILE`` (rows carry ``task_field``) -> ``[(task or None, path)]``."""
    out = []
    for spec in specs:
        task, sep, file = spec.partition("=")
        if sep and task and "/" not in task and not Path(spec).exists():
            out.append((task, Path(file)))
        else:
            out.append((None, Path(spec)))
    return out


def load_validation(config: BidsConfig) -> tuple[list[dict[str, Any]], list[str]]:
    """Validation rows in the order of ``--val`` (then file order) and the task of each."""
    from selection.io import iter_rows

    val_rows, val_tasks = [], []
    for task, path in parse_val_specs(config.val or []):
        for origin, row in iter_rows(path):
            name = task if task is not None else row.get(config.data.task_field)
            if not isinstance(name, str) or not name:
                raise ValueError(f"{origin}: missing task name: give the file as TASK=FILE or add a "
                                 f"{config.data.task_field!r} field")
            val_rows.append(row)
            val_tasks.append(name)
    if not val_rows:
        raise ValueError("val: no validation rows were loaded")
    return val_rows, val_tasks


def load_data(config: BidsConfig) -> PipelineData:
    from selection.io import iter_rows

    train = [row for _, row in iter_rows(config.train)]
    if not train:
        raise ValueError(f"{config.train}: the training pool is empty")
    val_rows, val_tasks = load_validation(config)
    return PipelineData(train, val_rows, val_tasks)


def run_pipeline(config: BidsConfig, *, progress: bool = True, data: PipelineData | None = None) -> Selection | None:
    """Run the configured stages; returns the selection when the ``select`` stage ran."""
    import torch

    from selection.bids.checkpoints import checkpoint_weights, list_checkpoints, load_adam_moments
    from selection.bids.data import encode_rows, pad_token_id
    from selection.distributed import init_ranks, rank_device
    from selection.bids.features import GradientFeaturizer, compute_feature_shards, encodings_fingerprint, load_shards
    from selection.bids.gradients import PerExampleGradients
    from selection.bids.influence import build_influence_matrix
    from selection.bids.modeling import attach_adapter, load_adapter_weights, load_base_model, load_tokenizer, \
        resolve_device
    from selection.bids.projection import make_projector
    from selection.bids.warmup import run_warmup

    config.validate()
    ranks = init_ranks(config.features.device)
    work = Path(config.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    data = data or load_data(config)
    if ranks.is_main:
        write_json(work / "tasks.json", data.val_tasks, indent=None)
    stages = set(config.stages)
    device = resolve_device(rank_device(config.features.device, ranks))
    if stages & {"warmup", "features", "matrix"}:  # the selection alone needs no model
        tokenizer = load_tokenizer(config.model)
        train_enc = encode_rows(data.train_rows, tokenizer, config.data, source=str(config.train))
        val_enc = encode_rows(data.val_rows, tokenizer, config.data, source="validation")
        train_fp, val_fp = encodings_fingerprint(train_enc), encodings_fingerprint(val_enc)
    warm_dir = work / "warmup"

    if "warmup" in stages:
        run_warmup(config.model, train_enc, config.warmup, warm_dir, torch_dtype=config.features.torch_dtype,
                   device=device, progress=progress, fingerprint=train_fp, ranks=ranks)
    checkpoints = [c for c in list_checkpoints(warm_dir) if c.epoch <= config.warmup.epochs]
    needs_ckpts = stages & {"features", "matrix"}
    if needs_ckpts and [c.epoch for c in checkpoints] != list(range(1, config.warmup.epochs + 1)):
        raise FileNotFoundError(f"{warm_dir}: expected warm-up checkpoints for epochs 1..{config.warmup.epochs}, "
                                f"found {[c.epoch for c in checkpoints]}; run the warmup stage first")

    fcfg = config.features
    feature_meta = {"model": str(config.model), "projection": fcfg.projection, "proj_dim": fcfg.proj_dim,
                    "proj_seed": fcfg.proj_seed,
                    "torch_dtype": fcfg.torch_dtype, "data": dataclasses.asdict(config.data)}
    if "features" in stages:
        base = load_base_model(config.model, fcfg.torch_dtype, device)
        model = None
        pad = pad_token_id(tokenizer)
        projector = None
        for ckpt in checkpoints:
            if model is None:
                model = attach_adapter(base, ckpt.path)
            else:
                load_adapter_weights(model, ckpt.path)
            if projector is None:
                projector = make_projector(fcfg.projection, PerExampleGradients(model).shapes, fcfg.proj_dim,
                                           fcfg.proj_seed, device=device,
                                           cache_bytes=int(fcfg.projection_cache_gb * (1 << 30)))
                logger.info("features: %s", projector.describe())
            ckpt_meta = {**feature_meta, "checkpoint": ckpt.path.name, "checkpoint_step": ckpt.state["global_step"],
                         "checkpoint_settings": ckpt.state["settings"]}
            folder = work / "features" / ckpt.path.name
            adam = GradientFeaturizer(model, projector, batch_size=fcfg.grad_batch_size, pad_id=pad,
                                      moments=load_adam_moments(ckpt.path), device=device)
            compute_feature_shards(adam, train_enc, folder / "train", shard_size=fcfg.shard_size,
                                   meta={**ckpt_meta, "kind": "adam", "data_fingerprint": train_fp},
                                   progress=progress, desc=f"train features {ckpt.path.name}", ranks=ranks)
            sgd = GradientFeaturizer(model, projector, batch_size=fcfg.grad_batch_size, pad_id=pad, device=device)
            compute_feature_shards(sgd, val_enc, folder / "val", shard_size=fcfg.shard_size,
                                   meta={**ckpt_meta, "kind": "sgd", "data_fingerprint": val_fp},
                                   progress=progress, desc=f"val features {ckpt.path.name}", ranks=ranks)
        del base, model
        if device.startswith("cuda"):
            torch.cuda.empty_cache()

    if not ranks.is_main:  # the matrix and the selection are rank 0's; the other ranks are done
        return None
    matrix_path = work / "influence.npy"
    if "matrix" in stages:
        from selection.bids.features import n_shards, shard_path

        count = n_shards(len(train_enc), fcfg.shard_size)
        train_shards, vals = [], []
        for ckpt in checkpoints:
            folder = work / "features" / ckpt.path.name
            paths = [shard_path(folder / "train", k) for k in range(count)]
            missing = [p for p in paths if not p.is_file()]
            if missing:
                raise FileNotFoundError(f"{missing[0]}: training features missing; run the features stage first")
            train_shards.append(paths)
            vals.append(load_shards(folder / "val"))
        weights = checkpoint_weights(checkpoints)
        meta = {"checkpoints": [c.path.name for c in checkpoints], "train_fingerprint": train_fp,
                "val_fingerprint": val_fp, "features": feature_meta, "shard_size": fcfg.shard_size}
        build_influence_matrix(train_shards, vals, weights, matrix_path, meta=meta, progress=progress)
        logger.info("influence matrix %s: %d x %d, checkpoint weights %s", matrix_path, len(train_enc),
                    len(val_enc), ", ".join(f"{w:.3f}" for w in weights))

    if "select" not in stages:
        return None
    A = load_matrix(matrix_path)
    n_train, n_val = len(data.train_rows), len(data.val_rows)
    if A.shape != (n_train, n_val):
        raise ValueError(f"{matrix_path}: shape {A.shape} does not match {n_train} training x {n_val} "
                         "validation rows; run the matrix stage")
    selection = select_from_matrix(A, data.val_tasks, config.select, progress=progress)
    selection.diagnostics["influence"] = str(matrix_path)
    rows_path = Path(config.selected_data) if config.selected_data else default_rows_path(config.output)
    selection.diagnostics["selected_data"] = str(rows_path)
    write_selection(selection, config.output, plot=config.plot)
    from selection.io import write_rows

    write_rows(rows_path, (data.train_rows[i] for i in selection.indices))
    return selection


def default_rows_path(output: str | Path) -> Path:
    """``selected.json`` -> ``selected.jsonl`` (``x.jsonl`` -> ``x.rows.jsonl``, never the output itself)."""
    output = Path(output)
    if output.suffix == ".jsonl":
        return output.with_name(output.stem + ".rows.jsonl")
    return output.with_suffix(".jsonl")
