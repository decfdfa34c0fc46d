"""Batched per-example gradients of the LoRA parameters, and LESS's Adam transform.

Why hooks rather than ``torch.func.vmap``: ``vmap`` over a transformers model
trips on the library's data-dependent checks (padding warnings, mask
construction) and falls back to per-example loops for SDPA's backward. For a
linear layer ``y = x W^T + b`` the gradient of one example's loss is
``sum_t g_t x_t^T`` (``g`` = gradient at the output), and every LoRA parameter
(``lora_A``/``lora_B``) is the weight of an ``nn.Linear``. So one forward pass
records each LoRA module's input, one backward pass of the *sum* of the
per-example losses yields each example's output gradients (examples do not
interact: right padding + causal attention), and an ``einsum`` per module gives
all per-example weight gradients at once: the Opacus / "ghost" technique.
:meth:`PerExampleGradients.factors` returns the two factors (inputs, output
gradients) per module without forming the gradients, for the factored
projection and for forming one module's gradients at a time.
:func:`loop_per_example_gradients` is the one-backward-per-example reference
that the tests and the benchmark compare against.

The per-example loss is LESS's: mean token cross-entropy over the label tokens.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch

from selection.bids.data import IGNORE


def per_example_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``(B,)`` mean next-token cross-entropy over each example's label tokens (0 when it has none)."""
    logits = logits[:, :-1].float()
    target = labels[:, 1:]
    mask = target != IGNORE
    token_loss = torch.nn.functional.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), target.clamp_min(0).reshape(-1), reduction="none"
    ).view(target.shape)
    counts = mask.sum(dim=1)
    return (token_loss * mask).sum(dim=1) / counts.clamp_min(1)


def trainable_parameters(model: torch.nn.Module) -> dict[str, torch.nn.Parameter]:
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


class PerExampleGradients:
    """Per-example gradients of every trainable parameter of ``model`` in one forward/backward.

    Every trainable parameter must be the weight or bias of an ``nn.Linear``
    (true of peft LoRA adapters); anything else raises ``TypeError`` at
    construction rather than giving wrong gradients later.
    """

    def __init__(self, model: torch.nn.Module):
        self.model = model
        self.modules: list[tuple[torch.nn.Linear, str | None, str | None]] = []
        covered: set[str] = set()
        for module_name, module in model.named_modules():
            own = [(pn, p) for pn, p in module.named_parameters(recurse=False) if p.requires_grad]
            if not own:
                continue
            if not isinstance(module, torch.nn.Linear):
                raise TypeError(
                    f"trainable parameter(s) {[module_name + '.' + pn for pn, _ in own]} belong to a "
                    f"{type(module).__name__}; batched per-example gradients support nn.Linear (LoRA) only"
                )
            prefix = module_name + "." if module_name else ""
            weight = prefix + "weight" if module.weight.requires_grad else None
            bias = prefix + "bias" if module.bias is not None and module.bias.requires_grad else None
            self.modules.append((module, weight, bias))
            covered.update(n for n in (weight, bias) if n)
        self.names = sorted(covered)
        if not self.names:
            raise ValueError("the model has no trainable parameter to take gradients of")

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        params = dict(self.model.named_parameters())
        return {name: tuple(params[name].shape) for name in self.names}

    def factors(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                labels: torch.Tensor) -> list["LinearFactors"]:
        """One forward/backward: every trainable module's inputs and per-example output gradients.

        The two Kronecker factors of each module's per-example gradient, in
        module order; :meth:`LinearFactors.gradients` expands them and
        :class:`~selection.bids.projection.FactoredProjector` projects them
        without expanding.
        """
        records: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {}

        def hook(module, inputs, output):
            records.setdefault(id(module), []).append((inputs[0].detach(), output))

        handles = [module.register_forward_hook(hook) for module, _, _ in self.modules]
        try:
            with torch.enable_grad():
                logits = self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).logits
                losses = per_example_loss(logits, labels)
                outputs = [out for module, _, _ in self.modules for _, out in records.get(id(module), [])]
                if not outputs:
                    raise RuntimeError("no LoRA module was called in the forward pass")
                grads = iter(torch.autograd.grad(losses.sum(), outputs, allow_unused=True))
        finally:
            for handle in handles:
                handle.remove()
        del logits, losses, outputs
        batch = input_ids.shape[0]
        result = []
        for module, weight, bias in self.modules:
            calls = []
            for x, _ in records.pop(id(module), []):
                g = next(grads)
                if g is not None:
                    calls.append((x.reshape(batch, -1, x.shape[-1]), g.reshape(batch, -1, g.shape[-1])))
            result.append(LinearFactors(weight, bias, calls, batch, tuple(module.weight.shape), input_ids.device))
        return result

    def __call__(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                 labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{name: (B, *param.shape)}`` float32 per-example gradients (``B`` = batch size)."""
        return {name: grad for f in self.factors(input_ids, attention_mask, labels) for name, grad in f.gradients()}


@dataclass
class LinearFactors:
    """One ``nn.Linear``'s recorded inputs ``x`` ``(B, T, in)`` and output gradients ``g`` ``(B, T, out)``.

    Its per-example weight gradient is ``sum_t g_t x_t^T`` (summed over tokens
    and over the module's calls), its bias gradient ``sum_t g_t``.
    """

    weight: str | None
    bias: str | None
    calls: list[tuple[torch.Tensor, torch.Tensor]]
    batch: int
    weight_shape: tuple[int, int]
    device: torch.device

    def weight_gradient(self) -> torch.Tensor:
        out = torch.zeros(self.batch, *self.weight_shape, dtype=torch.float32, device=self.device)
        for x, g in self.calls:
            out += torch.einsum("bto,bti->boi", g.float(), x.float())
        return out

    def bias_gradient(self) -> torch.Tensor:
        out = torch.zeros(self.batch, self.weight_shape[0], dtype=torch.float32, device=self.device)
        for _, g in self.calls:
            out += g.float().sum(dim=1)
        return out

    def gradients(self):
        """``(name, (B, *shape))`` for the weight and the bias that are trainable, formed one at a time."""
        if self.weight:
            yield self.weight, self.weight_gradient()
        if self.bias:
            yield self.bias, self.bias_gradient()


def loop_per_example_gradients(model: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                               labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Reference: one forward/backward per (unpadded) example. Same output as :class:`PerExampleGradients`."""
    params = trainable_parameters(model)
    names = sorted(params)
    out = {name: [] for name in names}
    for i in range(input_ids.shape[0]):
        n = int(attention_mask[i].sum())
        with torch.enable_grad():
            logits = model(input_ids=input_ids[i:i + 1, :n], attention_mask=attention_mask[i:i + 1, :n],
                           use_cache=False).logits
            loss = per_example_loss(logits, labels[i:i + 1, :n]).sum()
            grads = torch.autograd.grad(loss, [params[name] for name in names], allow_unused=True)
        for name, g in zip(names, grads):
            out[name].append(torch.zeros_like(params[name], dtype=torch.float32) if g is None else g.float())
    return {name: torch.stack(gs) for name, gs in out.items()}


@dataclass
class AdamMoments:
    """A checkpoint's first/second Adam moments per parameter name, and the optimizer's betas/eps."""

    exp_avg: Mapping[str, torch.Tensor]
    exp_avg_sq: Mapping[str, torch.Tensor]
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    def to(self, device: torch.device | str) -> "AdamMoments":
        return AdamMoments({k: v.to(device) for k, v in self.exp_avg.items()},
                           {k: v.to(device) for k, v in self.exp_avg_sq.items()}, self.beta1, self.beta2, self.eps)


def adam_transform(grads: Mapping[str, torch.Tensor], moments: AdamMoments) -> dict[str, torch.Tensor]:
    """LESS's Adam-preconditioned gradient, per example (no bias correction, eps inside the root).

    ``m' = b1 m + (1 - b1) g``, ``v' = b2 v + (1 - b2) g^2``, ``G = m' / sqrt(v' + eps)``.
    """
    return {name: adam_transform_one(name, g, moments) for name, g in grads.items()}


def adam_transform_one(name: str, g: torch.Tensor, moments: AdamMoments) -> torch.Tensor:
    """:func:`adam_transform` of one parameter's per-example gradients ``(B, *shape)``."""
    if name not in moments.exp_avg:
        raise KeyError(f"the checkpoint's optimizer state has no moments for parameter {name!r}")
    m = moments.exp_avg[name].to(g)
    v = moments.exp_avg_sq[name].to(g)
    m_new = moments.beta1 * m + (1 - moments.beta1) * g
    v_new = moments.beta2 * v + (1 - moments.beta2) * g * g
    return m_new / torch.sqrt(v_new + moments.eps)
