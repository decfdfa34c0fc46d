"""Score a whole pool: backends by name, shards, resuming, multi-process sharding, progress.

Backends are looked up in :data:`BACKENDS` ("module:class", imported on use)
so the vLLM module is only imported when asked for. Every backend receives
the same token ids (``prompting.encode_instruction``, built on the shared
joint encoder ``selection.tokenization``), which is why their scores agree up
to kernel numerics. A backend may expose ``max_length`` (its context size);
candidates longer than that (or ``GrapeConfig.max_length``) are truncated or
skipped by the over-length policy before they reach it, and counted.

Multi-GPU (transformers backend): run the same command under
``accelerate launch --num_processes N -m selection.cli grape ...``. Each
process scores the shards ``i`` with ``i % N == rank`` on its own device and
writes them to the shared work dir; after a barrier, rank 0 reads every shard
and writes the outputs. Resuming works the same way. Processes that were
started together but do not form one distributed group (each would score
every shard and write every output) are refused.
"""

from __future__ import annotations

import importlib
import logging
import os
from dataclasses import dataclass, field
from typing import Any

from selection.distributed import init_ranks, rank_device
from selection.grape.config import GrapeConfig
from selection.grape.prompting import EncodedInstruction, encode_instruction
from selection.grape.scoring_hf import SequenceTooLong
from selection.grape.shards import CandidateScore, ShardStore, model_identity, pool_digest
from selection.io import Pool

logger = logging.getLogger(__name__)

BACKENDS = {
    "hf": "selection.grape.scoring_hf:HFScorer",
    "vllm": "selection.grape.scoring_vllm:VLLMScorer",
}


@dataclass
class ScoreRun:
    """Scores per instruction and candidate (None when the run stopped early), and what was done.

    A candidate's :class:`CandidateScore` has ``score`` None when the
    over-length policy skipped it and ``prompt_cut`` > 0 when its prompt was
    truncated from the left.
    """

    scores: list[list[CandidateScore]] | None
    shards_total: int
    shards_computed: list[int] = field(default_factory=list)
    shards_reused: int = 0
    tokens: int = 0
    seconds: float = 0.0

    @property
    def complete(self) -> bool:
        return self.scores is not None

    def counts(self) -> dict[str, int]:
        """Over-length accounting of a complete run (reported in the summary and the log)."""
        rows = [c for row in self.scores or [] for c in row]
        return {"candidates": len(rows), "scored": sum(c.score is not None for c in rows),
                "skipped_overlength": sum(c.score is None for c in rows),
                "prompt_truncated": sum(c.prompt_cut > 0 for c in rows),
                "instructions_without_score": sum(all(c.score is None for c in row) for row in self.scores or [])}


@dataclass
class ProcessInfo:
    rank: int = 0
    world: int = 1
    device: str | None = None
    barrier: Any = None

    @property
    def is_main(self) -> bool:
        return self.rank == 0


_NOTED: list[bool] = []  # the one-process note is logged once per process


def process_info(config: GrapeConfig) -> ProcessInfo:
    """This process's rank under ``accelerate launch``/``torchrun`` (plain single process otherwise)."""
    ranks = init_ranks(config.device or "auto")
    if ranks.world == 1:
        if os.environ.get("ACCELERATE_USE_CPU", "").lower() == "true" and not _NOTED:
            _NOTED.append(True)
            logger.warning("running as ONE process: `accelerate launch --cpu` starts one process whatever "
                           "--num_processes says; use `accelerate launch --multi_gpu --num_processes N` (gloo on CPU)")
        return ProcessInfo(device=config.device)
    return ProcessInfo(ranks.rank, ranks.world, config.device or rank_device("auto", ranks), ranks.barrier)


def load_tokenizer(config: GrapeConfig):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(config.model, trust_remote_code=config.trust_remote_code)


def load_scorer(config: GrapeConfig, device: str | None):
    module, cls = BACKENDS[config.backend].split(":")
    scorer_cls = getattr(importlib.import_module(module), cls)
    return scorer_cls.from_pretrained(
        config.model, dtype=config.dtype, device=device, trust_remote_code=config.trust_remote_code,
        max_batch_tokens=config.max_batch_tokens, prefix_reuse=config.prefix_reuse,
        tensor_parallel_size=config.tensor_parallel_size, gpu_memory_utilization=config.gpu_memory_utilization,
        max_model_len=config.max_model_len,
    )


def context_limit(config: GrapeConfig, scorer: Any) -> int | None:
    """The longest prompt + response to score: ``config.max_length``, else the backend's context size."""
    if config.max_length is not None:
        return config.max_length
    limit = getattr(scorer, "max_length", None) or config.max_model_len
    return int(limit) if limit else None


def encode_range(tokenizer: Any, pool: Pool, config: GrapeConfig, start: int, stop: int,
                 max_length: int | None = None) -> list[EncodedInstruction]:
    out = []
    for e in pool.entries[start:stop]:
        try:
            out.append(encode_instruction(tokenizer, e.instruction, e.responses, template=config.template,
                                          chat_template=config.chat_template, bos=config.bos,
                                          score_eos=config.score_eos, max_length=max_length,
                                          overlength=config.overlength))
        except ValueError as exc:
            raise ValueError(f"{e.origins[0]}: {exc}") from None
    return out


def score_encoded(scorer: Any, encoded: list[EncodedInstruction], progress: Any = None) -> list[list[CandidateScore]]:
    """Score instructions through the backend's group interface and put candidates back in pool order."""
    flat = [g for enc in encoded for g in enc.groups]
    try:
        scored = scorer.score(flat, progress=progress) if flat else []
    except SequenceTooLong as exc:
        owner = next(i for i, enc in enumerate(encoded) if exc.group < sum(len(e.groups) for e in encoded[: i + 1]))
        raise SequenceTooLong(owner, str(exc)) from None
    out: list[list[CandidateScore]] = []
    it = iter(scored)
    for enc in encoded:
        row: list[CandidateScore | None] = [None] * enc.n_candidates
        for members in enc.members:
            for j, s in zip(members, next(it)):
                row[j] = CandidateScore(s, enc.prompt_cut[j])
        out.append([c if c is not None else CandidateScore(None, 0) for c in row])
    return out


def score_pool(pool: Pool, config: GrapeConfig, *, work_dir: str | os.PathLike | None = None,
               scorer: Any = None, tokenizer: Any = None, proc: ProcessInfo | None = None) -> ScoreRun:
    """Score every candidate of ``pool``, resuming from the shards already in ``work_dir``.

    ``scorer``/``tokenizer`` may be passed in (tests, benchmarks, notebooks that
    score several pools with one model); otherwise they are loaded from
    ``config.model`` only when some shard is left to compute.
    """
    import time

    from tqdm.auto import tqdm

    proc = proc or process_info(config)
    if proc.world > 1 and work_dir is None:
        raise ValueError("multi-process scoring needs a shared work dir (the processes exchange shards through it)")
    fingerprint = {**config.scoring_fingerprint(), "model": model_identity(config.model), "pool": pool_digest(pool)}
    store = ShardStore(work_dir, n_groups=len(pool.entries), shard_size=config.shard_size, fingerprint=fingerprint)
    mine = [i for i in range(store.n_shards) if i % proc.world == proc.rank]
    pending = [i for i in mine if not store.done(i)]
    run = ScoreRun(None, store.n_shards, shards_reused=len(mine) - len(pending))
    if run.shards_reused:
        logger.info("resuming: %d of %d shard(s) already scored in %s", run.shards_reused, len(mine), work_dir)
    if config.max_shards is not None:
        pending = pending[: config.max_shards]
    if pending:
        tokenizer = tokenizer or load_tokenizer(config)
        scorer = scorer or load_scorer(config, proc.device)
        limit = context_limit(config, scorer)
        t0 = time.perf_counter()
        with tqdm(desc=f"grape[{proc.rank}]" if proc.world > 1 else "grape", unit="tok", unit_scale=True,
                  disable=not config.progress, dynamic_ncols=True) as bar:
            for n, i in enumerate(pending, start=1):
                start, stop = store.bounds(i)
                encoded = encode_range(tokenizer, pool, config, start, stop, limit)
                try:
                    scores = score_encoded(scorer, encoded, progress=bar.update)
                except SequenceTooLong as exc:
                    raise ValueError(f"{pool.entries[start + exc.group].origins[0]}: {exc}") from None
                store.write(i, scores)
                run.shards_computed.append(i)
                run.tokens += sum(g.n_tokens for enc in encoded for g in enc.groups)
                bar.set_postfix_str(f"shard {n}/{len(pending)}")
        run.seconds = time.perf_counter() - t0
        logger.info("scored %d shard(s), %d tokens in %.1fs (%.0f tok/s)", len(pending), run.tokens, run.seconds,
                    run.tokens / max(run.seconds, 1e-9))
    if proc.barrier is not None:
        proc.barrier()
    if all(store.done(i) for i in range(store.n_shards)):
        run.scores = [row for i in range(store.n_shards) for row in store.read(i)]
        counts = run.counts()
        if counts["skipped_overlength"] or counts["prompt_truncated"]:
            logger.warning("over-length candidates (policy %s): %d skipped, %d scored on a left-truncated prompt; "
                           "%d instruction(s) have no scored candidate", config.overlength,
                           counts["skipped_overlength"], counts["prompt_truncated"],
                           counts["instructions_without_score"])
    return run
