"""Execution throughput: programs/s through the executor vs one fresh ``python`` per program.

Each program is distinct (different constants, so nothing is served from a compile cache)
and is called once, like a generated item's gold-answer run. The naive baseline, measured
in the same run, starts ``python -c`` per program and reads its JSON from stdout (what a
harness without a pool does); a leaner ``python -I -S -c`` row is printed for reference. Prints programs/s for each
tier and the ratio to the baseline. The trusted row runs generated programs (``generated_source``); the sandbox row
runs the same programs as plain text, which always go to the isolated tier.

    python benchmarks/bench_execution.py [--n 20000] [--baseline-n 60] [--untrusted-n 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

from cf_tasks.executor import Executor, Job, Limits, generated_source

TEMPLATE = """def f(x, r):
    y = x + {a}
    if y > r:
        y = y * {b} - r
    else:
        y = (y + r) % {m}
    return y
"""


def programs(n: int, generated: bool = False) -> list[Job]:
    """``n`` distinct programs; ``generated=True`` marks them as the generator's (trusted pool)."""
    mark = generated_source if generated else str
    return [Job(mark(TEMPLATE.format(a=i % 97, b=i % 7 + 1, m=i % 11 + 2)), "f", ({"x": i % 13, "r": i % 5},))
            for i in range(n)]


def naive(jobs: list[Job], flags: tuple[str, ...] = ()) -> list:
    out = []
    for job in jobs:
        code = job.source + f"\nimport json\nprint(json.dumps(f(**{dict(job.calls[0])!r})))\n"
        proc = subprocess.run([sys.executable, *flags, "-c", code], capture_output=True, text=True, timeout=30)
        out.append(json.loads(proc.stdout))
    return out


def sandbox_cpu_s(ex: Executor) -> float:
    """CPU seconds used so far by the sandbox's processes: supervisor, server and every reaped job
    (a shared machine slows the wall clock; this count does not depend on what else runs)."""
    tick = os.sysconf("SC_CLK_TCK")
    supervisor = ex._isolated._proc.pid
    total = 0
    for pid in [supervisor] + [int(p) for p in open(f"/proc/{supervisor}/task/{supervisor}/children").read().split()]:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        total += sum(int(v) for v in fields[11:15])  # utime, stime, cutime, cstime
    return total / tick


def timed(fn, *args) -> tuple[float, object]:
    t = time.perf_counter()
    result = fn(*args)
    return time.perf_counter() - t, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20000, help="programs for the trusted pool")
    parser.add_argument("--untrusted-n", type=int, default=2000, help="programs for the untrusted tier (0 = skip)")
    parser.add_argument("--baseline-n", type=int, default=60, help="programs for the naive baseline")
    parser.add_argument("--workers", type=int, default=None, help="worker processes (default: CPU count)")
    args = parser.parse_args()
    workers = args.workers or os.cpu_count() or 1
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, workers={workers}")

    base_jobs = programs(args.baseline_n)
    base_s, base_out = timed(naive, base_jobs)
    base_rate = len(base_jobs) / base_s

    lean_s, lean_out = timed(naive, base_jobs, ("-I", "-S"))
    assert lean_out == base_out
    rows = [("naive: fresh python per program", len(base_jobs), base_rate),
            ("fresh python -I -S per program", len(base_jobs), len(base_jobs) / lean_s)]
    with Executor(workers=workers, limits=Limits()) as ex:
        ex.run(programs(50, generated=True))  # warm-up: workers started
        jobs = programs(args.n, generated=True)
        secs, out = timed(ex.run, jobs)
        assert [r[0].value for r in out[: len(base_out)]] == base_out, "executor disagrees with python"
        assert all(r[0].status == "ok" for r in out)
        rows.append(("trusted pool (batched)", len(jobs), len(jobs) / secs))
        trusted_rate = len(jobs) / secs
    if args.untrusted_n:
        with Executor(workers=workers, limits=Limits(), untrusted=True) as ex:
            ex.run(programs(20))
            jobs = programs(args.untrusted_n)
            cpu0 = sandbox_cpu_s(ex)
            secs, out = timed(ex.run, jobs)
            cpu = sandbox_cpu_s(ex) - cpu0
            assert [r[0].value for r in out[: len(base_out)]] == base_out[: len(jobs)]
            assert all(r[0].status == "ok" for r in out)
            rows.append(("untrusted sandbox (fork per job)", len(jobs), len(jobs) / secs))
            sandbox_note = (f"untrusted sandbox: {cpu / len(jobs) * 1e3:.2f} CPU-ms per program (supervisor, server "
                            f"and job processes), i.e. {len(jobs) / cpu * min(workers, os.cpu_count() or 1):.0f} "
                            f"programs/s on {workers} otherwise idle cores; load average at the end "
                            f"{os.getloadavg()[0]:.1f}")

    print(f"{'mode':36} {'programs':>9} {'programs/s':>12} {'vs naive':>9}")
    for name, n, rate in rows:
        print(f"{name:36} {n:>9} {rate:>12.0f} {rate / base_rate:>8.1f}x")
    if args.untrusted_n:
        print(sandbox_note)
    trusted_ratio = trusted_rate / base_rate
    print(f"trusted-tier speed-up: {trusted_ratio:.1f}x (goal >= 50x): {'PASS' if trusted_ratio >= 50 else 'MISS'}; "
          f"{trusted_rate / rows[1][2]:.1f}x against the leaner python -I -S baseline")


if __name__ == "__main__":
    main()
