"""Nothing of the caller's environment or memory reaches a job (issue 13, class 3).

Before, the zygote started with a full copy of ``os.environ``; ``os.environ.clear()`` in the
server left the original ``NAME=value`` strings on the process stack, where a program found
them with ctypes (from ``argv[0]`` up to ``AT_EXECFN``, the top of the initial stack) and
returned a secret as its "answer". Now the zygote is exec'd with a fixed environment.
"""

from __future__ import annotations

import gc
import os
import secrets

import psutil
import pytest
from sandbox_probes import run1

from cf_tasks.executor import Executor, Limits
from cf_tasks.executor.sandbox import ZYGOTE_ENV

NAME = "CF_TEST_SECRET_TOKEN"

# Returns every NAME=... string in the process's initial stack (argv, envp, auxv strings) and
# what os.environ and the libc environment say about NAME.
SCRAPER = f"""import ctypes, os, re
def f():
    libc = ctypes.CDLL(None)
    libc.getauxval.restype = ctypes.c_ulong
    libc.getauxval.argtypes = [ctypes.c_ulong]
    top = libc.getauxval(31)  # AT_EXECFN: a string at the very top of the initial stack
    start = ctypes.c_void_p.in_dll(libc, "program_invocation_name").value  # argv[0]
    blob = b""
    if start and top and top > start:
        blob = ctypes.string_at(start, top + len(ctypes.string_at(top)) + 1 - start)
    libc.getenv.restype = ctypes.c_char_p
    found = [m.decode('latin-1') for m in re.findall(rb"{NAME}=[^\\0]*", blob)]
    return {{"stack": found, "stack_bytes": len(blob), "os.environ": os.environ.get("{NAME}"),
             "getenv": (libc.getenv(b"{NAME}") or b"").decode('latin-1')}}
"""


@pytest.fixture()
def secret_in_caller_env(monkeypatch):
    value = "s3cr3t-" + secrets.token_hex(16)
    monkeypatch.setenv(NAME, value)  # set before the sandbox starts
    return value


def test_a_job_cannot_scrape_the_callers_environment(secret_in_caller_env):
    with Executor(workers=1, limits=Limits(output_bytes=200_000), untrusted=True) as ex:
        [res] = run1(ex, SCRAPER)
    assert res.ok, res
    assert res.value["stack_bytes"] > 0, "the scan found no stack strings (the attack did not run)"
    assert secret_in_caller_env not in repr(res.value), "a job read the caller's secret environment variable"
    assert res.value == {"stack": [], "stack_bytes": res.value["stack_bytes"], "os.environ": None, "getenv": ""}


def test_the_zygote_environment_is_the_fixed_one(secret_in_caller_env):
    with Executor(workers=1, untrusted=True) as ex:
        zygote = psutil.Process(ex._isolated._proc.pid)
        environ = zygote.environ()
        server = zygote.children()[0]
        assert server.environ() == environ
    assert environ == ZYGOTE_ENV


def test_a_job_finds_no_object_of_the_caller():
    """Jobs fork from the lean zygote, never from the caller: a value living only here is not in them."""
    canary = "canary-" + secrets.token_hex(16)
    keep = [canary]  # noqa: F841 - alive in this process while the job scans
    src = ("import gc, sys\ndef f():\n    hits = 0\n    for o in gc.get_objects():\n"
           "        if isinstance(o, str) and o.startswith('canary-'):\n            hits += 1\n"
           "    for m in list(sys.modules.values()):\n        for v in list(vars(m).values()):\n"
           "            if isinstance(v, str) and v.startswith('canary-'):\n                hits += 1\n"
           "    return hits\n")
    gc.collect()
    with Executor(workers=1, untrusted=True) as ex:
        [res] = run1(ex, src)
    assert res.ok and res.value == 0
    assert os.environ.get(NAME) is None
