"""Jobs are isolated from each other, not only from the host (issue 13, class 2).

A victim job and an attacker job run side by side in one batch. The attacker tries every
route to reach a sibling: signals by each system call (``kill``, ``tkill``, ``tgkill``,
``rt_sigqueueinfo``, ``rt_tgsigqueueinfo``, ``pidfd_send_signal``, process groups, ``SIGIO``
through a file owner), lowering its CPU limit with ``prlimit`` (the kernel then kills it),
renicing or pinning it, ``ptrace``; and the scratch folders: files left for a later job, the
scratch root, a sibling's folder, filling the disk they share. The victim must come back
``ok`` with its own value, and the attacker must report no success. Before, the victim was
killed (its calls then counted as timeouts and silently dropped), files persisted in the
writable scratch root, and one job could fill everybody's scratch space.
"""

from __future__ import annotations

import warnings

import pytest

from cf_tasks.executor import CallResult, Executor, Job, Limits
from cf_tasks.executor.sandbox import SandboxPool

LIMITS = Limits(call_timeout_s=1.0, job_timeout_s=6.0, memory_mb=512, output_bytes=64_000)
VICTIM = "import time\ndef f():\n    time.sleep(1.2)\n    return 'alive'\n"

ATTACKS = {
    "kill": "os.kill(pid, 9); return True",
    "killpg": "os.killpg(pid, 9); return True",
    "tkill": "return libc.syscall(200, pid, 9) == 0",
    "tgkill": "return libc.syscall(234, pid, pid, 9) == 0",
    "rt_sigqueueinfo": "return libc.syscall(129, pid, 9, info) == 0",
    "rt_tgsigqueueinfo": "return libc.syscall(297, pid, pid, 9, info) == 0",
    "pidfd_send_signal": ("fd = libc.syscall(434, pid, 0)\n"
                          "        return fd >= 0 and libc.syscall(424, fd, 9, None, 0) == 0"),
    "prlimit_cpu_zero": "return libc.syscall(302, pid, 0, ctypes.byref(zero), None) == 0",
    "setpriority": "os.setpriority(os.PRIO_PROCESS, pid, 19); return True",
    "sched_setaffinity": "os.sched_setaffinity(pid, {0}); return True",
    "ptrace_attach": "return libc.syscall(101, 16, pid, 0, 0) == 0",
    "sigio_owner": ("import fcntl\n        fcntl.fcntl(3, 8, pid)\n        fcntl.fcntl(3, 10, 9)\n"
                    "        fcntl.fcntl(3, 4, fcntl.fcntl(3, 3) | 0o20000)\n"
                    "        os.write(3, b' ' * 65536)\n        return True"),
}


def attacker(attack: str) -> str:
    return f"""import ctypes, os, time
libc = ctypes.CDLL(None, use_errno=True)
info = ctypes.create_string_buffer(128)
info[8:12] = (-1).to_bytes(4, 'little', signed=True)  # si_code = SI_QUEUE
zero = (ctypes.c_uint64 * 2)(0, 0)

def hit(pid):
    try:
        {ATTACKS[attack]}
    except OSError:
        return False

def f():
    me, hits = os.getpid(), 0
    targets = sorted(set(range(2, 64)) | set(range(max(2, me - 64), me + 64)) - {{me}})
    for _ in range(5):  # sweep while the victims sleep
        time.sleep(0.1)
        hits += sum(bool(hit(pid)) for pid in targets)
    return hits
"""


@pytest.fixture(scope="module")
def sandbox():
    with Executor(workers=2, limits=LIMITS, untrusted=True) as ex:
        yield ex


@pytest.fixture(scope="module")
def landlock_only():
    """No namespaces and no seccomp: what per-job Landlock alone must still keep apart."""
    with pytest.warns(RuntimeWarning, match="reduced isolation"):
        backend = SandboxPool(2, LIMITS, harden=False, seccomp=False)
    ex = Executor._with_backend(backend, 2, LIMITS)
    report = ex.isolation_report()
    if "signals and abstract sockets scoped" not in report["landlock"]:
        ex.close()
        pytest.skip(f"Landlock cannot scope signals here: {report['landlock']}")
    yield ex
    ex.close()


def clash(attacks: list[str], **pool) -> dict[str, tuple[CallResult, CallResult]]:
    """One victim per attack and every attacker, all running at once; (victim, attacker) per attack."""
    workers = 2 * len(attacks)
    if pool:
        backend = SandboxPool(workers, LIMITS, **pool)
        ex = Executor._with_backend(backend, workers, LIMITS)
    else:
        ex = Executor(workers=workers, limits=LIMITS, untrusted=True)
    with ex:
        out = ex.run([Job(VICTIM, "f", ({},)) for _ in attacks] + [Job(attacker(a), "f", ({},)) for a in attacks])
    return {a: (out[i][0], out[len(attacks) + i][0]) for i, a in enumerate(attacks)}


@pytest.fixture(scope="module")
def full_clash():
    return clash(sorted(ATTACKS))


LANDLOCK_ATTACKS = ["kill", "killpg", "tgkill", "pidfd_send_signal", "rt_sigqueueinfo", "sigio_owner"]


@pytest.fixture(scope="module")
def landlock_clash(landlock_only):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the landlock_only fixture checked it
        return clash(LANDLOCK_ATTACKS, harden=False, seccomp=False)


def side_by_side(ex: Executor, victim: str, attack_source: str) -> tuple[CallResult, CallResult]:
    [victim_res], [attack_res] = ex.run([Job(victim, "f", ({},)), Job(attack_source, "f", ({},))])
    return victim_res, attack_res


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_no_route_reaches_a_sibling(full_clash, attack):
    victim, result = full_clash[attack]
    assert victim == CallResult("ok", "alive"), f"{attack} reached a sibling: {victim}"
    assert not (result.ok and result.value), f"{attack} succeeded {result.value} times"


@pytest.mark.parametrize("attack", LANDLOCK_ATTACKS)
def test_landlock_alone_keeps_siblings_apart(landlock_clash, attack):
    """Same uid, same PID namespace, no seccomp: each job's Landlock domain still blocks every signal.

    (Not covered by Landlock, so not tried here: ``prlimit``/``setpriority`` on a sibling or on
    the server; seccomp allows them only on the job itself, and PID namespaces hide the rest.)
    """
    victim, result = landlock_clash[attack]
    assert victim == CallResult("ok", "alive"), f"{attack} reached a sibling: {victim}"
    assert not (result.ok and result.value)


# --- scratch folders --------------------------------------------------------------------------

LEAVE = """import os
def f():
    done = []
    for path in ('left.txt', os.path.join(os.path.dirname(os.getcwd()), 'left.txt'), '/scratch/left.txt',
                 '/tmp/left.txt', os.path.join(os.environ.get('TMPDIR', '.'), 'tmp-left.txt')):
        try:
            with open(path, 'w') as fh:
                fh.write('from an earlier job')
            done.append(path)
        except OSError:
            pass
    return done
"""
LOOK = """import os
def f(paths):
    found = []
    for path in paths + ['left.txt', 'tmp-left.txt']:
        try:
            found.append((path, open(path).read()))
        except OSError:
            pass
    for folder in ('.', os.path.dirname(os.getcwd()), '/scratch'):
        try:
            found += [(folder, name) for name in os.listdir(folder)]
        except OSError:
            pass
    return found
"""


def test_nothing_a_job_writes_reaches_a_later_job(sandbox):
    [[left]] = sandbox.run([Job(LEAVE, "f", ({},))])
    assert left.ok
    for _ in range(3):  # whichever slot the next job lands in
        [[found]] = sandbox.run([Job(LOOK, "f", ({"paths": left.value},))])
        assert found == CallResult("ok", []), found


def test_the_scratch_root_is_neither_writable_nor_listable(sandbox):
    src = ("import os\ndef f():\n    root = os.path.dirname(os.getcwd())\n    out = []\n"
           "    for act in (lambda: os.listdir(root), lambda: open(os.path.join(root, 'x'), 'w'),\n"
           "                lambda: os.mkdir(os.path.join(root, 'd')), lambda: os.chmod(root, 0o777)):\n"
           "        try:\n            act()\n            out.append('allowed')\n        except OSError:\n"
           "            out.append('denied')\n    return out\n")
    [[res]] = sandbox.run([Job(src, "f", ({},))])
    assert res == CallResult("ok", ["denied"] * 4)


SECRET_KEEPER = """import os, time
def f():
    with open('mine.txt', 'w') as fh:
        fh.write('kept')
    time.sleep(1.0)
    return open('mine.txt').read() + ':' + ','.join(sorted(os.listdir('.')))
"""
SNOOPER = """import os, time
def f():
    time.sleep(0.2)
    seen = []
    roots = {os.path.dirname(os.getcwd()), '/scratch'}
    for root in roots:
        names = []
        try:
            names = os.listdir(root)
        except OSError:
            pass
        for name in names + ['slot-%d' % k for k in range(8)] + ['job-%d' % k for k in range(8)]:
            if os.path.join(root, name) == os.getcwd():
                continue  # its own folder
            path = os.path.join(root, name, 'mine.txt')
            for act in (lambda: open(path).read(), lambda: open(path, 'w').write('stolen'),
                        lambda: os.unlink(path), lambda: open(os.path.join(root, name, 'planted'), 'w')):
                try:
                    act()
                    seen.append(path)
                except OSError:
                    pass
    return seen
"""


@pytest.mark.parametrize("mode", ["full", "landlock-only"])
def test_a_sibling_scratch_folder_is_out_of_reach(sandbox, landlock_only, mode):
    ex = sandbox if mode == "full" else landlock_only
    victim, snoop = side_by_side(ex, SECRET_KEEPER, SNOOPER)
    assert victim == CallResult("ok", "kept:mine.txt")
    assert snoop == CallResult("ok", [])


FILLER = """import time
def f():
    n = 0
    try:
        while n < 200:
            with open('fill-%d' % n, 'wb') as fh:
                fh.write(b'x' * (1 << 20))
            n += 1
    except OSError:
        pass
    time.sleep(1.2)  # keep the disk full while the sibling writes
    return n
"""
WRITER = """import time
def f():
    time.sleep(0.6)
    with open('mine.bin', 'wb') as fh:
        fh.write(b'y' * (512 << 10))
    return 'written'
"""


def test_filling_the_scratch_disk_does_not_starve_a_sibling(sandbox):
    writer, filler = side_by_side(sandbox, WRITER, FILLER)
    assert filler.ok and filler.value >= 1
    assert writer == CallResult("ok", "written"), "one job's full disk made its sibling fail"
