"""Pure selection rules on per-candidate scores: best (GRAPE), reverse, random.

Ties are broken deterministically by the candidate's position in the pool (the
earlier one wins, in both directions), so equal inputs give equal outputs in
every process. Random mode draws from a stream seeded by ``(seed, instruction
key)`` hashed with SHA-256, so an instruction's draw does not depend on its
position in the file or on the other instructions. A candidate whose score is
None (skipped by the over-length policy) is never selected by best/reverse.
"""

from __future__ import annotations

import random
from typing import Sequence

from cf_tasks.seeding import derive_seed


def rank(scores: Sequence[float | None] | None, mode: str, *, n: int | None = None, seed: int = 0,
         key: str = "") -> list[int]:
    """Candidate indices in selection order (every scored one; the caller keeps the first k)."""
    if mode == "random":
        count = len(scores) if scores is not None else n
        if count is None:
            raise ValueError("random ranking needs n when there are no scores")
        order = list(range(count))
        random.Random(derive_seed("grape-random", int(seed), key)).shuffle(order)
        return order
    if scores is None:
        raise ValueError(f"mode {mode!r} needs scores")
    scored = [j for j, s in enumerate(scores) if s is not None]
    if mode == "best":
        return sorted(scored, key=lambda j: (-scores[j], j))  # type: ignore[operator]
    if mode == "reverse":
        return sorted(scored, key=lambda j: (scores[j], j))  # type: ignore[arg-type]
    raise ValueError(f"unknown mode {mode!r} (best, reverse, random)")


def select_top_k(scores: Sequence[float | None] | None, mode: str, k: int, *, n: int | None = None, seed: int = 0,
                 key: str = "") -> list[int]:
    return rank(scores, mode, n=n, seed=seed, key=key)[: max(0, k)]
