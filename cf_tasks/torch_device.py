"""The torch device to use when the user names none: CUDA where there is one, else the CPU.

One place for the rule, because lm-eval's ``hf`` backend defaults to ``cuda``
and fails on a machine without it; every caller that loads a model for the
user (the report's judge, GRAPE, BIDS, the post-training evaluation) asks here.
"""

from __future__ import annotations


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_device(device: str | None) -> str:
    """``device`` itself, or :func:`default_device` for ``None`` / ``"auto"``."""
    return default_device() if device in (None, "auto") else device
