"""``isolation_report()`` claims only what is true: each ``enforced`` line is checked here (issue 13).

Most layers are read from outside, from ``/proc`` of the running server and job processes
(namespaces, uids, capabilities, no_new_privs, seccomp mode, rlimits, open fds, session);
the rest are checked by the attack that the layer stops. ``CLAIMS`` maps every key the
report may mark ``enforced`` to the test that checks it; a key without one fails
``test_every_enforced_claim_has_a_test``. Before, the report claimed that jobs could not
list each other's folders, which they could.
"""

from __future__ import annotations

import os
import re
import threading
import time

import psutil
import pytest

from cf_tasks.executor import Executor, Job, Limits
from cf_tasks.executor.hardening import JOB_UID_BASE

LIMITS = Limits(call_timeout_s=0.5, job_timeout_s=5.0, memory_mb=512, output_bytes=64_000)
SLEEPER = "import time\ndef f(k):\n    time.sleep(1.5)\n    return k\n"

# report key -> the test (in tests/security) that checks it
CLAIMS = {
    "environment": "test_memory_scrub.py::test_the_zygote_environment_is_the_fixed_one",
    "user_namespace": "test_isolation_claims.py::test_server_namespaces_and_uid",
    "network_namespace": "test_isolation_claims.py::test_server_namespaces_and_uid",
    "filesystem": "test_evil_programs.py::test_read_project_files",
    "pid_namespace_per_job": "test_isolation_claims.py::test_each_job_is_pid_1_of_its_own_namespace",
    "scratch_per_job": "test_job_isolation.py::test_nothing_a_job_writes_reaches_a_later_job",
    "uid_per_job": "test_isolation_claims.py::test_jobs_run_as_distinct_uids",
    "capabilities": "test_isolation_claims.py::test_job_credentials_and_filters",
    "no_new_privs": "test_isolation_claims.py::test_job_credentials_and_filters",
    "seccomp": "test_isolation_claims.py::test_job_credentials_and_filters",
    "landlock": "test_job_isolation.py::test_landlock_alone_keeps_siblings_apart",
    "nproc": "test_isolation_claims.py::test_job_rlimits_are_the_reported_ones",
    "rlimits": "test_isolation_claims.py::test_job_rlimits_are_the_reported_ones",
    "fds": "test_isolation_claims.py::test_job_has_only_its_result_pipe",
    "ptrace_between_jobs": "test_isolation_claims.py::test_job_credentials_and_filters",
    "session_and_group": "test_isolation_claims.py::test_job_has_only_its_result_pipe",
    "call_cpu": "test_budgets_and_death.py::test_c_loop_ignoring_every_signal_is_stopped_from_outside",
    "parent_death": "test_budgets_and_death.py::test_sigkill_of_the_caller_leaves_no_sandbox_behind",
}


@pytest.fixture(scope="module")
def sandbox():
    with Executor(workers=2, limits=LIMITS, untrusted=True) as ex:
        yield ex


@pytest.fixture(scope="module")
def report(sandbox):
    return sandbox.isolation_report()


@pytest.fixture(scope="module")
def live(sandbox):
    """Two jobs caught while they run: (server process, [job processes], their results)."""
    zygote = psutil.Process(sandbox._isolated._proc.pid)
    server = zygote.children()[0]
    results: list = []
    thread = threading.Thread(target=lambda: results.extend(
        sandbox.run([Job(SLEEPER, "f", ({"k": k},)) for k in range(2)])))
    thread.start()
    deadline = time.monotonic() + 10
    jobs: list[psutil.Process] = []
    while len(jobs) < 2 and time.monotonic() < deadline:
        jobs = [p for p in server.children() if p.status() != psutil.STATUS_ZOMBIE]
        time.sleep(0.01)
    assert len(jobs) == 2, "could not catch two running jobs"
    while time.monotonic() < deadline and not all(_set_up(p.pid) for p in jobs):
        time.sleep(0.01)  # past their set-up: the program is running
    facts = {"server": _facts(server.pid), "jobs": [_facts(p.pid) for p in jobs], "server_uid": server.uids().real}
    thread.join(20)
    assert [r[0].value for r in results] == [0, 1]
    return facts


def _set_up(pid: int) -> bool:
    return "Seccomp:\t2" in open(f"/proc/{pid}/status").read() or not os.path.exists(f"/proc/{pid}")


def _facts(pid: int) -> dict:
    status = dict(line.split(":\t", 1) for line in open(f"/proc/{pid}/status").read().splitlines() if ":\t" in line)
    return {
        "status": {k: v.strip() for k, v in status.items()},
        "ns": {ns: os.readlink(f"/proc/{pid}/ns/{ns}") for ns in ("pid", "mnt", "net", "user")},
        "limits": open(f"/proc/{pid}/limits").read(),
        "fds": sorted(int(fd) for fd in os.listdir(f"/proc/{pid}/fd")),
        "mem_owner": os.stat(f"/proc/{pid}/mem").st_uid,
    }


def own_ns(ns: str) -> str:
    return os.readlink(f"/proc/self/ns/{ns}")


def test_every_enforced_claim_has_a_test(report):
    missing = [k for k in report["enforced"] if k not in CLAIMS]
    assert not missing, f"isolation_report() claims {missing} without a test that checks them"
    here = os.path.dirname(__file__)
    for key, where in CLAIMS.items():
        module, name = where.split("::")
        assert f"def {name}(" in open(os.path.join(here, module)).read(), f"{key}: {where} does not exist"


def test_server_namespaces_and_uid(report, live):
    server = live["server"]
    if not report["user_namespace"].startswith("enforced"):
        pytest.skip(report["user_namespace"])
    for ns in ("user", "net", "mnt"):
        assert server["ns"][ns] != own_ns(ns), ns
    outside = int(re.search(r"uid (\d+) outside", report["user_namespace"]).group(1))
    assert server["status"]["Uid"].split() == [str(outside)] * 4


def test_each_job_is_pid_1_of_its_own_namespace(report, live):
    if not report["pid_namespace_per_job"].startswith("enforced"):
        pytest.skip(report["pid_namespace_per_job"])
    pid_ns = [job["ns"]["pid"] for job in live["jobs"]]
    assert len(set(pid_ns)) == 2 and live["server"]["ns"]["pid"] not in pid_ns
    for job in live["jobs"]:
        assert job["status"]["NSpid"].split()[-1] == "1"


def test_jobs_run_as_distinct_uids(report, live):
    if not report["uid_per_job"].startswith("enforced"):
        pytest.skip(report["uid_per_job"])
    uids = [int(job["status"]["Uid"].split()[0]) for job in live["jobs"]]
    assert len(set(uids)) == 2 and all(JOB_UID_BASE <= u < JOB_UID_BASE + 2 for u in uids)
    for job in live["jobs"]:
        assert len(set(job["status"]["Uid"].split())) == 1 and len(set(job["status"]["Gid"].split())) == 1


def test_job_credentials_and_filters(report, live):
    for job in live["jobs"]:
        status = job["status"]
        for field in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
            assert int(status[field], 16) == 0, field
        assert status["NoNewPrivs"] == "1"
        if report["seccomp"].startswith("enforced"):
            assert status["Seccomp"] == "2" and status["Seccomp_filters"] == "1"
        # non-dumpable: its /proc files belong to root (of its user namespace), not to the job,
        # so no other process of that uid may ptrace it or read its memory
        assert job["mem_owner"] in (0, live["server_uid"])


def test_job_rlimits_are_the_reported_ones(report, live):
    expect = {"Max cpu time": str(int(LIMITS.call_timeout_s + 1.0) + 2), "Max file size": str(1 << 20),
              "Max address space": str(LIMITS.memory_mb << 20), "Max open files": "32", "Max processes": "0",
              "Max core file size": "0"}
    for job in live["jobs"]:
        rows = {line[:26].strip(): line[26:].split() for line in job["limits"].splitlines()[1:]}
        for name, value in expect.items():
            assert rows[name][:2] == [value, value], (name, rows[name])
    assert f"AS {LIMITS.memory_mb} MiB" in report["rlimits"] and "RLIMIT_NPROC=0" in report["nproc"]


def test_job_has_only_its_result_pipe(live):
    for job in live["jobs"]:
        assert job["fds"] == [0, 1, 2, 3]
        assert job["status"]["NSsid"].split()[-1] == "1"  # its own session (setsid), in its own namespace
