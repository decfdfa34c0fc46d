"""Transformers scoring backend: sum of response-token log-probs, batched, with prompt KV reuse.

Why this shape: in a GRAPE pool every instruction has many candidates that
share one (often long) prompt. Encoding the prompt once and expanding its KV
cache across the candidate batch removes most of the work of a naive
prompt+response forward per candidate; the rest is made cheap by
length-sorted batching under a token budget (little padding).

Algorithm for a list of groups (one group = one instruction):

1. *Prefill*: groups sorted by prompt length are packed into chunks whose
   ``rows x longest prompt`` fits ``max_batch_tokens``. A chunk's prompts are
   left-padded (so every prompt ends at the last column), run once with
   ``use_cache=True``; the last column's logits give the log-prob of each
   candidate's first token.
2. *Candidates*: all candidates of the chunk, sorted by length (longest first),
   are packed into batches of ``rows x (prompt width + longest response - 1)``
   tokens. Each batch gathers its rows' prompt cache (``index_select`` on the
   batch axis: the 'expand the cache' step), feeds the response tokens except
   the last (right-padded; padding is masked and never scored) with explicit
   ``position_ids`` continuing each prompt, and gathers the log-probs of the
   next tokens.

``prefix_reuse=False`` is the plain batched path (full prompt+response rows,
right-padded); it is the reference for the KV-reuse tolerance test.

Multi-GPU: the caller shards work across ``accelerate launch`` processes (see
``selection/grape/scoring.py``); each process builds one ``HFScorer`` on its
own device.
"""

from __future__ import annotations

import inspect
import logging
from dataclasses import dataclass
from typing import Any, Callable, Sequence

from cf_tasks.torch_device import default_device
from selection.grape.prompting import EncodedGroup

logger = logging.getLogger(__name__)

DTYPES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


@dataclass(frozen=True)
class TokenScore:
    """Sum of the response-token log-probs and their count; GRAPE's score is the mean."""

    logprob_sum: float
    n_tokens: int

    @property
    def mean(self) -> float:
        return self.logprob_sum / self.n_tokens


class SequenceTooLong(ValueError):
    """A candidate does not fit the model's context; ``group`` is its index in the scored list."""

    def __init__(self, group: int, message: str):
        super().__init__(message)
        self.group = group


def pack(lengths: Sequence[int], budget: int, extra: Callable[[list[int]], int] | None = None) -> list[list[int]]:
    """Split indices (already in the desired order) into runs whose rows x width fits ``budget``.

    ``width`` of a run is its longest length plus ``extra(run)``; a single
    over-budget item still gets its own batch (it has to run somewhere).
    """
    batches: list[list[int]] = []
    cur: list[int] = []
    width = 0
    for i in range(len(lengths)):
        cand = cur + [i]
        w = max(width, lengths[i])
        total = len(cand) * (w + (extra(cand) if extra else 0))
        if cur and total > budget:
            batches.append(cur)
            cur, width = [i], lengths[i]
        else:
            cur, width = cand, w
    if cur:
        batches.append(cur)
    return batches


class HFScorer:
    """Scores :class:`EncodedGroup` lists with a transformers causal LM."""

    def __init__(self, model: Any, *, max_batch_tokens: int = 4096, prefix_reuse: bool = True,
                 pad_token_id: int = 0):
        import torch

        self.torch = torch
        self.model = model
        self.max_batch_tokens = int(max_batch_tokens)
        self.prefix_reuse = prefix_reuse
        self.pad_token_id = int(pad_token_id)
        self.device = next(model.parameters()).device
        cfg = model.config
        self.max_length: int | None = getattr(cfg, "max_position_embeddings", None) or getattr(cfg, "n_positions", None)
        """The model's context size: the scoring pipeline truncates or skips longer candidates before they get here."""
        params = inspect.signature(model.forward).parameters
        self._keep_kw = "logits_to_keep" if "logits_to_keep" in params else None
        # transformers >= 5.2x renamed ``past_key_values`` to ``cache``; support both spellings.
        self._cache_kw = "cache" if "cache" in params else "past_key_values"

    @classmethod
    def from_pretrained(cls, path: str, *, dtype: str = "auto", device: str | None = None,
                        trust_remote_code: bool = False, max_batch_tokens: int = 4096, prefix_reuse: bool = True,
                        **_backend_specific: Any) -> "HFScorer":
        import torch
        from transformers import AutoModelForCausalLM

        if device is None:
            device = default_device()
        torch_dtype = "auto" if dtype == "auto" else getattr(torch, DTYPES[dtype])
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype, trust_remote_code=trust_remote_code)
        model.to(device).eval()
        pad = model.config.pad_token_id if getattr(model.config, "pad_token_id", None) is not None else 0
        return cls(model, pad_token_id=pad, max_batch_tokens=max_batch_tokens, prefix_reuse=prefix_reuse)

    # -- public -------------------------------------------------------------------------------
    def score(self, groups: Sequence[EncodedGroup], progress: Callable[[int], None] | None = None
              ) -> list[list[TokenScore]]:
        self._check_lengths(groups)
        with self.torch.inference_mode():
            if self.prefix_reuse:
                return self._score_reuse(groups, progress)
            return self._score_full(groups, progress)

    def _check_lengths(self, groups: Sequence[EncodedGroup]) -> None:
        """Fail with a readable message instead of an index error deep inside the model."""
        limit = self.max_length
        if not limit:
            return
        for gi, g in enumerate(groups):
            longest = len(g.prompt_ids) + max(len(r) for r in g.response_ids)
            if longest > limit:
                raise SequenceTooLong(gi, f"prompt + response is {longest} tokens, more than the model's {limit} "
                                          "positions")

    # -- KV-reuse path ------------------------------------------------------------------------
    def _score_reuse(self, groups: Sequence[EncodedGroup], progress) -> list[list[TokenScore]]:
        order = sorted(range(len(groups)), key=lambda g: (-len(groups[g].prompt_ids), g))
        lengths = [len(groups[g].prompt_ids) for g in order]
        out: list[list[TokenScore] | None] = [None] * len(groups)
        for chunk in pack(lengths, self.max_batch_tokens):
            members = [order[i] for i in chunk]
            for g, scores in zip(members, self._score_chunk([groups[g] for g in members])):
                out[g] = scores
            if progress is not None:
                progress(sum(groups[g].n_tokens for g in members))
        return out  # type: ignore[return-value]

    def _forward(self, **kwargs: Any):
        return self.model(**kwargs)

    def _score_chunk(self, groups: Sequence[EncodedGroup]) -> list[list[TokenScore]]:
        torch = self.torch
        dev = self.device
        n = len(groups)
        width = max(len(g.prompt_ids) for g in groups)
        ids = torch.full((n, width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((n, width), dtype=torch.long)
        for i, g in enumerate(groups):
            ids[i, width - len(g.prompt_ids):] = torch.tensor(g.prompt_ids)
            mask[i, width - len(g.prompt_ids):] = 1
        ids, mask = ids.to(dev), mask.to(dev)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        kwargs: dict[str, Any] = {}
        if self._keep_kw:
            kwargs[self._keep_kw] = 1
        out = self._forward(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, **kwargs)
        cache = out.cache if getattr(out, "cache", None) is not None else out.past_key_values
        first_logp = torch.log_softmax(out.logits[:, -1].float(), dim=-1)  # (n, V)
        del out
        prompt_lens = torch.tensor([len(g.prompt_ids) for g in groups], device=dev)

        sums = [[0.0] * len(g.response_ids) for g in groups]
        cands: list[tuple[int, int, tuple[int, ...]]] = []
        for gi, g in enumerate(groups):
            for ci, r in enumerate(g.response_ids):
                sums[gi][ci] = float(first_logp[gi, r[0]])
                if len(r) > 1:
                    cands.append((gi, ci, r))
        cands.sort(key=lambda c: (-len(c[2]), c[0], c[1]))
        rest = [len(c[2]) - 1 for c in cands]
        for batch in pack(rest, self.max_batch_tokens, extra=lambda _b: width):
            rows = [cands[i] for i in batch]
            length = max(len(r) - 1 for _, _, r in rows)
            inp = torch.full((len(rows), length), self.pad_token_id, dtype=torch.long)
            tgt = torch.zeros((len(rows), length), dtype=torch.long)
            rmask = torch.zeros((len(rows), length), dtype=torch.long)
            for b, (_, _, r) in enumerate(rows):
                inp[b, : len(r) - 1] = torch.tensor(r[:-1])
                tgt[b, : len(r) - 1] = torch.tensor(r[1:])
                rmask[b, : len(r) - 1] = 1
            inp, tgt, rmask = inp.to(dev), tgt.to(dev), rmask.to(dev)
            sel = torch.tensor([gi for gi, _, _ in rows], device=dev)
            past = expand_cache(cache, sel, self.model.config)
            attn = torch.cat([mask.index_select(0, sel), rmask], dim=1)
            pos = prompt_lens.index_select(0, sel)[:, None] + torch.arange(length, device=dev)[None, :]
            logits = self._forward(input_ids=inp, attention_mask=attn, position_ids=pos, use_cache=True,
                                   **{self._cache_kw: past}).logits
            token_logp = gather_logprobs(logits, tgt) * rmask
            totals = token_logp.double().sum(-1).tolist()
            for (gi, ci, _), t in zip(rows, totals):
                sums[gi][ci] += t
            del past, logits
        return [[TokenScore(sums[gi][ci], len(r)) for ci, r in enumerate(g.response_ids)]
                for gi, g in enumerate(groups)]

    # -- no-reuse path ------------------------------------------------------------------------
    def _score_full(self, groups: Sequence[EncodedGroup], progress) -> list[list[TokenScore]]:
        torch = self.torch
        dev = self.device
        items = [(gi, ci, g.prompt_ids, r) for gi, g in enumerate(groups) for ci, r in enumerate(g.response_ids)]
        items.sort(key=lambda it: (-(len(it[2]) + len(it[3])), it[0], it[1]))
        sums: dict[tuple[int, int], float] = {}
        for batch in pack([len(p) + len(r) - 1 for _, _, p, r in items], self.max_batch_tokens):
            rows = [items[i] for i in batch]
            length = max(len(p) + len(r) - 1 for _, _, p, r in rows)
            inp = torch.full((len(rows), length), self.pad_token_id, dtype=torch.long)
            tgt = torch.zeros((len(rows), length), dtype=torch.long)
            smask = torch.zeros((len(rows), length), dtype=torch.long)
            amask = torch.zeros((len(rows), length), dtype=torch.long)
            for b, (_, _, p, r) in enumerate(rows):
                seq = list(p) + list(r)
                inp[b, : len(seq) - 1] = torch.tensor(seq[:-1])
                tgt[b, : len(seq) - 1] = torch.tensor(seq[1:])
                amask[b, : len(seq) - 1] = 1
                smask[b, len(p) - 1: len(seq) - 1] = 1
            inp, tgt, smask, amask = inp.to(dev), tgt.to(dev), smask.to(dev), amask.to(dev)
            logits = self._forward(input_ids=inp, attention_mask=amask, use_cache=False).logits
            totals = (gather_logprobs(logits, tgt) * smask).double().sum(-1).tolist()
            for (gi, ci, p, r), t in zip(rows, totals):
                sums[(gi, ci)] = t
            if progress is not None:
                progress(sum(len(p) + len(r) for _, _, p, r in rows))
        return [[TokenScore(sums[(gi, ci)], len(r)) for ci, r in enumerate(g.response_ids)]
                for gi, g in enumerate(groups)]


def gather_logprobs(logits: Any, targets: Any) -> Any:
    """log p(target) per position, computed in float32 (logsumexp avoids a full log_softmax copy)."""
    import torch

    logits = logits.float()
    picked = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return picked - torch.logsumexp(logits, dim=-1)


def expand_cache(cache: Any, rows: Any, config: Any) -> Any:
    """A new cache holding ``rows`` of ``cache`` (repeats allowed): one prompt cache per candidate row.

    Built as a fresh ``DynamicCache`` so the prefill cache is never mutated
    (the model appends the candidate tokens to the cache it is given).
    """
    from transformers import DynamicCache

    if isinstance(cache, tuple):  # legacy tuple-of-tuples caches
        return tuple((k.index_select(0, rows), v.index_select(0, rows)) for k, v in cache)
    data = [(layer.keys.index_select(0, rows), layer.values.index_select(0, rows)) for layer in cache.layers]
    return DynamicCache(data, config=config)
