"""How a training run relates to the processes it was launched as: one group, one writer, a clean child.

Three guarantees, each the cheapest one that holds whatever the launcher did:

- *One distributed group.* Processes started together (``torchrun``,
  ``accelerate launch --multi_gpu``, ``mpirun``) must form one group; if the
  launcher says N > 1 but the trainer sees a world of 1, the N copies would
  each train and write the same output folder. :func:`check_process_group`
  refuses that. ``accelerate launch --cpu`` starts *one* process whatever
  ``--num_processes`` says; that is logged (:func:`launcher_notes`).
- *One writer per output folder.* The main process holds an exclusive
  ``flock`` on ``OUTPUT_DIR/.cf-train.lock`` for the whole run
  (:func:`claim_output_dir`), so two runs (or independent copies of one)
  never interleave checkpoints; the lock dies with its process, so a killed
  run leaves nothing stale.
- *Single-process work in a fresh child.* lm-eval's ``HFLM`` joins a
  multi-GPU launch's collectives when it sees more than one process, which
  ranks that already finished training never enter; and under DeepSpeed
  ZeRO-3, ``from_pretrained`` in the training process partitions the model
  it loads with collectives (observed here: merging the LoRA adapter on the
  main process alone deadlocked a 2-process ZeRO-3 run). The post-training
  evaluation and the LoRA merge therefore run as child processes
  (``cf-train evaluate --run-dir``, ``cf-train merge-lora``), started by the
  main process after every rank has saved, with the launcher's variables
  removed from their environment (:func:`evaluation_env`): plain
  one-process runs by construction, on any launcher.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path
from typing import IO, Any, Mapping

logger = logging.getLogger(__name__)

LOCK_NAME = ".cf-train.lock"


class LaunchError(Exception):
    """The processes of a run are not set up so that it can run correctly (the message says how to launch)."""

# Variables through which launchers (torchrun/accelerate, DeepSpeed, MPI, SLURM's srun) tell a process it is one
# of many; a child that must run alone gets none of them.
LAUNCHER_VARIABLES = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK", "GROUP_WORLD_SIZE",
                      "ROLE_RANK", "ROLE_NAME", "ROLE_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "NODE_RANK",
                      "CROSS_RANK", "CROSS_SIZE", "LOCAL_SIZE")
LAUNCHER_PREFIXES = ("ACCELERATE_", "TORCHELASTIC_", "DEEPSPEED_", "PMI_", "OMPI_", "MV2_", "PMIX_")
WORLD_SIZE_VARIABLES = ("WORLD_SIZE", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")


def launcher_world_size(env: Mapping[str, str] = os.environ) -> int:
    """How many processes the launcher says it started (1 for a plain ``python`` run)."""
    sizes = [int(env[k]) for k in WORLD_SIZE_VARIABLES if env.get(k, "").strip().isdigit()]
    return max(sizes, default=1)


def launcher_notes(env: Mapping[str, str] = os.environ) -> None:
    if env.get("ACCELERATE_USE_CPU", "").lower() == "true" and launcher_world_size(env) == 1:
        logger.warning("running as ONE process: `accelerate launch --cpu` starts one process whatever --num_processes "
                       "says; for N CPU processes use `accelerate launch --multi_gpu --num_processes N` (gloo)")


def check_process_group(num_processes: int, output_dir: Path, env: Mapping[str, str] = os.environ) -> None:
    """Refuse N launched processes that each see a world of 1 (they would race on ``output_dir``)."""
    launched = launcher_world_size(env)
    if launched > 1 and num_processes == 1:
        raise LaunchError(
            f"the launcher started {launched} processes but they do not form one distributed group (the trainer sees "
            f"a world of 1), so each would train and write {output_dir}; launch with `accelerate launch --multi_gpu "
            f"--num_processes {launched}` (gloo on CPU) or `torchrun --nproc_per_node {launched}`")


def claim_output_dir(output_dir: Path) -> IO[str]:
    """Hold an exclusive lock on ``output_dir`` for the life of the returned handle (keep it open)."""
    import fcntl

    output_dir.mkdir(parents=True, exist_ok=True)
    handle = open(output_dir / LOCK_NAME, "a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise LaunchError(f"{output_dir} is in use by another training process ({holder}); two writers would "
                           "interleave checkpoints. Wait for it, or use another output_dir") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {os.uname().nodename}\n")
    handle.flush()
    return handle


def evaluation_env(env: Mapping[str, str] = os.environ) -> dict[str, str]:
    """``env`` without the launcher's variables: a child started with it is a plain single process."""
    return {k: v for k, v in env.items() if k not in LAUNCHER_VARIABLES and not k.startswith(LAUNCHER_PREFIXES)}


def run_child(args: list[str], what: str, *, runner: Any = subprocess.run) -> None:
    """Run ``cf-train ARGS`` as a fresh single-process child (see the module docstring); raise if it fails."""
    cmd = [sys.executable, "-m", "training.cli", *args]
    logger.info("%s in a fresh process: %s", what, " ".join(cmd))
    done = runner(cmd, env=evaluation_env())
    if done.returncode != 0:
        raise LaunchError(f"{what} failed (exit {done.returncode}); rerun it with: cf-train {' '.join(args)}")


def run_evaluation_child(run_dir: Path, *, runner: Any = subprocess.run) -> None:
    """The post-training evaluation of ``run_dir`` (``cf-train evaluate --run-dir``); the model stays in place."""
    run_child(["evaluate", "--run-dir", str(run_dir)], "the post-training evaluation", runner=runner)


def run_merge_child(base_model: str, adapter: Path, out: Path, *, runner: Any = subprocess.run) -> None:
    """Merge a saved LoRA adapter into a freshly loaded base model (``cf-train merge-lora``)."""
    run_child(["merge-lora", "--base", str(base_model), "--adapter", str(adapter), "--out", str(out)],
              "merging the LoRA adapter", runner=runner)
