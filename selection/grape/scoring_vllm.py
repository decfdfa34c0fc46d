"""vLLM scoring backend (optional extra): response log-probs through ``prompt_logprobs``.

The recipe is lm-eval's ``loglikelihood`` (see the harness notes, §7): feed
``prompt_ids + response_ids`` as a ``TokensPrompt``, generate one token with
``prompt_logprobs=0`` (which returns the log-prob of every actual prompt
token), and read the entries after the prompt. Candidates of one instruction
are submitted next to each other with ``enable_prefix_caching=True``, so vLLM
computes their shared prompt once, the same saving as the transformers
backend's KV reuse. The token ids come from ``prompting.encode_group`` with
the HF tokenizer, exactly as for the transformers backend.

vLLM spawns its engine process: a script that uses this backend must run its
work under ``if __name__ == "__main__":`` (``cf-select`` does).
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Sequence

from selection.grape.prompting import EncodedGroup
from selection.grape.scoring_hf import TokenScore

logger = logging.getLogger(__name__)


def _logprob(entry: Any) -> float:
    """vLLM returns ``Logprob`` objects (older versions: plain floats)."""
    return float(getattr(entry, "logprob", entry))


class VLLMScorer:
    def __init__(self, llm: Any, *, chunk_size: int = 4096):
        self.llm = llm
        self.chunk_size = chunk_size

    @classmethod
    def from_pretrained(cls, path: str, *, dtype: str = "float32", device: str | None = None,
                        trust_remote_code: bool = False, tensor_parallel_size: int = 1,
                        gpu_memory_utilization: float = 0.9, max_model_len: int | None = None,
                        **_ignored: Any) -> "VLLMScorer":
        try:
            from vllm import LLM
        except ImportError as exc:  # pragma: no cover - depends on the environment
            raise ValueError("--backend vllm needs vLLM: pip install 'executable-cf[vllm]'") from exc
        kwargs: dict[str, Any] = dict(
            model=path, tokenizer=path, dtype=dtype, seed=0, enable_prefix_caching=True,
            tensor_parallel_size=tensor_parallel_size, gpu_memory_utilization=gpu_memory_utilization,
            trust_remote_code=trust_remote_code,
        )
        if max_model_len is not None:
            kwargs["max_model_len"] = max_model_len
        return cls(LLM(**kwargs))

    def score(self, groups: Sequence[EncodedGroup], progress: Callable[[int], None] | None = None
              ) -> list[list[TokenScore]]:
        from vllm import SamplingParams

        try:
            from vllm.inputs import TokensPrompt
        except ImportError:  # pragma: no cover - very old vLLM takes plain dicts
            TokensPrompt = dict  # noqa: N806

        params = SamplingParams(max_tokens=1, temperature=0.0, prompt_logprobs=0, detokenize=False)
        items = [(gi, ci) for gi, g in enumerate(groups) for ci in range(len(g.response_ids))]
        out: list[list[TokenScore | None]] = [[None] * len(g.response_ids) for g in groups]
        for lo in range(0, len(items), self.chunk_size):
            chunk = items[lo: lo + self.chunk_size]
            prompts = [TokensPrompt(prompt_token_ids=list(groups[gi].prompt_ids) + list(groups[gi].response_ids[ci]))
                       for gi, ci in chunk]
            results = self.llm.generate(prompts, params, use_tqdm=False)
            for (gi, ci), res in zip(chunk, results):
                plen = len(groups[gi].prompt_ids)
                resp = groups[gi].response_ids[ci]
                entries = res.prompt_logprobs
                total = sum(_logprob(entries[plen + t][tok]) for t, tok in enumerate(resp))
                out[gi][ci] = TokenScore(total, len(resp))
            if progress is not None:
                progress(sum(len(groups[gi].prompt_ids) + len(groups[gi].response_ids[ci]) for gi, ci in chunk))
        return out  # type: ignore[return-value]
