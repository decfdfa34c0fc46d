"""Shared helpers of the sandbox attack suites (not a test module)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import psutil

from cf_tasks.executor import CallResult, Executor, Job

def sandbox_processes(tag: str) -> list[psutil.Process]:
    """Live processes whose command line names ``tag`` (a sandbox's host temp folder).

    Job children are clones of the zygote's server, so they carry its command line, which
    names the folder: escaped or reparented processes are found too.
    """
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        try:
            if any(tag in part for part in proc.info["cmdline"] or ()) and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    return found


def wait_gone(tag: str, timeout: float) -> tuple[list[psutil.Process], float]:
    """Poll until no process names ``tag``; returns (survivors, seconds waited)."""
    start = time.monotonic()
    while True:
        alive = sandbox_processes(tag)
        waited = time.monotonic() - start
        if not alive or waited > timeout:
            return alive, waited
        time.sleep(0.02)


def run1(ex: Executor, source: str, calls=({},)) -> list[CallResult]:
    [res] = ex.run([Job(source, "f", tuple(calls))])
    return res


def marker_program(marker: Path) -> str:
    """``f(x, r) = x + r``, which first tries to create ``marker``: only an unsandboxed run can."""
    return (f"def f(x, r):\n    try:\n        open({str(marker)!r}, 'w').write('ran outside the sandbox')\n"
            f"    except OSError:\n        pass\n    return x + r\n")


def record(program: str, rid: str = "p", **extra) -> dict:
    """A counterfactual record over ``r in {1, 2, 3}`` observed at ``x=1``, output 3 (r=2), intervened x=5."""
    base = {"id": rid, "program": program, "entry_point": "f", "latents": {"r": [1, 2, 3]},
            "observed": {"inputs": {"x": 1}, "output": 3}, "intervention": {"x": 5}}
    base.update(extra)
    return base


def write_records(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def cli(*args: str) -> tuple[int, str, str]:
    """Run ``cf-tasks`` in this process; (exit code, stdout, stderr)."""
    import contextlib
    import io

    from cf_tasks.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()
