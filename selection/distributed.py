"""Which process this is under a multi-process launch, and the few collectives the selectors need.

``accelerate launch --multi_gpu --num_processes N`` and ``torchrun
--nproc_per_node N`` start N processes with ``WORLD_SIZE``/``RANK`` in their
environment. :func:`init_ranks` joins them through ``accelerate``'s
``PartialState``: NCCL on GPUs, gloo on CPUs (``PartialState(cpu=True)``; the
plain ``PartialState()`` sees no GPU on a CPU machine and leaves every process
alone as a world of one, all writing the same work folder). A launch that left
``WORLD_SIZE > 1`` in the environment but formed a smaller group is refused.
``accelerate launch --cpu --num_processes N`` leaves no such trace: it starts
a single process (accelerate 1.x), so the run is an ordinary one-process run.

Shared by GRAPE and BIDS, so both recognise the same launchers and refuse the
same broken launches. GRAPE scores shard ``k`` on rank ``k mod N``; the BIDS
stages split warm-up micro-batches (gradients summed across ranks) and feature
shards the same way; rank 0 alone writes checkpoints, builds the matrix and
selects.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

# Environment variables in which launchers announce the number of processes (torchrun/accelerate, MPI).
WORLD_SIZE_VARS = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


@dataclass(frozen=True)
class Ranks:
    """This process's place in the job (``rank`` of ``world``); a single process is ``Ranks()``."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def owns(self, index: int) -> bool:
        """Whether work item ``index`` (a feature shard, a micro-batch) is this rank's."""
        return index % self.world == self.rank

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()

    def sum_(self, tensors) -> None:
        """Sum each tensor over all ranks, in place (gloo and NCCL both support SUM)."""
        if self.world > 1:
            import torch.distributed as dist

            for tensor in tensors:
                dist.all_reduce(tensor, op=dist.ReduceOp.SUM)


def launched_world_size(environ=os.environ) -> int:
    """The number of processes a launcher announced in the environment (1 when none)."""
    sizes = []
    for name in WORLD_SIZE_VARS:
        value = environ.get(name)
        if value:
            try:
                sizes.append(int(value))
            except ValueError:
                raise ValueError(f"environment variable {name}={value!r} is not a process count") from None
    return max(sizes, default=1)


def init_ranks(device: str = "auto") -> Ranks:
    """Join the launched processes (no-op for a single process); refuse a launch whose group did not form."""
    launched = launched_world_size()
    if launched <= 1:
        return Ranks()
    import torch
    from accelerate import PartialState

    cpu = device == "cpu" or (device == "auto" and not torch.cuda.is_available())
    state = PartialState(cpu=cpu)
    if state.num_processes != launched:
        raise ValueError(
            f"launched as one of {launched} processes (WORLD_SIZE etc. in the environment), but accelerate formed "
            f"a group of {state.num_processes} ({state.distributed_type}): each process would run the whole job "
            "alone and write the same --work-dir. Launch with `accelerate launch --multi_gpu --num_processes N` or "
            "`torchrun --nproc_per_node N` (on CPUs: add --device cpu), or run a single process")
    return Ranks(state.process_index, state.num_processes, state.local_process_index)


def rank_device(device: str, ranks: Ranks) -> str:
    """``device`` for this rank: each rank of a multi-GPU job takes the GPU of its local rank."""
    if ranks.world > 1 and device in ("cuda", "auto"):
        import torch

        if torch.cuda.is_available():
            return f"cuda:{ranks.local_rank}"
        return "cpu"
    return device
