"""The warm-up checkpoint format: LoRA adapter + optimizer state keyed by parameter name.

Why our own format: LESS needs the Adam moments of every LoRA parameter, and a
``Trainer`` checkpoint keys them by position (LESS had to switch on FSDP to get
names, LESS issues #4/#10/#13/#44). A checkpoint here is a folder
``epoch-{e}/`` holding

- the peft adapter (``adapter_config.json``, ``adapter_model.safetensors``),
- ``optimizer.pt``: ``{"names": [...], "optimizer": state_dict, "scheduler": state_dict}``
  (``names[k]`` is the parameter at optimizer index ``k``),
- ``state.json``: epoch, steps, the learning rate of every step, their mean
  (the checkpoint weight of the influence matrix) and the settings that made it.

A folder is written under a temporary name and renamed when complete, so a
checkpoint either exists whole or not at all.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from cf_tasks.jsonl import atomic_directory, write_json

STATE_FILE = "state.json"
OPTIMIZER_FILE = "optimizer.pt"


@dataclass
class CheckpointInfo:
    path: Path
    epoch: int
    state: dict[str, Any]

    @property
    def avg_lr(self) -> float:
        return float(self.state["avg_lr"])


def checkpoint_dir(root: str | os.PathLike, epoch: int) -> Path:
    return Path(root) / f"epoch-{epoch}"


def list_checkpoints(root: str | os.PathLike) -> list[CheckpointInfo]:
    """Complete checkpoints under ``root``, by epoch."""
    root = Path(root)
    found = []
    if not root.is_dir():
        return found
    for child in root.iterdir():
        if not child.name.startswith("epoch-") or not (child / STATE_FILE).is_file():
            continue
        try:
            epoch = int(child.name.split("-", 1)[1])
        except ValueError:
            continue
        state = json.loads((child / STATE_FILE).read_text(encoding="utf-8"))
        found.append(CheckpointInfo(child, epoch, state))
    return sorted(found, key=lambda c: c.epoch)


def write_checkpoint(root: str | os.PathLike, epoch: int, state: dict[str, Any],
                     write_contents: Callable[[Path], None]) -> CheckpointInfo:
    """Create ``epoch-{epoch}`` atomically: ``write_contents(tmp_dir)`` fills it, then it is renamed."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = checkpoint_dir(root, epoch)
    with atomic_directory(final) as tmp:
        write_contents(tmp)
        write_json(tmp / STATE_FILE, state)
    return CheckpointInfo(final, epoch, state)


def save_optimizer(path: Path, names: list[str], optimizer, scheduler) -> None:
    import torch

    from cf_tasks.jsonl import atomic_write

    with atomic_write(path / OPTIMIZER_FILE, "wb") as handle:
        torch.save({"names": names, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, handle)


def load_optimizer_file(path: str | os.PathLike) -> dict[str, Any]:
    import torch

    file = Path(path) / OPTIMIZER_FILE
    if not file.is_file():
        raise FileNotFoundError(f"{path}: no {OPTIMIZER_FILE} (not a BIDS warm-up checkpoint)")
    return torch.load(file, map_location="cpu", weights_only=True)


def load_adam_moments(path: str | os.PathLike):
    """The checkpoint's :class:`~selection.bids.gradients.AdamMoments` (exp_avg/exp_avg_sq by name)."""
    from selection.bids.gradients import AdamMoments

    saved = load_optimizer_file(path)
    names = saved["names"]
    opt = saved["optimizer"]
    group = opt["param_groups"][0]
    exp_avg, exp_avg_sq = {}, {}
    for index, name in enumerate(names):
        state = opt["state"].get(index)
        if state is None:
            raise ValueError(f"{path}: optimizer state has no moments for {name!r} (was it ever updated?)")
        exp_avg[name] = state["exp_avg"]
        exp_avg_sq[name] = state["exp_avg_sq"]
    beta1, beta2 = group.get("betas", (0.9, 0.999))
    return AdamMoments(exp_avg, exp_avg_sq, float(beta1), float(beta2), float(group.get("eps", 1e-8)))


def checkpoint_weights(checkpoints: list[CheckpointInfo]) -> list[float]:
    """LESS's checkpoint weights: each epoch's average learning rate, normalised to sum to 1."""
    lrs = [c.avg_lr for c in checkpoints]
    total = sum(lrs)
    if total <= 0:
        raise ValueError(f"the checkpoints' average learning rates sum to zero ({len(checkpoints)} warm-up epoch(s), "
                         f"average LR {lrs}), so LESS cannot weight them: the warm-up had too few optimizer steps "
                         "for its schedule to leave a non-zero rate; use more warm-up rows (--warmup-fraction, a "
                         "larger pool), more --epochs or a smaller --batch-size")
    return [lr / total for lr in lrs]
