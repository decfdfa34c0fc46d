"""Launch safety: one distributed group, one writer per output folder, evaluation in a clean single process."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from training.launch import (LOCK_NAME, LaunchError, check_process_group, claim_output_dir, evaluation_env,
                             launcher_notes, launcher_world_size, run_evaluation_child)

TORCHRUN_ENV = {  # what `accelerate launch --multi_gpu --num_processes 2` gives rank 1 (observed here)
    "ACCELERATE_MIXED_PRECISION": "no", "ACCELERATE_DYNAMO_BACKEND": "NO", "TORCHELASTIC_RUN_ID": "none",
    "TORCHELASTIC_ERROR_FILE": "/tmp/x/error.json", "RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2",
    "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500", "GROUP_RANK": "0",
    "PATH": "/usr/bin", "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "0,1", "OMP_NUM_THREADS": "1",
}


def test_evaluation_child_environment_has_no_launcher_variables():
    env = evaluation_env(TORCHRUN_ENV)
    assert env == {"PATH": "/usr/bin", "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "0,1", "OMP_NUM_THREADS": "1"}
    assert launcher_world_size(env) == 1 and launcher_world_size(TORCHRUN_ENV) == 2
    assert launcher_world_size({"OMPI_COMM_WORLD_SIZE": "4"}) == 4


def test_a_child_started_with_that_environment_is_a_single_process():
    """accelerate's own view from inside the child: one process, no distributed type (the construction lm-eval's
    HFLM relies on to stay out of collectives)."""
    code = "from accelerate import PartialState; s = PartialState(cpu=True); print(s.num_processes, s.distributed_type)"
    env = evaluation_env({**TORCHRUN_ENV, "PATH": subprocess.os.environ["PATH"]})
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["1", "DistributedType.NO"]


def test_processes_that_do_not_form_one_group_are_refused(tmp_path):
    with pytest.raises(LaunchError, match="started 2 processes but they do not form one distributed group"):
        check_process_group(1, tmp_path, env=TORCHRUN_ENV)
    check_process_group(2, tmp_path, env=TORCHRUN_ENV)  # a real group
    check_process_group(1, tmp_path, env={})  # a plain run


def test_accelerate_launch_cpu_runs_one_process_and_says_so(caplog):
    with caplog.at_level(logging.WARNING, logger="training.launch"):
        launcher_notes({"ACCELERATE_USE_CPU": "True"})
    assert "starts one process whatever --num_processes says" in caplog.text


def test_one_writer_per_output_folder(tmp_path):
    first = claim_output_dir(tmp_path / "run")
    try:
        code = ("import sys; from pathlib import Path; from training.launch import claim_output_dir\n"
                f"claim_output_dir(Path({str(tmp_path / 'run')!r}))")
        other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert other.returncode != 0 and "is in use by another training process (pid" in other.stderr
    finally:
        first.close()
    claim_output_dir(tmp_path / "run").close()  # released with its handle (or its process): nothing stale
    assert (tmp_path / "run" / LOCK_NAME).is_file()


def test_evaluation_child_command_and_failure(tmp_path):
    calls = []

    class Done:
        returncode = 3

    def runner(cmd, env):
        calls.append((cmd, env))
        return Done()

    with pytest.raises(LaunchError, match=r"evaluation failed \(exit 3\); rerun it with: cf-train evaluate --run-dir"):
        run_evaluation_child(tmp_path, runner=runner)
    (cmd, env), = calls
    assert cmd[1:] == ["-m", "training.cli", "evaluate", "--run-dir", str(tmp_path)]
    assert "WORLD_SIZE" not in env and not any(k.startswith("ACCELERATE_") for k in env)
