"""Pool lifecycle: threads, recycling, shutdown without leftovers, the shared executor."""

from __future__ import annotations

import os
import subprocess
import sys
import threading

import psutil
import pytest

from cf_tasks.executor import Executor, Limits, generated_source, shared_executor
from cf_tasks.executor import Job as _Job
from cf_tasks.executor.pool import TrustedPool

PID_SRC = "import os\ndef f():\n    return os.getpid()\n"


def Job(source, entry_point, calls):  # noqa: N802 - generated jobs run in the trusted pool
    return _Job(generated_source(source), entry_point, tuple(calls))


def descendants() -> set[int]:
    return {p.pid for p in psutil.Process().children(recursive=True)}


def test_concurrent_run_calls_from_threads():
    src = "def f(x, k):\n    return x * 1000 + k\n"
    errors: list[str] = []
    with Executor(workers=2) as ex:
        def client(k: int) -> None:
            for rep in range(15):
                jobs = [Job(src, "f", tuple({"x": x, "k": k} for x in range(j, j + 5))) for j in range(40)]
                out = ex.run(jobs)
                want = [[x * 1000 + k for x in range(j, j + 5)] for j in range(40)]
                if [[c.value for c in r] for r in out] != want:
                    errors.append(f"client {k} rep {rep}")
        threads = [threading.Thread(target=client, args=(k,)) for k in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads)
    assert errors == []


def test_both_workers_are_used_for_a_large_batch():
    with Executor(workers=2) as ex:
        out = ex.run([Job(PID_SRC, "f", ({},))] * 400)
    assert len({r[0].value for r in out}) == 2


def test_close_leaves_no_process_behind():
    before = descendants()
    ex = Executor(workers=2, limits=Limits(call_timeout_s=0.2, job_timeout_s=1.0))
    ex.run([Job("import os\ndef f():\n    os._exit(1)\n", "f", ({},))])
    ex.run([Job("import subprocess, sys\ndef f():\n    subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
                "    while True:\n        pass\n", "f", ({},))])
    assert descendants() - before  # workers are running
    ex.close()
    ex.close()  # idempotent
    psutil.wait_procs([psutil.Process(p) for p in descendants() - before if psutil.pid_exists(p)], timeout=3)
    assert descendants() - before == set()
    with pytest.raises(RuntimeError, match="closed"):
        ex.run([Job(PID_SRC, "f", ({},))])


def test_workers_are_recycled_after_k_batches():
    pool = TrustedPool(1, Limits(), recycle_after=2)
    try:
        pids = [pool.run([Job(PID_SRC, "f", ({},))])[0][0].value for _ in range(6)]
    finally:
        pool.close()
    assert len(set(pids)) == 3 and pids[0] == pids[1] != pids[2]


def test_shared_executor_is_one_lazily_started_pool():
    ex = shared_executor()
    assert ex is shared_executor() and not ex.untrusted
    assert ex.run([Job("def f():\n    return 3\n", "f", ({},))])[0][0].value == 3


def test_import_registers_nothing_and_exit_closes_the_shared_pool():
    code = (
        "import atexit, psutil\n"
        "seen = []\n"
        "register = atexit.register\n"
        "atexit.register = lambda f, *a, **k: (seen.append(f.__module__), register(f, *a, **k))[1]\n"
        "import cf_tasks.executor as e\n"
        "assert not [m for m in seen if m.startswith('cf_tasks')], seen\n"
        "e.shared_executor().run([e.Job(e.generated_source('def f():\\n    return 1\\n'), 'f', ({},))])\n"
        "e.shared_executor()\n"
        "assert [m for m in seen if m.startswith('cf_tasks')] == ['cf_tasks.executor.executor'], seen\n"
        "print(' '.join(str(p.pid) for p in psutil.Process().children()))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    pids = [int(p) for p in out.stdout.split()]
    assert pids
    gone, alive = psutil.wait_procs([psutil.Process(p) for p in pids if psutil.pid_exists(p)], timeout=3)
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]


def test_executor_refuses_to_run_in_a_forked_child():
    with Executor(workers=1) as ex:
        pid = os.fork()
        if pid == 0:
            try:
                ex.run([Job(PID_SRC, "f", ({},))])
                os._exit(1)
            except RuntimeError:
                os._exit(0)
            finally:
                os._exit(2)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert ex.run([Job("def f():\n    return 1\n", "f", ({},))])[0][0].value == 1


def test_isolation_report_of_the_trusted_tier():
    with Executor(workers=1, limits=Limits(memory_mb=256)) as ex:
        report = ex.isolation_report()
    assert report["trusted"]["memory_mb"] == 256 and "GeneratedSource" in report["trusted"]["accepts"]
