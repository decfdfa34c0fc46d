"""LoRA warm-up of the selection model (LESS step 1), resumable at epoch boundaries.

A small explicit training loop rather than ``transformers.Trainer``: it saves
the optimizer state keyed by parameter *name* (see
:mod:`selection.bids.checkpoints`), records the learning rate of every step
(the checkpoint weights are the per-epoch means), and makes resumption exact:
the data order and the dropout RNG of epoch ``e`` are derived from
``(train_seed, e)``, so training epochs 1-2, stopping, and resuming for 3-4
gives the same adapter bytes as one uninterrupted run.

Loss: the mean cross-entropy over all label tokens of an optimizer step's
examples (``batch_size`` examples, accumulated over micro-batches), as
``Trainer`` computes it.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from cf_tasks.jsonl import write_json
from cf_tasks.progress import progress_bar
from cf_tasks.seeding import derive_seed
from selection.bids.checkpoints import (CheckpointInfo, list_checkpoints, load_optimizer_file, save_optimizer,
                                        write_checkpoint)
from selection.bids.config import WarmupConfig
from selection.bids.data import IGNORE, Encoded, collate, pad_token_id
from selection.distributed import Ranks

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1


def lr_at(step: int, total: int, warmup_steps: int, scheduler: str) -> float:
    """Multiplier of the peak LR at optimizer step ``step`` (0-based), as transformers' schedulers."""
    if step < warmup_steps:
        return step / max(1, warmup_steps)
    progress = (step - warmup_steps) / max(1, total - warmup_steps)
    if scheduler == "linear":
        return max(0.0, 1.0 - progress)
    if scheduler == "cosine":
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))
    raise ValueError(f"lr_scheduler must be 'linear' or 'cosine', got {scheduler!r}")


def warmup_subset(n_rows: int, config: WarmupConfig) -> np.ndarray:
    """LESS's subset: the first ``int(n * fraction)`` entries of a seeded permutation (at least one)."""
    size = max(1, int(n_rows * config.warmup_fraction))
    return np.random.default_rng(config.warmup_data_seed).permutation(n_rows)[:size]


def run_warmup(model_path: str, examples: Sequence[Encoded], config: WarmupConfig, out_dir: str | Path, *,
               torch_dtype: str = "float32", device: str = "cpu", progress: bool = True,
               fingerprint: str = "", ranks: Ranks = Ranks()) -> list[CheckpointInfo]:
    """Train (or finish training) the warm-up LoRA; returns the checkpoints of all epochs.

    ``fingerprint`` identifies the data; a work folder holding checkpoints made
    from other data or settings is refused instead of silently mixed. Under a
    multi-process launch the micro-batches of every optimizer step are split
    across ranks (micro-batch ``m`` on rank ``m mod world``) and the LoRA
    gradients summed across ranks before each step, so the step is the
    single-process step up to the order of floating-point additions; rank 0
    writes the checkpoints.
    """
    import torch

    from selection.bids.modeling import load_base_model, load_tokenizer, lora_config, mark_lora_trainable

    config.validate()
    out_dir = Path(out_dir)
    subset = warmup_subset(len(examples), config)
    # Gradient checkpointing recomputes the same activations (and dropout masks): it does not change the result.
    recipe = {k: v for k, v in dataclasses.asdict(config).items() if k != "gradient_checkpointing"}
    settings = {"format": FORMAT_VERSION, "model": str(model_path), "warmup": recipe,
                "torch_dtype": torch_dtype, "n_examples": len(examples), "data_fingerprint": fingerprint}
    done = [c for c in list_checkpoints(out_dir) if c.epoch <= config.epochs]
    for c in done:
        if c.state.get("settings") != settings:
            raise ValueError(
                f"{c.path}: this warm-up checkpoint was made with other settings or data; use a new --work-dir "
                "(or delete the folder) to start over"
            )
    if len(done) == config.epochs and [c.epoch for c in done] == list(range(1, config.epochs + 1)):
        logger.info("warm-up: all %d checkpoint(s) present in %s; skipping", config.epochs, out_dir)
        return done
    if ranks.is_main:
        write_json(out_dir / "subset.json", {"indices": [int(i) for i in subset]})

    tokenizer = load_tokenizer(model_path)
    pad = pad_token_id(tokenizer)
    base = load_base_model(model_path, torch_dtype, device)
    from peft import get_peft_model, set_peft_model_state_dict

    torch.manual_seed(derive_seed("bids-warmup-init", config.train_seed) % (1 << 63))
    model = get_peft_model(base, lora_config(base, r=config.lora_r, alpha=config.lora_alpha,
                                             dropout=config.lora_dropout, target_modules=config.target_modules))
    names = mark_lora_trainable(model)
    if config.gradient_checkpointing:
        # Recompute each layer's activations in the backward pass; the frozen embeddings must pass gradients on.
        model.enable_input_require_grads()
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    params = dict(model.named_parameters())
    optimizer = torch.optim.AdamW([params[n] for n in names], lr=config.learning_rate,
                                  betas=(config.adam_beta1, config.adam_beta2), eps=config.adam_eps,
                                  weight_decay=config.weight_decay)
    steps_per_epoch = math.ceil(len(subset) / config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    warmup_steps = math.ceil(total_steps * config.warmup_ratio)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_at(step, total_steps, warmup_steps, config.lr_scheduler))

    # Resume from the last consecutive complete epoch.
    start = 0
    for expected, c in enumerate(done, start=1):
        if c.epoch != expected:
            break
        start = c.epoch
    if start:
        last = done[start - 1]
        from safetensors.torch import load_file

        set_peft_model_state_dict(model, load_file(str(last.path / "adapter_model.safetensors")))
        saved = load_optimizer_file(last.path)
        if saved["names"] != names:
            raise ValueError(f"{last.path}: optimizer parameter names differ from the model's LoRA parameters")
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        logger.info("warm-up: resuming after epoch %d from %s", start, last.path)

    checkpoints = list(done[:start])
    step = start * steps_per_epoch
    bar = progress_bar(progress and ranks.is_main, total=total_steps, initial=start * steps_per_epoch,
                       desc="BIDS warm-up", unit="step")
    trainable = [params[n] for n in names]
    for epoch in range(start, config.epochs):
        model.train()
        order = np.random.default_rng(derive_seed("bids-warmup-order", config.train_seed, epoch)).permutation(subset)
        step_lrs: list[float] = []
        losses: list[float] = []
        for s in range(steps_per_epoch):
            batch = [examples[i] for i in order[s * config.batch_size:(s + 1) * config.batch_size]]
            n_tokens = sum(sum(1 for x in e.labels[1:] if x != IGNORE) for e in batch)
            step_lrs.append(scheduler.get_last_lr()[0])
            loss_sum = torch.zeros((), dtype=torch.float64, device=device)
            for m, lo in enumerate(range(0, len(batch), config.micro_batch_size)):
                if n_tokens == 0 or not ranks.owns(m):
                    continue
                # Dropout masks depend on (epoch, step, micro-batch) only: the same on any number of ranks.
                torch.manual_seed(derive_seed("bids-warmup-dropout", config.train_seed, epoch, s, m) % (1 << 63))
                ids, mask, labels = (t.to(device) for t in collate(batch[lo:lo + config.micro_batch_size], pad))
                with _autocast(config.mixed_precision, device):
                    logits = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
                logits = logits[:, :-1].float()
                target = labels[:, 1:]
                loss = torch.nn.functional.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=IGNORE, reduction="sum")
                (loss / n_tokens).backward()
                loss_sum += loss.detach()
            if ranks.world > 1 and n_tokens > 0:  # a step without label tokens is skipped by every rank alike
                for p in trainable:
                    if p.grad is None:
                        p.grad = torch.zeros_like(p)
                ranks.sum_([p.grad for p in trainable] + [loss_sum])
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(float(loss_sum) / max(1, n_tokens))
            step += 1
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{losses[-1]:.4f}")
        state: dict[str, Any] = {
            "epoch": epoch + 1, "global_step": step, "step_lrs": step_lrs,
            "avg_lr": float(np.mean(step_lrs)), "mean_loss": float(np.mean(losses)), "settings": settings,
        }

        def contents(tmp: Path) -> None:
            model.save_pretrained(str(tmp))
            save_optimizer(tmp, names, optimizer, scheduler)

        if ranks.is_main:
            checkpoints.append(write_checkpoint(out_dir, epoch + 1, state, contents))
        else:
            checkpoints.append(CheckpointInfo(out_dir / f"epoch-{epoch + 1}", epoch + 1, state))
        ranks.barrier()  # every rank sees the checkpoint before the next stage reads it
        logger.info("warm-up: epoch %d done (mean loss %.4f, average LR %.3g)", epoch + 1, state["mean_loss"],
                    state["avg_lr"])
    bar.close()
    return checkpoints


def _autocast(mixed_precision: str, device: str):
    """``torch.autocast`` in bfloat16 for ``bf16`` (the LoRA weights, gradients and Adam state stay float32)."""
    import contextlib

    import torch

    if mixed_precision == "no":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
