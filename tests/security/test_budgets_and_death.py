"""Every budget has a name and holds; the sandbox dies with its caller (issue 13, class 4).

Before: a program ignoring SIGPROF ran twice its CPU limit and came back ``ok``; a C-level
loop ignoring SIGXCPU ran until the job's rlimit; a 229-byte record with a large domain and a
sleeping program ran for minutes per record; every call of every record was built before
anything ran (memory O(file)); one record wrote a 92 MiB line; after SIGKILL of the caller the
zygote, its server and the jobs kept running the batch and the temp folder stayed behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
from sandbox_probes import cli, record, wait_gone, write_records

from cf_tasks.abduction import SolveLimits
from cf_tasks.executor import Executor, Job, Limits, generated_source
from cf_tasks.records import RecordErrors
from cf_tasks.solve import solve_file

LIMITS = Limits(call_timeout_s=0.25, job_timeout_s=8.0, memory_mb=512, output_bytes=64_000)

IGNORES_SIGPROF = ("import signal, time\ndef f():\n    signal.signal(signal.SIGPROF, signal.SIG_IGN)\n"
                   "    t = time.process_time()\n    while time.process_time() - t < 0.6:\n        pass\n    return 1\n")


@pytest.fixture(scope="module")
def sandbox():
    with Executor(workers=2, limits=LIMITS, untrusted=True) as ex:
        yield ex


class Spy:
    """Wraps an executor; records the calls of every batch and every job's wall time."""

    def __init__(self, real):
        self.real, self.batches, self.walls = real, [], []

    def run_jobs(self, jobs):
        self.batches.append(sum(len(j.calls) for j in jobs))
        out = self.real.run_jobs(jobs)
        self.walls += [r.wall_s for r in out]
        return out


# --- per-call CPU ------------------------------------------------------------------------------

@pytest.mark.parametrize("tier", ["trusted", "isolated"])
def test_ignoring_sigprof_and_returning_late_is_a_timeout(sandbox, tier):
    if tier == "trusted":
        with Executor(workers=1, limits=LIMITS) as ex:
            [[res]] = ex.run([Job(generated_source(IGNORES_SIGPROF), "f", ({},))])
    else:
        [[res]] = sandbox.run([Job(IGNORES_SIGPROF, "f", ({},))])
    assert res.status == "timeout", res


def test_c_loop_ignoring_every_signal_is_stopped_from_outside(sandbox):
    src = ("import signal\ndef f():\n    for s in (signal.SIGPROF, signal.SIGXCPU, signal.SIGTERM):\n"
           "        signal.signal(s, signal.SIG_IGN)\n    return sum(range(10 ** 12))\n")
    [result] = sandbox.run_jobs([Job(src, "f", ({}, {}, {}))])
    assert [c.status for c in result.calls] == ["timeout"] * 3
    assert "stopped from outside" in result.calls[0].error
    # stopped at its first call's CPU limit, not at the job's three-call rlimit or wall clock
    assert result.wall_s < LIMITS.job_timeout_s / 2


# --- records: time, calls, size, memory ----------------------------------------------------------

SLEEPER = "import time\ndef f(x, r):\n    time.sleep(0.05)\n    return x + r\n"


def solve(path, executor, **limits):
    items: list[dict] = []
    solve_file(path, items.append, executor=executor, limits=SolveLimits(**limits))
    return items


def test_a_slow_record_stops_at_its_wall_clock_budget(sandbox, tmp_path):
    big = record(SLEEPER, "slow", latents={"r": {"low": 0, "high": 1999}},
                 observed={"inputs": {"x": 1}, "output": 3})
    path = write_records(tmp_path / "r.jsonl", [big, record("def f(x, r):\n    return x + r\n", "quick")])
    spy = Spy(sandbox)
    with pytest.raises(RecordErrors) as err:
        solve(path, spy, record_timeout_s=1.0)
    [error] = err.value.errors
    assert str(error).startswith(f"{path}:1:") and "record_timeout_s" in str(error)
    assert sum(spy.walls[:2]) < 1.0 + 1.0  # the slow record's two jobs shared its one second (+ start-up)


def test_the_file_call_budget_names_the_record_that_crosses_it(sandbox, tmp_path):
    recs = [record("def f(x, r):\n    return x + r\n", f"r{k}", latents={"r": {"low": 0, "high": 999}},
                   observed={"inputs": {"x": 1}, "output": 3}) for k in range(3)]
    path = write_records(tmp_path / "r.jsonl", recs)
    spy = Spy(sandbox)
    with pytest.raises(RecordErrors) as err:
        solve(path, spy, max_calls=4500)
    assert f"{path}:3:" in str(err.value) and "max_calls=4500" in str(err.value)
    assert sum(spy.batches) <= 4000  # the third record never ran


def test_the_file_wall_clock_budget(sandbox, tmp_path):
    path = write_records(tmp_path / "r.jsonl", [record(SLEEPER, "a"), record(SLEEPER, "b")])
    with pytest.raises(RecordErrors, match="file_timeout_s"):
        solve(path, sandbox, file_timeout_s=1e-9)


def test_a_record_cannot_write_an_unbounded_line(sandbox, tmp_path):
    wide = "def f(x, r):\n    return 'x' * 60 + str(r) + str(x)\n"
    big = record(wide, "wide", latents={"r": {"low": 0, "high": 999}},
                 observed={"inputs": {"x": 1}, "output": "x" * 60 + "21"})
    path = write_records(tmp_path / "r.jsonl", [big])
    with pytest.raises(RecordErrors, match=r"r.jsonl:1: .*max_record_bytes=50000"):
        solve(path, sandbox, max_record_bytes=50_000, calls_per_job=256)


def test_output_amplification_in_one_job_is_a_record_error(sandbox, tmp_path):
    path = write_records(tmp_path / "r.jsonl", [record("def f(x, r):\n    return 'y' * 40000 + str(r)\n", "amp")])
    with pytest.raises(RecordErrors, match=r"r.jsonl:1: .*limit"):
        solve(path, sandbox)


def test_memory_is_bounded_by_the_batch_not_the_file(sandbox, tmp_path):
    recs = [record("def f(x, r):\n    return (x + r) % 7\n", f"r{k}", latents={"r": {"low": 0, "high": 499}},
                   observed={"inputs": {"x": 1}, "output": 3}) for k in range(24)]
    path = write_records(tmp_path / "r.jsonl", recs)
    spy = Spy(sandbox)
    items = solve(path, spy, batch_calls=4096, calls_per_job=1024)
    assert len(items) == 24 and all(item["answer"] == [0] for item in items)
    assert sum(spy.batches) == 24 * 1000
    assert max(spy.batches) <= 4096 and len(spy.batches) >= 6  # streamed: never the whole file at once


def test_budgets_are_cli_flags(tmp_path):
    big = record(SLEEPER, "slow", latents={"r": {"low": 0, "high": 999}}, observed={"inputs": {"x": 1}, "output": 3})
    path = write_records(tmp_path / "r.jsonl", [big])
    code, _, err = cli("solve", str(path), "-o", str(tmp_path / "o.jsonl"), "--record-timeout-s", "0.5")
    assert code == 2 and f"{path}:1:" in err and "record_timeout_s" in err
    assert not (tmp_path / "o.jsonl").exists()


# --- death with the caller ---------------------------------------------------------------------

CALLER = """import json, sys
from cf_tasks.executor import Executor, Job, Limits, generated_source
tier = sys.argv[1]
ex = Executor(workers=2, limits=Limits(job_timeout_s=60), untrusted=tier == "isolated")
src = "import time\\ndef f():\\n    time.sleep(60)\\n"
job = Job(generated_source(src) if tier == "trusted" else src, "f", ({},))
tag = ex._isolated._scratch if tier == "isolated" else ""
print(json.dumps({"tag": tag}), flush=True)
ex.run([job] * 4)
"""


def start_caller(tier: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([sys.executable, "-c", CALLER, tier], stdout=subprocess.PIPE, text=True)
    tag = json.loads(proc.stdout.readline())["tag"]
    return proc, tag


def test_sigkill_of_the_caller_leaves_no_sandbox_behind():
    proc, tag = start_caller("isolated")
    try:
        deadline = time.monotonic() + 30
        while len(wait_gone(tag, 0)[0]) < 4 and time.monotonic() < deadline:  # supervisor, server, 2 jobs
            time.sleep(0.02)
        assert len(wait_gone(tag, 0)[0]) >= 4 and os.path.isdir(tag)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    survivors, waited = wait_gone(tag, 5.0)
    for p in survivors:
        p.kill()
    assert not survivors, f"{len(survivors)} sandbox processes outlived their caller"
    assert waited < 1.0, f"the sandbox took {waited:.2f}s to die"
    assert not os.path.exists(tag), "the temp folder was left behind"


def test_sigkill_of_the_caller_stops_trusted_workers():
    proc, _ = start_caller("trusted")
    try:
        deadline = time.monotonic() + 30
        workers: list[psutil.Process] = []
        while time.monotonic() < deadline and len(workers) < 2:
            workers = psutil.Process(proc.pid).children()
            time.sleep(0.05)
        time.sleep(0.3)  # the workers are inside their 60 s job
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    gone, alive = psutil.wait_procs(workers, timeout=1.0)
    alive = [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
    for p in alive:
        p.kill()
    assert len(workers) == 2 and not alive, "trusted workers kept running after their caller died"
