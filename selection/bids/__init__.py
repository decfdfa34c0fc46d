"""BIDS (balanced influence-based data selection) on LESS gradient features.

Modules, one job each: ``config`` (typed stage configs), ``data`` (rows -> token
ids and loss labels), ``warmup`` (LoRA warm-up with named optimizer state),
``checkpoints`` (their format), ``gradients`` (batched per-example LoRA
gradients, the Adam transform), ``projection`` (seeded Rademacher projection),
``features`` (resumable feature shards), ``influence`` (the memory-mapped
matrix), ``greedy`` (BIDS and the baselines), ``diagnostics``, ``pipeline``
(the stages end to end) and ``plugin`` (the ``bids`` selector and its CLI).
See ``docs/bids.md``.
"""
