"""Rademacher random projection of per-example gradients (the TRAK/LESS projector, seeded).

The projection matrix ``P`` (``n_params x dim``, entries +-1, scaled by
``1/sqrt(dim)`` so inner products are preserved in expectation) is never
stored whole: it is cut into blocks of gradient coordinates, and each block is
generated from a seed derived from ``(seed, parameter name, block number)``
with a CPU ``torch.Generator``. The same seed therefore gives the same matrix
in every process, on every device and for any batch composition, so training
and validation features computed in different runs are comparable. Blocks are
cached up to a memory limit; larger models regenerate them per batch (the cost
of a projection pass is then independent of the batch size, so use large
gradient batches).
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch

from cf_tasks.seeding import derive_seed

# Gradient coordinates per generated block. Part of the matrix's definition (each block has its own
# seed), so it is a constant, not a setting: changing it would change every feature.
BLOCK_ROWS = 1024


class RademacherProjector:
    """Projects ``{name: (B, *shape)}`` gradients to ``(B, dim)`` features."""

    def __init__(self, shapes: Mapping[str, Sequence[int]], dim: int, seed: int = 0, *,
                 device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32,
                 cache_bytes: int = 2 << 30):
        if dim < 1:
            raise ValueError(f"proj_dim must be at least 1, got {dim}")
        self.names = sorted(shapes)  # sorted: the matrix does not depend on parameter order
        self.numel = {name: int(math.prod(shapes[name])) for name in self.names}
        self.dim = int(dim)
        self.seed = int(seed)
        self.device = torch.device(device)
        self.dtype = dtype
        self.block_rows = BLOCK_ROWS
        self.cache_bytes = int(cache_bytes)
        self._cache: dict[tuple[str, int], torch.Tensor] = {}
        self._cached = 0

    @property
    def n_params(self) -> int:
        return sum(self.numel.values())

    def block(self, name: str, index: int) -> torch.Tensor:
        """Rows ``[index * block_rows, ...)`` of the projection block of parameter ``name``."""
        key = (name, index)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        rows = min(self.block_rows, self.numel[name] - index * self.block_rows)
        gen = torch.Generator(device="cpu")
        gen.manual_seed(derive_seed("bids-rademacher", self.seed, name, index) % (1 << 63))
        bits = torch.randint(0, 2, (rows, self.dim), generator=gen, dtype=torch.int8)
        matrix = (bits.to(self.dtype) * 2 - 1).to(self.device)
        size = matrix.numel() * matrix.element_size()
        if self._cached + size <= self.cache_bytes:
            self._cache[key] = matrix
            self._cached += size
        return matrix

    def project(self, grads: Mapping[str, torch.Tensor]) -> torch.Tensor:
        missing = [n for n in self.names if n not in grads]
        if missing:
            raise KeyError(f"gradients lack parameter(s) {missing[:3]}")
        batch = next(iter(grads.values())).shape[0]
        out = torch.zeros(batch, self.dim, dtype=torch.float32, device=self.device)
        for name in self.names:
            flat = grads[name].reshape(batch, -1).to(device=self.device, dtype=self.dtype)
            for index in range(math.ceil(self.numel[name] / self.block_rows)):
                lo = index * self.block_rows
                part = flat[:, lo:lo + self.block_rows]
                out += (part @ self.block(name, index)).float()
        return out / math.sqrt(self.dim)


def l2_normalize(features: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit norm, so a dot product is a cosine; an all-zero row stays zero."""
    norms = features.norm(dim=1, keepdim=True)
    return torch.where(norms > 0, features / norms.clamp_min(torch.finfo(features.dtype).tiny), features)
