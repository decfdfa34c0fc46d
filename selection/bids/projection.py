"""Random projections of per-example LoRA gradients (LESS / TRAK / LoGra), seeded and device-independent.

Three projectors share one interface (:class:`Projector`), selected by
``--projection`` (:data:`PROJECTIONS`):

- ``dense``: a Rademacher matrix ``P`` (``n_params x dim``, entries +-1,
  scaled by ``1/sqrt(dim)``), the projection of LESS (Xia et al., 2024), which
  uses TRAK's (Park et al., 2023). ``P`` is never stored whole: it is cut into
  blocks of 1024 gradient coordinates, and each block is generated *on the
  compute device* from a counter-based hash (:func:`rademacher`) keyed by
  ``(seed, parameter name, block)``. Integer arithmetic only, so the same seed
  gives the same bits on CPU and CUDA, in every process, for any batch.
  Blocks are cached up to a memory limit; beyond it they are regenerated for
  every batch, so this projector's cost has a per-batch term.
- ``factored``: LoGra's Kronecker-factored projection (Choe et al., 2024). The
  per-example gradient of a linear layer is ``G = sum_t g_t x_t^T`` (output
  gradient times input, summed over tokens), so ``P_out^T G P_in =
  sum_t (P_out^T g_t)(P_in^T x_t)^T``: project the two factors with two small
  random matrices (``k_out * k_in = dim``) and never form ``G``. Every module's
  ``k_out x k_in`` block is added into the same ``dim``-vector, which makes the
  whole map one linear random projection of the concatenated gradient (see
  ``docs/bids.md`` for the math and how LoRA's A/B factors are handled).
- ``dense_host``: the previous projector (blocks drawn with a CPU
  ``torch.Generator`` and copied to the device). It reproduces the features of
  work folders made before ``dense``; it is host-bound and slow at scale.

Features are sums of per-parameter contributions, so the projectors work one
LoRA module at a time (:meth:`Projector.project_factors`): only one module's
per-example gradient (or its factors) is alive at once.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Mapping, Sequence

import torch

from cf_tasks.seeding import derive_seed

if TYPE_CHECKING:
    from selection.bids.gradients import LinearFactors

# Gradient coordinates per generated block of a dense projector. Part of the matrix's definition (each
# block has its own key), so it is a constant, not a setting: changing it would change every feature.
BLOCK_ROWS = 1024

_M32 = 0xFFFFFFFF


# -- a device-independent Rademacher generator -------------------------------------------------------------

def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """``(x * c) mod 2**32`` for ``0 <= x < 2**32``, in place, in int64 without ever overflowing it.

    A constant below ``2**31`` keeps the product below ``2**63``; a larger one
    is applied in 16-bit halves.
    """
    if c < 1 << 31:
        return x.mul_(c).bitwise_and_(_M32)
    high = (x * (c >> 16)).bitwise_and_(0xFFFF).mul_(65536)
    return x.mul_(c & 0xFFFF).add_(high).bitwise_and_(_M32)


def _lowbias32(x: torch.Tensor) -> torch.Tensor:
    """Chris Wellons' ``lowbias32`` integer hash (a bijection of 32-bit words with strong avalanche), in place."""
    x.bitwise_xor_(x >> 16)
    _mul32(x, 0x7FEB352D)
    x.bitwise_xor_(x >> 15)
    _mul32(x, 0x846CA68B)
    return x.bitwise_xor_(x >> 16)


def hash_words(key: int, n: int, device: str | torch.device = "cpu") -> torch.Tensor:
    """Words ``0..n-1`` of the stream ``key``: ``lowbias32(lowbias32(i ^ k0) ^ k1)`` as int64 in ``[0, 2**32)``.

    ``k0``/``k1`` are the low/high 32 bits of the 64-bit ``key``. Only integer
    operations whose results stay below ``2**63``, so the words are the same
    on every device and platform (``tests/selection/test_bids_projection.py``
    checks them against an independent NumPy ``uint32`` implementation).
    """
    if n > 1 << 32:
        raise ValueError(f"a hashed stream has at most 2**32 words, {n} requested")
    words = torch.arange(n, dtype=torch.int64, device=device).bitwise_xor_(key & _M32)
    return _lowbias32(_lowbias32(words).bitwise_xor_((key >> 32) & _M32))


_SIGN_TABLES: dict[tuple[str, torch.dtype], torch.Tensor] = {}


def _sign_table(device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    """``(256, 8)``: row ``b`` holds +1 where bit ``i`` of byte ``b`` is set, else -1 (least significant first)."""
    cache_key = (str(device), dtype)
    table = _SIGN_TABLES.get(cache_key)
    if table is None:
        bits = (torch.arange(256).unsqueeze(1) >> torch.arange(8)) & 1
        table = _SIGN_TABLES[cache_key] = (bits * 2 - 1).to(device=device, dtype=dtype)
    return table


def rademacher(key: int, rows: int, cols: int, *, device: str | torch.device = "cpu",
               dtype: torch.dtype = torch.float32, out: torch.Tensor | None = None) -> torch.Tensor:
    """A ``rows x cols`` matrix of +-1 generated on ``device``; identical bits on every device.

    Entry ``(r, c)`` is +1 when bit ``c mod 32`` of word ``r * W + c // 32`` of
    :func:`hash_words` (``W = ceil(cols / 32)``) is set, else -1. Bytes are
    expanded through a 256-entry sign table, one gather per 8 entries. ``out``
    (``rows x 32 W``, contiguous) is filled instead of allocating: a fresh
    32 MiB block costs as much in page faults as generating it on a CPU.
    """
    device = torch.device(device)
    per_row = -(-cols // 32)
    width = per_row * 32
    if out is None:
        out = torch.empty(rows, width, device=device, dtype=dtype)
    elif tuple(out.shape) != (rows, width) or not out.is_contiguous():
        raise ValueError(f"out must be a contiguous {rows} x {width} tensor, got {tuple(out.shape)}")
    words = hash_words(key, rows * per_row, device)
    bytes_ = torch.stack([(words >> shift) & 255 for shift in (0, 8, 16, 24)], dim=1).reshape(-1)
    torch.index_select(_sign_table(device, out.dtype), 0, bytes_, out=out.view(-1, 8))
    return out if cols == width else out[:, :cols]


# -- the projector interface -------------------------------------------------------------------------------

class Projector(ABC):
    """Maps per-example gradients of named parameters to ``(B, dim)`` features (a fixed linear map).

    ``shapes`` names every parameter the features cover; the matrix depends on
    the names and the seed, not on their order or on the batch.
    """

    kind = ""

    def __init__(self, shapes: Mapping[str, Sequence[int]], dim: int, seed: int = 0, *,
                 device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
        if dim < 1:
            raise ValueError(f"proj_dim must be at least 1, got {dim}")
        self.shapes = {name: tuple(int(s) for s in shapes[name]) for name in sorted(shapes)}
        self.names = list(self.shapes)
        self.numel = {name: math.prod(shape) for name, shape in self.shapes.items()}
        self.dim = int(dim)
        self.seed = int(seed)
        self.device = torch.device(device)
        self.dtype = dtype

    @property
    def n_params(self) -> int:
        return sum(self.numel.values())

    def _check(self, name: str, grad: torch.Tensor) -> None:
        if name not in self.shapes:
            raise KeyError(f"the projector does not cover parameter {name!r}")
        if tuple(grad.shape[1:]) != self.shapes[name]:
            raise ValueError(f"{name}: gradient shape {tuple(grad.shape[1:])}, expected {self.shapes[name]}")

    @abstractmethod
    def project_parameter(self, name: str, grad: torch.Tensor) -> torch.Tensor:
        """``(B, dim)``: the contribution of parameter ``name``'s per-example gradients ``(B, *shape)``."""

    def project_factors(self, factors: "LinearFactors") -> torch.Tensor:
        """``(B, dim)``: the contribution of one linear module, from its recorded inputs and output gradients.

        The default forms the module's per-example gradients and projects them;
        :class:`FactoredProjector` projects the factors instead.
        """
        out = None
        for name, grad in factors.gradients():
            part = self.project_parameter(name, grad)
            out = part if out is None else out + part
        return out

    def project(self, grads: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """``(B, dim)`` features of whole per-example gradients ``{name: (B, *shape)}``."""
        missing = [n for n in self.names if n not in grads]
        if missing:
            raise KeyError(f"gradients lack parameter(s) {missing[:3]}")
        out = None
        for name in self.names:
            part = self.project_parameter(name, grads[name])
            out = part if out is None else out + part
        return out

    def describe(self) -> str:
        """One line on the projector's cost model, logged by the feature stage."""
        return f"{self.kind} projection of {self.n_params:,} LoRA parameters to {self.dim}"


class _BlockProjector(Projector):
    """Dense ``+-1/sqrt(dim)`` projection in blocks of :data:`BLOCK_ROWS` coordinates, cached up to a limit."""

    def __init__(self, shapes, dim, seed=0, *, device="cpu", dtype=torch.float32, cache_bytes: int = 2 << 30):
        super().__init__(shapes, dim, seed, device=device, dtype=dtype)
        self.block_rows = BLOCK_ROWS
        self.cache_bytes = int(cache_bytes)
        self._cache: dict[tuple[str, int], torch.Tensor] = {}
        self._cached = 0
        self._scratch: torch.Tensor | None = None

    @abstractmethod
    def _generate(self, name: str, index: int, rows: int, scratch: torch.Tensor | None) -> torch.Tensor:
        """Unscaled +-1 block ``(rows, dim)`` on ``self.device`` (written into ``scratch`` when given)."""

    def block(self, name: str, index: int) -> torch.Tensor:
        """Rows ``[index * block_rows, ...)`` of parameter ``name``'s projection block (unscaled +-1).

        A block that does not fit the cache is generated into one reused
        buffer, so it is valid only until the next call.
        """
        key = (name, index)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        rows = min(self.block_rows, self.numel[name] - index * self.block_rows)
        size = rows * self.dim * torch.finfo(self.dtype).bits // 8
        if self._cached + size <= self.cache_bytes:
            matrix = self._cache[key] = self._generate(name, index, rows, None)
            self._cached += size
            return matrix
        if self._scratch is None:
            self._scratch = torch.empty(self.block_rows, -(-self.dim // 32) * 32, device=self.device,
                                        dtype=self.dtype)
        return self._generate(name, index, rows, self._scratch[:rows])

    def n_blocks(self, name: str) -> int:
        return math.ceil(self.numel[name] / self.block_rows)

    def project_parameter(self, name: str, grad: torch.Tensor) -> torch.Tensor:
        self._check(name, grad)
        batch = grad.shape[0]
        flat = grad.reshape(batch, -1).to(device=self.device, dtype=self.dtype)
        out = torch.zeros(batch, self.dim, dtype=torch.float32, device=self.device)
        for index in range(self.n_blocks(name)):
            lo = index * self.block_rows
            out += (flat[:, lo:lo + self.block_rows] @ self.block(name, index)).float()
        return out / math.sqrt(self.dim)

    @property
    def matrix_bytes(self) -> int:
        return self.n_params * self.dim * torch.finfo(self.dtype).bits // 8

    def describe(self) -> str:
        share = min(1.0, self.cache_bytes / max(1, self.matrix_bytes))
        line = (f"{super().describe()}: matrix {self.matrix_bytes / 2**30:,.1f} GiB, the cache "
                f"({self.cache_bytes / 2**30:.1f} GiB) holds {share:.1%}")
        if share < 1:
            line += (f"; every batch regenerates {(1 - share) * self.n_params * self.dim:.3g} entries, so use the "
                     "largest --grad-batch-size that fits, or --projection factored")
        return line


class DenseProjector(_BlockProjector):
    """LESS/TRAK's dense Rademacher projection, blocks generated on the compute device by :func:`rademacher`."""

    kind = "dense"

    def _generate(self, name, index, rows, scratch):
        key = derive_seed("bids-dense-projection", self.seed, name, index)
        block = rademacher(key, rows, self.dim, device=self.device, dtype=self.dtype, out=scratch)
        return block if scratch is not None or block.is_contiguous() else block.contiguous()


class HostDenseProjector(_BlockProjector):
    """The previous dense projector: blocks drawn by a seeded CPU ``torch.Generator``, then copied to the device."""

    kind = "dense_host"

    def _generate(self, name, index, rows, scratch):  # the previous code path, unchanged (no scratch buffer)
        gen = torch.Generator(device="cpu")
        gen.manual_seed(derive_seed("bids-rademacher", self.seed, name, index) % (1 << 63))
        bits = torch.randint(0, 2, (rows, self.dim), generator=gen, dtype=torch.int8)
        return (bits.to(self.dtype) * 2 - 1).to(self.device)


# -- LoGra's Kronecker-factored projection -----------------------------------------------------------------

@dataclass(frozen=True)
class KroneckerSplit:
    """How one ``out x in`` weight is projected: ``k_out * k_in = dim``; ``identity`` names an exact side."""

    k_out: int
    k_in: int
    identity: str | None  # "out", "in" or None


def kronecker_split(out_features: int, in_features: int, dim: int) -> KroneckerSplit:
    """The factor sizes of a weight's projection.

    A side of size ``s`` (LoRA's rank ``r`` for ``lora_A``'s output and
    ``lora_B``'s input) is kept exact when ``s`` divides ``dim`` and
    ``s <= 2 sqrt(dim)``; the other side is then projected to ``dim / s``.
    Below that size the exact side beats a random one (for a rank-one gradient
    the relative variance of a squared norm is ``2 s / dim`` against about
    ``4 / sqrt(dim)`` for a balanced split). Otherwise both sides are random,
    with the divisor pair of ``dim`` closest to ``sqrt(dim)``, the larger
    factor on the larger side. At most one side is ever exact: two exact
    sides would add different modules' gradients coordinate by coordinate.
    """
    small = min(out_features, in_features)
    if dim % small == 0 and small * small <= 4 * dim and small < dim:
        other = dim // small
        if out_features <= in_features:
            return KroneckerSplit(small, other, "out")
        return KroneckerSplit(other, small, "in")
    low = max(d for d in range(1, math.isqrt(dim) + 1) if dim % d == 0)
    high = dim // low
    if out_features >= in_features:
        return KroneckerSplit(high, low, None)
    return KroneckerSplit(low, high, None)


class FactoredProjector(Projector):
    """LoGra-style projection: ``vec(P_out^T G P_in)`` per weight, summed over modules; factors never expanded.

    Weights (2-D parameters of linear modules) get the Kronecker projection;
    any other parameter (a bias) a small dense :class:`DenseProjector`. The
    factor matrices are generated once on the device and kept (about 200 MiB
    for Llama-3-8B with LoRA r = 128 on q/k/v/o at ``dim`` 8192).
    """

    kind = "factored"

    def __init__(self, shapes, dim, seed=0, *, device="cpu", dtype=torch.float32, cache_bytes: int = 2 << 30):
        super().__init__(shapes, dim, seed, device=device, dtype=dtype)
        self.splits = {name: kronecker_split(*shape, self.dim) for name, shape in self.shapes.items()
                       if len(shape) == 2}
        others = {name: shape for name, shape in self.shapes.items() if name not in self.splits}
        self._dense = DenseProjector(others, dim, seed, device=device, dtype=dtype, cache_bytes=cache_bytes) \
            if others else None
        self._factors: dict[tuple[str, str], torch.Tensor | None] = {}

    def factor(self, name: str, side: str) -> torch.Tensor | None:
        """``P_out`` (``out x k_out``) or ``P_in`` (``in x k_in``) of weight ``name``, scaled; ``None`` = identity."""
        cache_key = (name, side)
        if cache_key not in self._factors:
            split = self.splits[name]
            out_features, in_features = self.shapes[name]
            rows, cols = (out_features, split.k_out) if side == "out" else (in_features, split.k_in)
            if split.identity == side:
                self._factors[cache_key] = None
            else:
                key = derive_seed("bids-kronecker-projection", self.seed, name, side)
                signs = rademacher(key, rows, cols, device=self.device, dtype=self.dtype)
                self._factors[cache_key] = signs / math.sqrt(cols)
        return self._factors[cache_key]

    @property
    def factor_bytes(self) -> int:
        element = torch.finfo(self.dtype).bits // 8
        total = 0
        for name, split in self.splits.items():
            out_features, in_features = self.shapes[name]
            total += (split.identity != "out") * out_features * split.k_out
            total += (split.identity != "in") * in_features * split.k_in
        return total * element

    def project_parameter(self, name: str, grad: torch.Tensor) -> torch.Tensor:
        self._check(name, grad)
        if name not in self.splits:
            return self._dense.project_parameter(name, grad)
        g = grad.to(device=self.device, dtype=self.dtype)
        p_out, p_in = self.factor(name, "out"), self.factor(name, "in")
        if p_in is not None:
            g = g @ p_in  # (B, out, k_in)
        if p_out is not None:
            g = p_out.T @ g  # (B, k_out, k_in)
        return g.reshape(g.shape[0], self.dim).float()

    def project_factors(self, factors: "LinearFactors") -> torch.Tensor:
        name = factors.weight
        if name is None:
            return super().project_factors(factors)
        p_out, p_in = self.factor(name, "out"), self.factor(name, "in")
        out = None
        for x, g in factors.calls:
            x = x.to(device=self.device, dtype=self.dtype)
            g = g.to(device=self.device, dtype=self.dtype)
            x = x if p_in is None else x @ p_in  # (B, T, k_in)
            g = g if p_out is None else g @ p_out  # (B, T, k_out)
            part = torch.einsum("bto,bti->boi", g, x).reshape(x.shape[0], self.dim).float()
            out = part if out is None else out + part
        if out is None:  # the module was never called: its gradient is zero
            out = torch.zeros(factors.batch, self.dim, dtype=torch.float32, device=self.device)
        if factors.bias is not None:
            out = out + self._dense.project_parameter(factors.bias, factors.bias_gradient())
        return out

    def describe(self) -> str:
        exact = sum(1 for s in self.splits.values() if s.identity)
        return (f"{super().describe()}: Kronecker factors {self.factor_bytes / 2**20:,.1f} MiB, generated once; "
                f"{exact} of {len(self.splits)} weight(s) keep their small side exact")


PROJECTIONS: dict[str, type[Projector]] = {cls.kind: cls for cls in (DenseProjector, FactoredProjector,
                                                                     HostDenseProjector)}


def make_projector(kind: str, shapes: Mapping[str, Sequence[int]], dim: int, seed: int = 0, *,
                   device: str | torch.device = "cpu", cache_bytes: int = 2 << 30) -> Projector:
    try:
        cls = PROJECTIONS[kind]
    except KeyError:
        raise ValueError(f"projection must be one of {', '.join(PROJECTIONS)}, got {kind!r}") from None
    return cls(shapes, dim, seed, device=device, cache_bytes=cache_bytes)


def l2_normalize(features: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit norm, so a dot product is a cosine; an all-zero row stays zero."""
    norms = features.norm(dim=1, keepdim=True)
    return torch.where(norms > 0, features / norms.clamp_min(torch.finfo(features.dtype).tiny), features)
