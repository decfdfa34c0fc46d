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
- *Evaluation in a fresh single process.* lm-eval's ``HFLM`` joins a
  multi-GPU launch's collectives when it sees more than one process, which
  ranks that already finished training never enter. The post-training
  evaluation therefore runs as a child process, ``python -m training.cli
  evaluate --run-dir OUTPUT_DIR``, started by the main process after every
  rank has saved, with the launcher's variables removed from its
  environment (:func:`evaluation_env`): it is a plain one-process lm-eval
  run by construction, on any launcher.
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


def evaluation_command(run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "training.cli", "evaluate", "--run-dir", str(run_dir)]


def run_evaluation_child(run_dir: Path, *, runner: Any = subprocess.run) -> None:
    """Evaluate a finished run in a fresh single-process child (see the module docstring); raise if it fails."""
    cmd = evaluation_command(run_dir)
    logger.info("evaluating in a fresh process: %s", " ".join(cmd))
    done = runner(cmd, env=evaluation_env())
    if done.returncode != 0:
        raise LaunchError(f"the post-training evaluation failed (exit {done.returncode}); the trained model is in "
                           f"{run_dir}; rerun it with: {' '.join(cmd[1:]).replace('-m training.cli', 'cf-train')}")
