"""Evil-program suite for the untrusted tier (issue 7; MultiPL-E's ``evil_programs`` idea).

Every case must be killed or flagged, leave no process behind, have no side effect, and
never come back ``ok`` with a value the test keeps secret. Where a case can only be
contained by an OS layer this machine does not offer, the test is skipped with the
isolation report's reason instead of passing silently. Only loopback addresses are used.
"""

from __future__ import annotations

import os
import secrets
import socket
import time
from pathlib import Path

import psutil
import pytest

from cf_tasks.executor import CallResult, Executor, Job, Limits
from cf_tasks.executor.sandbox import SandboxPool

LIMITS = Limits(call_timeout_s=0.3, job_timeout_s=1.0, memory_mb=512, output_bytes=64_000)
SECRET = secrets.token_hex(16)  # lives only in this process: no program may ever return it
NOT_OK = {"error", "timeout", "limit", "crash"}


@pytest.fixture(scope="module", params=["full", "no-namespaces"])
def sandbox(request):
    """The default sandbox, and one with namespaces switched off (what a machine without
    unprivileged user namespaces gets): the remaining layers must still contain, or skip."""
    if request.param == "full":
        ex = Executor(workers=2, limits=LIMITS, untrusted=True)
    else:
        with pytest.warns(RuntimeWarning, match="reduced isolation"):
            backend = SandboxPool(2, LIMITS, harden=False)
        ex = Executor._with_backend(backend, 2, LIMITS, untrusted=True)
    yield ex
    ex.close()


@pytest.fixture(scope="module")
def report(sandbox):
    return sandbox.isolation_report()


def sandbox_processes(ex: Executor) -> list[psutil.Process]:
    """Every process that descends from this executor's zygote, wherever it was reparented.

    Job children are forks of the zygote, so they carry its command line, which names this
    executor's private scratch folder: the match finds escaped processes too.
    """
    tag = ex._isolated._scratch
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(tag in part for part in proc.info["cmdline"] or ()):
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return found


@pytest.fixture(autouse=True)
def no_process_left_behind(sandbox):
    yield
    deadline = time.monotonic() + 2.0
    while True:
        alive = [p for p in sandbox_processes(sandbox) if p.status() != psutil.STATUS_ZOMBIE]
        if len(alive) <= 2 or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert len(alive) == 2, f"expected only the zygote and its server, found {[p.pid for p in alive]}"


def need(report: dict, *layers: str) -> None:
    """Skip (with the report's reasons) unless one of ``layers`` is enforced here.

    ``"landlock:TCP"`` means: Landlock is enforced and its line mentions ``TCP``.
    """
    def enforced(layer: str) -> bool:
        name, _, needle = layer.partition(":")
        text = str(report.get(name, ""))
        return text.startswith("enforced") and needle in text

    if not any(enforced(layer) for layer in layers):
        pytest.skip("not containable here: " + "; ".join(f"{k}: {report.get(k.partition(':')[0])}" for k in layers))


def run1(ex: Executor, source: str, calls=({},)) -> list[CallResult]:
    [res] = ex.run([Job(source, "f", tuple(calls))])
    return res


def assert_contained(results: list[CallResult], *, allow_ok: bool = False) -> None:
    for res in results:
        assert not (res.ok and res.value == SECRET), "a program produced the secret"
        assert not (res.ok and res.value == "escaped"), f"escape reported success: {res}"
        if not allow_ok:
            assert res.status in NOT_OK, res


@pytest.fixture()
def marker(tmp_path) -> Path:
    path = tmp_path / "marker"
    yield path
    assert not path.exists(), "the program had a side effect outside its scratch folder"


# --- processes ---------------------------------------------------------------------------

def test_fork_once(sandbox, report, marker):
    need(report, "nproc", "seccomp", "pid_namespace")
    src = (f"import os, time\ndef f():\n    pid = os.fork()\n    if pid == 0:\n"
           f"        time.sleep(0.5)\n        open({str(marker)!r}, 'w').write('x')\n        os._exit(0)\n"
           f"    return 'escaped'\n")
    assert_contained(run1(sandbox, src))
    time.sleep(0.7)


def test_fork_bomb(sandbox, report):
    need(report, "nproc", "seccomp", "pid_namespace")
    src = "import os\ndef f():\n    while True:\n        try:\n            os.fork()\n        except OSError:\n            pass\n"
    assert_contained(run1(sandbox, src))


def test_posix_system(sandbox, report, marker):
    need(report, "seccomp", "nproc")
    src = f"import posix\ndef f():\n    posix.system('touch {marker}')\n    return 'escaped' if posix.access({str(marker)!r}, 0) else 0\n"
    assert_contained(run1(sandbox, src), allow_ok=True)


def test_os_posix_spawn(sandbox, report, marker):
    need(report, "seccomp", "nproc")
    src = (f"import os\ndef f():\n    pid = os.posix_spawn('/bin/sh', ['sh', '-c', 'touch {marker}'], {{}})\n"
           f"    os.waitpid(pid, 0)\n    return 'escaped'\n")
    assert_contained(run1(sandbox, src))


def test_ctypes_system(sandbox, report, marker):
    need(report, "seccomp", "nproc")
    src = (f"import ctypes, os\ndef f():\n    ctypes.CDLL(None).system(b'touch {marker}')\n"
           f"    return 'escaped' if os.path.exists({str(marker)!r}) else 0\n")
    assert_contained(run1(sandbox, src), allow_ok=True)


def test_subprocess_run(sandbox, report, marker):
    need(report, "seccomp", "nproc")
    src = f"import subprocess\ndef f():\n    subprocess.run(['touch', {str(marker)!r}])\n    return 'escaped'\n"
    assert_contained(run1(sandbox, src))


def test_kill_parent_and_everyone(sandbox, report):
    need(report, "seccomp", "pid_namespace", "uid", "landlock:signals")
    src = "import os, signal\ndef f():\n    os.kill(os.getppid(), signal.SIGKILL)\n    os.kill(-1, signal.SIGKILL)\n    return 'escaped'\n"
    assert_contained(run1(sandbox, src))
    # the executor (and this test process) survive and keep working
    assert run1(sandbox, "def f():\n    return 5\n") == [CallResult("ok", 5)]


def test_setsid_escape_then_spin(sandbox):
    src = "import os\ndef f():\n    try:\n        os.setsid()\n    except OSError:\n        pass\n    while True:\n        pass\n"
    assert_contained(run1(sandbox, src))


# --- network ----------------------------------------------------------------------------

@pytest.mark.parametrize("via", ["socket", "ctypes"])
def test_socket_connect_to_loopback(sandbox, report, via):
    need(report, "network_namespace", "seccomp", "landlock:TCP")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.settimeout(0.3)
        port = server.getsockname()[1]
        if via == "socket":
            src = (f"import socket\ndef f():\n    s = socket.create_connection(('127.0.0.1', {port}), timeout=0.5)\n"
                   f"    s.sendall(b'pwned')\n    return 'escaped'\n")
        else:  # raw libc calls: needs no module file (ctypes and struct are already loaded)
            src = (f"import ctypes, struct\ndef f():\n    libc = ctypes.CDLL(None)\n    fd = libc.socket(2, 1, 0)\n"
                   f"    addr = struct.pack('=H', 2) + struct.pack('!H', {port}) + bytes([127, 0, 0, 1]) + bytes(8)\n"
                   f"    if fd < 0 or libc.connect(fd, ctypes.create_string_buffer(addr, 16), 16) != 0:\n"
                   f"        return 'refused'\n    libc.send(fd, b'pwned', 5, 0)\n    return 'escaped'\n")
        assert_contained(run1(sandbox, src), allow_ok=via == "ctypes")
        with pytest.raises(socket.timeout):
            server.accept()


# --- files and secrets --------------------------------------------------------------------

def test_write_outside_scratch(sandbox, report, marker):
    need(report, "filesystem", "landlock", "uid")
    src = f"def f():\n    open({str(marker)!r}, 'w').write('x')\n    return 'escaped'\n"
    assert_contained(run1(sandbox, src))


def test_write_to_the_shared_temp_folder(sandbox, report):
    host_tmp = Path("/tmp") / f"cf-evil-{secrets.token_hex(6)}"
    try:
        need(report, "filesystem", "landlock")
        src = f"def f():\n    open({str(host_tmp)!r}, 'w').write('x')\n    return 'escaped'\n"
        assert_contained(run1(sandbox, src))
        assert not host_tmp.exists()
    finally:
        if host_tmp.exists():
            host_tmp.unlink()


def test_read_parent_secret_file(sandbox, report, tmp_path):
    need(report, "filesystem", "landlock", "uid")
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text(SECRET)
    secret_file.chmod(0o600)
    src = f"def f():\n    return open({str(secret_file)!r}).read()\n"
    assert_contained(run1(sandbox, src))


def test_read_project_files(sandbox, report):
    """World-readable files of the caller (this test file, the home folder) are out of reach."""
    need(report, "filesystem", "landlock")
    for path in (Path(__file__).resolve(), Path("/etc/hostname")):
        if path.exists():
            [res] = run1(sandbox, f"def f():\n    return open({str(path)!r}).read()[:100]\n")
            assert res.status == "error" and ("FileNotFoundError" in res.error or "PermissionError" in res.error)


def test_environment_is_scrubbed(sandbox, monkeypatch):
    src = "import os\ndef f():\n    return sorted(os.environ.items())\n"
    [res] = run1(sandbox, src)
    assert res.ok
    names = {k for k, _ in res.value}
    assert names <= {"PATH", "HOME", "LANG", "TMPDIR", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"}
    assert SECRET not in repr(res.value)


def test_only_the_result_pipe_is_open(sandbox):
    src = ("import os\ndef f():\n    fds = []\n    for fd in range(256):\n        try:\n            os.fstat(fd)\n"
           "            fds.append(fd)\n        except OSError:\n            pass\n    return fds\n")
    [res] = run1(sandbox, src)
    assert res.ok and set(res.value) <= {0, 1, 2, 3}


def test_stdin_is_closed(sandbox):
    [res] = run1(sandbox, "def f():\n    return input()\n")
    assert res.status == "error" and "EOFError" in res.error


# --- resources ----------------------------------------------------------------------------

def test_allocate_10_gib(sandbox):
    [res] = run1(sandbox, "def f():\n    return len(bytearray(10 * 1024**3))\n")
    assert res.status == "limit"


def test_infinite_loop_catching_baseexception(sandbox):
    src = ("def f():\n    while True:\n        try:\n            while True:\n                pass\n"
           "        except BaseException:\n            pass\n")
    t = time.monotonic()
    [res] = run1(sandbox, src)
    assert res.status == "timeout" and time.monotonic() - t < 5


def test_long_c_level_loop(sandbox):
    t = time.monotonic()
    [res] = run1(sandbox, "def f():\n    return sum(range(10**12))\n")
    assert res.status == "timeout" and time.monotonic() - t < 5


def test_ignored_sigterm_and_sigxcpu(sandbox):
    src = ("import signal\ndef f():\n    for s in (signal.SIGTERM, signal.SIGXCPU, signal.SIGPROF):\n"
           "        signal.signal(s, signal.SIG_IGN)\n    while True:\n        pass\n")
    [res] = run1(sandbox, src)
    assert res.status == "timeout"


def test_closed_stdout_then_spin(sandbox):
    src = "import os\ndef f():\n    for fd in (1, 2, 3):\n        os.close(fd)\n    while True:\n        pass\n"
    assert_contained(run1(sandbox, src))


def test_unbounded_output_to_stdout(sandbox):
    src = "def f():\n    while True:\n        print('x' * 10000)\n"
    [res] = run1(sandbox, src)
    assert res.status == "timeout"


def test_unbounded_output_to_the_result_pipe(sandbox):
    src = "import os\ndef f():\n    while True:\n        os.write(3, b'x' * 65536)\n"
    [res] = run1(sandbox, src)
    assert res.status == "limit"


def test_fill_the_disk(sandbox):
    src = "def f():\n    with open('big', 'wb') as fh:\n        while True:\n            fh.write(b'x' * (1 << 20))\n"
    [res] = run1(sandbox, src)
    assert res.status in {"error", "limit"}


def test_threads_are_refused(sandbox, report):
    need(report, "nproc", "seccomp")
    src = "import threading\ndef f():\n    threading.Thread(target=lambda: None).start()\n    return 'escaped'\n"
    assert_contained(run1(sandbox, src))


def test_huge_int_to_str(sandbox):
    out = sandbox.run([Job("def f():\n    return str(10 ** 100000)\n", "f", ({},)),
                       Job("def f():\n    return len(str(7 ** 10 ** 8))\n", "f", ({},))])
    assert out[0][0].status == "error" and "ValueError" in out[0][0].error
    assert out[1][0].status in {"timeout", "limit", "error"}


# --- exits and verdict forgery ------------------------------------------------------------

def test_sys_exit_0_before_returning(sandbox):
    [res] = run1(sandbox, "import sys\ndef f():\n    sys.exit(0)\n")
    assert res.status == "error" and res.error.startswith("SystemExit")


def test_os_exit_0_before_returning(sandbox):
    [res] = run1(sandbox, "import os\ndef f():\n    os._exit(0)\n")
    assert res.status == "crash"


def test_forged_reply_then_exit(sandbox):
    """Write a well-formed 'ok' reply on the result pipe, then die: not accepted."""
    src = "import os\ndef f():\n    os.write(3, b'[[\"ok\", 42]]')\n    os._exit(1)\n"
    assert run1(sandbox, src)[0].status == "crash"
    src = "import os\ndef f():\n    os.write(3, b'[[\"ok\", 42], [\"ok\", 43]]')\n    os._exit(0)\n"
    assert run1(sandbox, src)[0].status == "crash"  # wrong number of results


def test_frame_walking_finds_no_verdict(sandbox):
    """Walk every frame and global: nothing the parent will compare against is there."""
    src = ("import sys\ndef f():\n    seen = []\n    fr = sys._getframe()\n    while fr is not None:\n"
           "        for d in (fr.f_locals, fr.f_globals):\n            for k, v in list(d.items()):\n"
           "                if k in ('expected', 'result', 'verdict', 'answer', 'gold'):\n"
           "                    seen.append(repr(v))\n        fr = fr.f_back\n    return seen\n")
    expected = SECRET
    [res] = run1(sandbox, src)
    assert not (res.ok and expected in repr(res.value))


def test_gc_scan_cannot_read_or_forge_verdicts(sandbox):
    """gc.get_objects / get_referrers: the secret never reaches the child's memory."""
    src = ("import gc\ndef f():\n    found = [o for o in gc.get_objects() if isinstance(o, str) and len(o) == 32]\n"
           "    for o in gc.get_objects():\n        if isinstance(o, dict) and 'status' in o:\n"
           "            o['status'] = 'ok'\n"
           "            for r in gc.get_referrers(o):\n                pass\n"
           "    return found[:1000]\n")
    [res] = run1(sandbox, src)
    assert not (res.ok and SECRET in res.value)
    assert_contained([res], allow_ok=True)


def test_tampering_with_the_runner_only_changes_its_own_reply(sandbox):
    """A program may rewrite the child's reply machinery; the secret still cannot be produced
    and the job next to it is unaffected."""
    tamper = ("import json\ndef f():\n    json.dumps = lambda *a, **k: '[\"ok\", \"forged\"]'\n    raise ValueError\n")
    out = sandbox.run([Job(tamper, "f", ({},)), Job("def f():\n    return 1\n", "f", ({},))])
    assert_contained(out[0], allow_ok=True)
    assert out[1] == [CallResult("ok", 1)]


def test_close_leaves_nothing(tmp_path):
    ex = Executor(workers=1, limits=LIMITS, untrusted=True)
    ex.run([Job("def f():\n    while True:\n        pass\n", "f", ({},))])
    scratch = ex._isolated._scratch
    procs = sandbox_processes(ex)
    assert procs
    ex.close()
    psutil.wait_procs(procs, timeout=3)
    assert not [p for p in sandbox_processes(ex) if p.status() != psutil.STATUS_ZOMBIE]
    assert not os.path.exists(scratch)
