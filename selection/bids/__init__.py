"""BIDS (balanced influence-based data selection) on LESS gradient features.

Modules, one job each: ``config`` (typed stage configs), ``data`` (rows -> token
ids and loss labels), ``warmup`` (LoRA warm-up with named optimizer state),
``checkpoints`` (their format), ``gradients`` (batched per-example LoRA
gradients and their factors, the Adam transform), ``projection`` (seeded
dense and LoGra-factored projections, identical on every device),
``features`` (resumable feature shards), ``influence`` (the memory-mapped
matrix), ``greedy`` (BIDS and the baselines), ``diagnostics``,
``distributed`` (ranks of a multi-process launch), ``memory`` (the dry-run
estimate), ``pipeline`` (the stages end to end) and ``plugin`` (the ``bids``
selector and its CLI).
See ``docs/bids.md``.
"""
