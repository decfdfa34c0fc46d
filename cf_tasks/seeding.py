"""Per-item random streams derived by hashing.

Why hashing: ``Random(seed + index)`` makes seed 1 item 1 equal seed 2 item 0
(reasoning-gym's flaw). Hashing ``(namespace, version, seed, index)`` with
SHA-256 gives independent streams that are identical across processes,
platforms and ``PYTHONHASHSEED`` values (``hash()`` is never used).
"""

from __future__ import annotations

import hashlib
import random


def derive_seed(*parts: object) -> int:
    """A 64-bit integer from the SHA-256 of the parts' ``repr`` joined by NUL bytes."""
    text = "\x00".join(repr(p) for p in parts).encode("utf-8")
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "big")


def item_rng(family: str, version: str, seed: int, index: int) -> random.Random:
    """The RNG of one generated item.

    The variant is deliberately not part of the key: item ``i`` of the
    interventional split is the twin of item ``i`` of the counterfactual split
    (same program, same query), with its latents revealed.
    """
    return random.Random(derive_seed("executable_cf", family, version, int(seed), int(index)))
