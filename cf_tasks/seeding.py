"""Per-item random streams derived by hashing.

Why hashing: ``Random(seed + index)`` makes seed 1 item 1 equal seed 2 item 0
(reasoning-gym's flaw). Hashing ``(namespace, family, version, seed, index,
level, knobs)`` with SHA-256 gives independent streams that are identical
across processes, platforms and ``PYTHONHASHSEED`` values (``hash()`` is never
used).

Why the level and the knobs are part of the key: without them the easy and the
medium item ``i`` at one seed start from the same stream and share function
names and skeletons; with them, changing any knob or the level gives an
unrelated item.
"""

from __future__ import annotations

import hashlib
import json
import random
from typing import Any, Mapping


def derive_seed(*parts: object) -> int:
    """A 64-bit integer from the SHA-256 of the parts' ``repr`` joined by NUL bytes."""
    text = "\x00".join(repr(p) for p in parts).encode("utf-8")
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "big")


def config_fingerprint(config: Any) -> str:
    """Canonical JSON of a config (a dataclass with ``to_dict`` or a mapping); tuples become lists.

    A string is taken to be a fingerprint already (callers generating many items compute it once).
    """
    if isinstance(config, str):
        return config
    data = config.to_dict() if hasattr(config, "to_dict") else dict(config or {})
    return json.dumps(data, sort_keys=True, separators=(",", ":"), default=list)


def item_rng(family: str, version: str, seed: int, index: int, *, level: str | None = None,
             config: Any | Mapping[str, Any] | None = None) -> random.Random:
    """The RNG of one generated item.

    ``level`` and ``config`` (every knob, see :func:`config_fingerprint`) enter
    the key when given, so that levels and knob settings at one seed draw
    independent items. The variant is deliberately not part of the key: item
    ``i`` of the interventional split is the twin of item ``i`` of the
    counterfactual split (same program, same query), with its latents revealed.
    """
    parts: list[object] = ["executable_cf", family, version, int(seed), int(index)]
    if level is not None or config is not None:
        parts += [level, None if config is None else config_fingerprint(config)]
    return random.Random(derive_seed(*parts))
