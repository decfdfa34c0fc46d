"""Score shards in a work dir: the unit of resuming and of multi-process sharding.

Shard ``i`` holds the scores of instructions ``[i*S, (i+1)*S)`` of the pool
(``S`` = shard size) and is written atomically once complete, so a killed run
leaves only whole shards behind and a rerun computes exactly the missing ones.
``manifest.json`` records a fingerprint of the pool content and of every
setting that changes a score; a work dir made for other data or settings is
refused instead of silently mixing scores. Format 2 (joint prompt+response
encoding, over-length policy) refuses work dirs of format 1, whose scores were
computed from separately encoded responses.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from cf_tasks.jsonl import dumps, iter_jsonl, write_json, write_jsonl
from selection.grape.scoring_hf import TokenScore
from selection.io import Pool

FORMAT = 2


@dataclass(frozen=True)
class CandidateScore:
    """One candidate's score (None: skipped by the over-length policy) and the prompt tokens cut to fit."""

    score: TokenScore | None
    prompt_cut: int = 0

    @property
    def mean(self) -> float | None:
        return None if self.score is None else self.score.mean


def pool_digest(pool: Pool) -> str:
    """SHA-256 over every instruction and candidate, in order."""
    h = hashlib.sha256()
    for e in pool.entries:
        h.update(dumps([e.key, e.instruction, e.responses]).encode("utf-8"))
        h.update(b"\n")
    return h.hexdigest()


def model_identity(model: str | None) -> Any:
    """The model name, plus file names and sizes for a local folder (catches a retrained checkpoint)."""
    if model is None:
        return None
    path = Path(model)
    if path.is_dir():
        files = sorted((p.name, p.stat().st_size) for p in path.iterdir() if p.is_file())
        return {"path": str(path.resolve()), "files": files}
    return model


class ShardStore:
    """Shard files under ``work_dir`` (or in memory when ``work_dir`` is None)."""

    def __init__(self, work_dir: str | os.PathLike | None, *, n_groups: int, shard_size: int,
                 fingerprint: dict[str, Any]):
        self.n_groups = n_groups
        self.shard_size = shard_size
        self.n_shards = (n_groups + shard_size - 1) // shard_size
        self.dir = Path(work_dir) if work_dir is not None else None
        self._memory: dict[int, list[list[CandidateScore]]] = {}
        self.manifest = {"format": FORMAT, "n_groups": n_groups, "shard_size": shard_size,
                         "n_shards": self.n_shards, "fingerprint": fingerprint}
        if self.dir is not None:
            self._check_manifest()

    def _check_manifest(self) -> None:
        assert self.dir is not None
        path = self.dir / "manifest.json"
        if path.exists():
            with open(path, encoding="utf-8") as handle:
                old = json.load(handle)
            # compare through JSON so tuples/lists do not differ
            new = json.loads(dumps(self.manifest))
            if old != new:
                diff = sorted(k for k in set(old.get("fingerprint", {})) | set(new["fingerprint"])
                              if old.get("fingerprint", {}).get(k) != new["fingerprint"].get(k))
                diff += sorted(k for k in ("format", "n_groups", "shard_size") if old.get(k) != new.get(k))
                raise ValueError(
                    f"work dir {self.dir} holds scores for other data or settings (differs in: "
                    f"{', '.join(diff) or 'manifest'}); use another --work-dir or delete it"
                )
        else:
            write_json(path, self.manifest)

    def bounds(self, i: int) -> tuple[int, int]:
        return i * self.shard_size, min(self.n_groups, (i + 1) * self.shard_size)

    def path(self, i: int) -> Path:
        assert self.dir is not None
        return self.dir / f"shard-{i:06d}.jsonl"

    def done(self, i: int) -> bool:
        return i in self._memory if self.dir is None else self.path(i).exists()

    def write(self, i: int, scores: Sequence[Sequence[CandidateScore]]) -> None:
        start, stop = self.bounds(i)
        if len(scores) != stop - start:
            raise ValueError(f"shard {i}: expected {stop - start} groups, got {len(scores)}")
        if self.dir is None:
            self._memory[i] = [list(s) for s in scores]
            return
        write_jsonl(self.path(i), (
            {"group": start + g, "logprob_sums": [None if c.score is None else c.score.logprob_sum for c in row],
             "n_tokens": [None if c.score is None else c.score.n_tokens for c in row],
             "prompt_cut": [c.prompt_cut for c in row]}
            for g, row in enumerate(scores)
        ))

    def read(self, i: int) -> list[list[CandidateScore]]:
        if self.dir is None:
            return self._memory[i]
        start, stop = self.bounds(i)
        out: list[list[CandidateScore]] = []
        for lineno, row in iter_jsonl(self.path(i)):
            if row.get("group") != start + len(out):
                raise ValueError(f"{self.path(i)}:{lineno}: expected group {start + len(out)}, got {row.get('group')}")
            out.append([CandidateScore(None if s is None else TokenScore(float(s), int(n)), int(cut))
                        for s, n, cut in zip(row["logprob_sums"], row["n_tokens"], row["prompt_cut"])])
        if len(out) != stop - start:
            raise ValueError(f"{self.path(i)}: has {len(out)} groups, expected {stop - start}; delete it to recompute")
        return out
