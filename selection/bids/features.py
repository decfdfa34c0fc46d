"""Projected, L2-normalised gradient features per checkpoint, written in resumable shards.

Training examples get LESS's Adam-preconditioned gradients (the checkpoint's
moments), validation examples plain gradients. Features of examples
``[k * shard_size, (k + 1) * shard_size)`` go to ``shard-{k:05d}.npy``
(float32, rows L2-normalised so a dot product is a cosine), written
atomically; a rerun skips the shards that exist. ``meta.json`` records what the
features were computed from, and a folder made with other settings is refused.
Within a shard, examples are batched by length (less padding) and put back in
order.
"""

from __future__ import annotations

import hashlib
import logging
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from cf_tasks.jsonl import atomic_write, write_json
from cf_tasks.progress import progress_bar
from selection.bids.data import Encoded, collate
from selection.distributed import Ranks

logger = logging.getLogger(__name__)

META_FILE = "meta.json"


def encodings_fingerprint(examples: Sequence[Encoded]) -> str:
    """SHA-256 of the token ids and labels of every example (identifies the data actually used)."""
    digest = hashlib.sha256()
    for e in examples:
        digest.update(np.asarray(e.input_ids, dtype=np.int64).tobytes())
        digest.update(b"|")
        digest.update(np.asarray(e.labels, dtype=np.int64).tobytes())
        digest.update(b"#")
    return digest.hexdigest()


def shard_path(folder: Path, index: int) -> Path:
    return folder / f"shard-{index:05d}.npy"


def n_shards(n_examples: int, shard_size: int) -> int:
    return max(1, math.ceil(n_examples / shard_size))


def check_meta(folder: Path, meta: dict[str, Any], *, write: bool = True) -> None:
    """Write ``meta.json`` on first use (when ``write``); refuse a folder whose features came from other settings."""
    path = folder / META_FILE
    if path.is_file():
        import json

        existing = json.loads(path.read_text(encoding="utf-8"))
        if existing != meta:
            changed = sorted(k for k in set(existing) | set(meta) if existing.get(k) != meta.get(k))
            raise ValueError(f"{folder}: features were computed with other settings ({', '.join(changed)}); "
                             "use a new --work-dir (or delete the folder) to recompute")
        return
    if write:
        write_json(path, meta)


def compute_feature_shards(featurize, examples: Sequence[Encoded], folder: str | Path, *, shard_size: int,
                           meta: dict[str, Any], progress: bool = True, desc: str = "features",
                           ranks: Ranks = Ranks()) -> list[Path]:
    """Run ``featurize(batch_of_examples) -> (n, dim) array`` over missing shards; returns all shard paths.

    Under a multi-process launch each rank computes the missing shards it
    owns (``k mod world == rank``); all ranks return after every shard exists.
    A shard's features do not depend on which process computed it.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    check_meta(folder, {**meta, "n_examples": len(examples), "shard_size": shard_size}, write=ranks.is_main)
    count = n_shards(len(examples), shard_size)
    paths = [shard_path(folder, k) for k in range(count)]
    missing = [k for k in range(count) if not paths[k].is_file()]
    todo = [k for k in missing if ranks.owns(k)]
    if len(missing) < count and ranks.is_main:
        logger.info("%s: %d of %d shard(s) already in %s", desc, count - len(missing), count, folder)
    if ranks.world > 1:
        logger.info("%s: rank %d of %d computes %d of the %d missing shard(s)", desc, ranks.rank, ranks.world,
                    len(todo), len(missing))
        progress = progress and ranks.is_main
    bar = progress_bar(progress and bool(todo), total=sum(len(examples[k * shard_size:(k + 1) * shard_size])
                                                          for k in todo), desc=desc, unit="ex")
    for k in todo:
        part = examples[k * shard_size:(k + 1) * shard_size]
        features = featurize(part, bar)
        with atomic_write(paths[k], "wb") as handle:
            np.save(handle, np.ascontiguousarray(features, dtype=np.float32))
    bar.close()
    ranks.barrier()
    return paths


def load_shards(folder: str | Path) -> np.ndarray:
    folder = Path(folder)
    paths = sorted(folder.glob("shard-*.npy"))
    if not paths:
        raise FileNotFoundError(f"{folder}: no feature shards")
    return np.concatenate([np.load(p) for p in paths])


class GradientFeaturizer:
    """``examples -> (n, dim)`` normalised projected gradient features for one model state."""

    def __init__(self, model, projector, *, batch_size: int, pad_id: int, moments=None, device: str = "cpu"):
        from selection.bids.gradients import PerExampleGradients

        self.grads = PerExampleGradients(model)
        self.projector = projector
        self.batch_size = batch_size
        self.pad_id = pad_id
        self.moments = moments.to(device) if moments is not None else None
        self.device = device

    def __call__(self, examples: Sequence[Encoded], bar=None) -> np.ndarray:
        from selection.bids.projection import l2_normalize

        order = sorted(range(len(examples)), key=lambda i: (len(examples[i].input_ids), i))
        out = np.zeros((len(examples), self.projector.dim), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start:start + self.batch_size]
            ids, mask, labels = (t.to(self.device) for t in collate([examples[i] for i in chunk], self.pad_id))
            features = l2_normalize(self.project_batch(ids, mask, labels))
            out[chunk] = features.cpu().numpy()
            if bar is not None:
                bar.update(len(chunk))
        return out

    def project_batch(self, ids, mask, labels):
        """``(B, dim)`` projected (Adam-transformed) gradients, one LoRA module at a time.

        Plain gradients go to :meth:`Projector.project_factors` (the factored
        projector never forms them). The Adam transform is elementwise in the
        full gradient, so with moments each module's per-example gradient is
        formed, transformed and projected, then dropped before the next module.
        """
        import torch

        from selection.bids.gradients import adam_transform_one

        factors = self.grads.factors(ids, mask, labels)
        total = None
        with torch.no_grad():
            while factors:
                module = factors.pop(0)
                if self.moments is None:
                    part = self.projector.project_factors(module)
                else:
                    part = sum(self.projector.project_parameter(name, adam_transform_one(name, g, self.moments))
                               for name, g in module.gradients())
                total = part if total is None else total + part
                del module
        return total
