"""The influence matrix ``A[i, j] = sum_e w_e cos(train_i, val_j)``, memory-mapped and resumable.

``A`` (float64, train x validation, as the BIDS paper stores it) is filled one
training-feature shard at a time into ``NAME.npy.partial`` (an
``np.lib.format.open_memmap`` file, so it never has to fit in memory); after a
shard's rows are flushed, its number is added to ``NAME.progress.json``
(written atomically). A rerun reopens the partial file and computes only the
shards not listed; when all are done the file is renamed to ``NAME.npy``. An
interrupted shard is simply recomputed, since it was never listed.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from cf_tasks.jsonl import write_json
from cf_tasks.progress import progress_bar

logger = logging.getLogger(__name__)


def build_influence_matrix(train_shards: Sequence[Sequence[Path]], val_features: Sequence[np.ndarray],
                           weights: Sequence[float], out_path: str | Path, *, meta: dict[str, Any] | None = None,
                           progress: bool = True) -> Path:
    """Write ``A`` to ``out_path`` (``.npy``).

    ``train_shards[e][k]`` is shard ``k`` of checkpoint ``e``'s training
    features, ``val_features[e]`` that checkpoint's validation features and
    ``weights[e]`` its (normalised) weight.
    """
    out_path = Path(out_path)
    n_ckpt = len(weights)
    if not (len(train_shards) == len(val_features) == n_ckpt) or n_ckpt == 0:
        raise ValueError("need one list of training shards, one validation array and one weight per checkpoint")
    counts = {len(s) for s in train_shards}
    if len(counts) != 1:
        raise ValueError(f"checkpoints have different numbers of training shards: {sorted(counts)}")
    n_val = val_features[0].shape[0]
    sizes = [int(np.load(p, mmap_mode="r").shape[0]) for p in train_shards[0]]
    n_train = sum(sizes)
    meta = dict(meta or {})
    meta.update({"shape": [n_train, n_val], "weights": [float(w) for w in weights], "shard_sizes": sizes})
    partial = out_path.with_name(out_path.name + ".partial")
    progress_file = out_path.with_name(out_path.stem + ".progress.json")
    if out_path.is_file() and progress_file.is_file():
        state = json.loads(progress_file.read_text(encoding="utf-8"))
        if state.get("meta") == meta and state.get("complete"):
            logger.info("influence matrix %s is complete; skipping", out_path)
            return out_path
    done: set[int] = set()
    if partial.is_file() and progress_file.is_file():
        state = json.loads(progress_file.read_text(encoding="utf-8"))
        if state.get("meta") == meta:
            done = set(state.get("done", []))
    if done:
        matrix = np.lib.format.open_memmap(partial, mode="r+")
        logger.info("influence matrix: resuming, %d of %d shard(s) done", len(done), len(sizes))
    else:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        matrix = np.lib.format.open_memmap(partial, mode="w+", dtype=np.float64, shape=(n_train, n_val))
        write_json(progress_file, {"meta": meta, "done": [], "complete": False})
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    vals = [np.asarray(v, dtype=np.float64) for v in val_features]
    bar = progress_bar(progress, total=len(sizes), initial=len(done), desc="influence matrix", unit="shard")
    for k in range(len(sizes)):
        if k in done:
            continue
        block = np.zeros((sizes[k], n_val), dtype=np.float64)
        for e in range(n_ckpt):
            train = np.load(train_shards[e][k]).astype(np.float64)
            if train.shape[0] != sizes[k]:
                raise ValueError(f"{train_shards[e][k]}: {train.shape[0]} rows, expected {sizes[k]} "
                                 f"(as in {train_shards[0][k]})")
            block += weights[e] * (train @ vals[e].T)
        matrix[offsets[k]:offsets[k + 1]] = block
        matrix.flush()
        done.add(k)
        write_json(progress_file, {"meta": meta, "done": sorted(done), "complete": False})
        bar.update(1)
    bar.close()
    del matrix
    os.replace(partial, out_path)
    write_json(progress_file, {"meta": meta, "done": sorted(done), "complete": True})
    return out_path
