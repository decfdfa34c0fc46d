"""BIDS under a real multi-process launch on CPU (``accelerate launch --multi_gpu --num_processes 2``, gloo)."""

import json
import os
import shutil
import socket
import subprocess
import sys

import numpy as np
import pytest

from selection.distributed import Ranks, launched_world_size

from test_bids_pipeline import SMALL, _toy_data  # noqa: E402 (tests/selection is on sys.path)


def test_launched_world_size_reads_every_launcher_variable():
    assert launched_world_size({}) == 1
    assert launched_world_size({"WORLD_SIZE": "2", "RANK": "1"}) == 2
    assert launched_world_size({"OMPI_COMM_WORLD_SIZE": "4"}) == 4
    with pytest.raises(ValueError, match="WORLD_SIZE='two'"):
        launched_world_size({"WORLD_SIZE": "two"})


def test_ranks_own_work_round_robin():
    assert [k for k in range(7) if Ranks(1, 3).owns(k)] == [1, 4]
    assert all(Ranks().owns(k) for k in range(5)) and Ranks().is_main


def test_a_launch_whose_group_did_not_form_is_refused():
    """Two processes started as a launcher starts them (WORLD_SIZE=2, RANK 0/1) with a GPU device asked for on a
    machine without one: accelerate reports a world of one, so each would run the whole job alone on the same
    work folder. Both refuse. The slow test below does the same under a real ``accelerate launch``."""
    port = str(_free_port())
    code = "from selection.distributed import init_ranks; init_ranks('cuda')"
    procs = []
    for rank in (0, 1):
        env = {**os.environ, "WORLD_SIZE": "2", "RANK": str(rank), "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": "2",
               "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "CUDA_VISIBLE_DEVICES": ""}
        procs.append(subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode != 0
        assert "launched as one of 2 processes" in err and "formed a group of 1" in err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cf_select(args, *, ranks: int, tmp_path, name: str):
    """``cf-select bids ARGS`` as one process or under ``accelerate launch --multi_gpu`` (one CPU thread each)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}
    if ranks == 1:
        cmd = [sys.executable, "-m", "selection.cli", "bids", *args]
    else:
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(ranks),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
               "--main_process_port", str(_free_port()), "-m", "selection.cli", "bids", *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
    (tmp_path / f"{name}.log").write_text(proc.stdout + proc.stderr)
    print(f"--- {name}: {' '.join(cmd[2:6])} ... rc={proc.returncode}\n{proc.stdout[-1500:]}{proc.stderr[-1500:]}")
    return proc


@pytest.mark.slow
def test_two_cpu_ranks_give_the_single_process_results(tiny_lm_dir, tmp_path):
    train, math_val, code_val, _ = _toy_data(tmp_path)
    base = ["--model", str(tiny_lm_dir), "--train", str(train), "--val", f"math={math_val}", f"code={code_val}",
            "--no-progress", *SMALL]

    def run(work, ranks, stages, name):
        out = tmp_path / f"{name}.json"
        proc = _cf_select([*base, "--work-dir", str(work), "--output", str(out), "--stages", *stages],
                          ranks=ranks, tmp_path=tmp_path, name=name)
        assert proc.returncode == 0, proc.stderr[-3000:]
        return proc, out

    # Warm-up: micro-batches split over 2 ranks, gradients summed, rank 0 writes: same adapters up to rounding.
    one, two = tmp_path / "one", tmp_path / "two"
    run(one, 1, ["warmup"], "warmup-1")
    run(two, 2, ["warmup"], "warmup-2")
    from safetensors.torch import load_file

    for epoch in (1, 2):
        a = load_file(str(one / "warmup" / f"epoch-{epoch}" / "adapter_model.safetensors"))
        b = load_file(str(two / "warmup" / f"epoch-{epoch}" / "adapter_model.safetensors"))
        assert a.keys() == b.keys()
        assert all(np.allclose(a[k].numpy(), b[k].numpy(), rtol=1e-5, atol=1e-7) for k in a)

    # Features sharded over 2 ranks from the same checkpoints: the identical matrix and selection.
    shutil.copytree(one, two, dirs_exist_ok=True)
    _, out_one = run(one, 1, ["features", "matrix", "select"], "features-1")
    proc, out_two = run(two, 2, ["features", "matrix", "select"], "features-2")
    log = proc.stdout + proc.stderr
    assert "rank 1 of 2 computes 1 of the 3 missing shard(s)" in log  # 3 training shards: ranks 0, 1, 0
    assert log.count("selected 6 of 24 rows") == 1  # rank 0 alone selects and prints
    A1, A2 = np.load(one / "influence.npy"), np.load(two / "influence.npy")
    assert A1.shape == (24, 5) and np.array_equal(A1, A2)
    assert json.loads(out_one.read_text())["indices"] == json.loads(out_two.read_text())["indices"]

    # The launch race: --multi_gpu on a CPU machine with a GPU device asked for forms no group; refused.
    proc = _cf_select([*base, "--work-dir", str(tmp_path / "race"), "--output", str(tmp_path / "r.json"),
                       "--device", "cuda", "--stages", "features"], ranks=2, tmp_path=tmp_path, name="race")
    assert proc.returncode != 0 and "launched as one of 2 processes" in proc.stdout + proc.stderr
    assert not (tmp_path / "race" / "features").exists()
