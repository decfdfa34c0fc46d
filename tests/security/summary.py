"""Run the security suites and the crash sweep; write the counts table into docs/security.md.

Every number in the table comes from this run: pytest's JUnit XML for the suites in
``tests/security/`` (slow tests included) and the JSON of
``benchmarks/crash_safety.py``. Nothing is typed in by hand.

Run: ``python tests/security/summary.py [--points 8] [--write docs/security.md]``
(about 5 minutes on a 2-core machine).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
BEGIN, END = "<!-- security-summary:begin -->", "<!-- security-summary:end -->"
SUITES = {
    "test_evil_programs": "evil programs",
    "test_hostile_answers": "hostile answers",
    "test_malformed_inputs": "malformed inputs",
    "test_crash_safety": "crash safety",
}
# Sandbox v2 suites (issue 13): one row each, counted the same way.
SANDBOX_SUITES = [
    ("test_provenance_routes", "Document programs never reach the trusted pool (every route)"),
    ("test_job_isolation", "Jobs cannot reach each other (signals by every route, scratch)"),
    ("test_memory_scrub", "Caller's environment and memory never reach a job"),
    ("test_budgets_and_death", "Named budgets hold; the sandbox dies with its caller"),
    ("test_record_failures", "Failed assignments and odd return values fail their record"),
    ("test_isolation_claims", "Every enforced claim of isolation_report() checked"),
]


def run_pytest(junit: Path, slow: bool) -> int:
    cmd = [sys.executable, "-m", "pytest", str(HERE), "-q", "-p", "no:cacheprovider", f"--junitxml={junit}"]
    if slow:
        cmd.append("--runslow")
    return subprocess.run(cmd, cwd=REPO, timeout=3600).returncode


def outcomes(junit: Path) -> dict[str, Counter]:
    """Per suite module: passed / failed / error / skipped / xfailed counts, plus skip reasons."""
    per: dict[str, Counter] = defaultdict(Counter)
    for case in ET.parse(junit).getroot().iter("testcase"):
        module = case.get("classname", "").rsplit(".", 1)[-1]
        if case.find("failure") is not None:
            per[module]["failed"] += 1
        elif case.find("error") is not None:
            per[module]["error"] += 1
        elif (skipped := case.find("skipped")) is not None:
            kind = "xfailed" if skipped.get("type") == "pytest.xfail" else "skipped"
            per[module][kind] += 1
            per[module][f"{kind}: {(skipped.get('message') or '')[:90]}"] += 1
        else:
            per[module]["passed"] += 1
            if "survives_sigkill" in case.get("name", ""):
                per[module]["kill targets passed"] += 1
    return per


def run_sweep(points: int, out: Path) -> tuple[list[dict], str]:
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "crash_safety.py"), "--points", str(points),
                           "--json", str(out)], cwd=REPO, capture_output=True, text=True, timeout=3600)
    print(proc.stdout)
    if proc.returncode not in (0, 1):
        raise RuntimeError(proc.stderr[-3000:])
    return json.loads(out.read_text()), proc.stdout


def hostile_shape() -> tuple[int, int]:
    sys.path.insert(0, str(HERE))
    import hostile_corpus

    return len(hostile_corpus.build_corpus("/nonexistent/PWNED")), len(hostile_corpus.adapters())


def render(per: dict[str, Counter], sweep: list[dict], sweep_table: str, suite_points: int) -> str:
    def c(module: str, key: str) -> int:
        return per.get(module, Counter())[key]

    def failures(module: str) -> int:
        return c(module, "failed") + c(module, "error")

    n_answers, n_adapters = hostile_shape()
    evil_run = sum(c("test_evil_programs", k) for k in ("passed", "failed", "error"))
    hostile_cases = [k for k in ("passed", "xfailed", "failed", "error")]
    ours = [r for r in sweep if "baseline" not in r["target"]]
    baseline = [r for r in sweep if "baseline" in r["target"]]
    sweep_points = sum(len(r["kill_points"]) for r in ours)
    sweep_fail = sum(r["partial_files"] + r["orphans"] + r.get("sandbox_dirs", 0) + (not r["rerun_identical"])
                     for r in ours)
    crash_targets = c("test_crash_safety", "kill targets passed")
    rows = [
        ("Evil programs (untrusted executor tier)", "`tests/security/test_evil_programs.py`",
         f"{evil_run} runs (both sandbox modes)", f"{c('test_evil_programs', 'passed')} contained"
         + (f", {c('test_evil_programs', 'skipped')} skipped (OS layer missing)" if c('test_evil_programs', 'skipped')
            else ""), failures("test_evil_programs")),
        ("Hostile model answers", "`tests/security/test_hostile_answers.py`",
         f"{n_answers} answers x {n_adapters} parsers/metrics/rewards",
         f"{c('test_hostile_answers', 'passed')} passed, {c('test_hostile_answers', 'xfailed')} expected "
         "failures (KNOWN_ISSUES)", failures("test_hostile_answers")),
        ("Malformed inputs (YAML tasks, records, configs, plugins)", "`tests/security/test_malformed_inputs.py`",
         f"{sum(c('test_malformed_inputs', k) for k in hostile_cases)} cases",
         f"{c('test_malformed_inputs', 'passed')} passed, {c('test_malformed_inputs', 'xfailed')} expected "
         "failures",
         failures("test_malformed_inputs")),
        *[(title, f"`tests/security/{module}.py`",
           f"{sum(c(module, k) for k in ('passed', 'failed', 'error', 'skipped'))} tests",
           f"{c(module, 'passed')} passed" + (f", {c(module, 'skipped')} skipped (layer missing here)"
                                              if c(module, 'skipped') else ""), failures(module))
          for module, title in SANDBOX_SUITES],
        ("SIGKILL kill points (test suite)", "`tests/security/test_crash_safety.py`",
         f"{suite_points * max(crash_targets, 0)} ({crash_targets} targets x {suite_points})",
         "no partial file, reruns byte-identical", failures("test_crash_safety")),
        ("SIGKILL kill points (sweep)", "`benchmarks/crash_safety.py`", f"{sweep_points} ({len(ours)} targets)",
         f"{sum(r['killed'] for r in ours)} landed; partial files "
         f"{sum(r['partial_files'] for r in ours)}; orphans after 1 s {sum(r['orphans'] for r in ours)}; "
         f"sandbox dirs left {sum(r.get('sandbox_dirs', 0) for r in ours)}; reruns identical "
         f"{sum(r['rerun_identical'] for r in ours)}/{len(ours)}", sweep_fail),
    ]
    lines = [
        BEGIN,
        f"Generated by `python tests/security/summary.py` on {dt.date.today().isoformat()} "
        f"({platform.system()} {platform.release()}, Python {platform.python_version()}, "
        f"{__import__('os').cpu_count()} CPUs).",
        "",
        "| what | where | tried | outcome | failures |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {a} | {b} | {t} | {o} | {f} |" for a, b, t, o, f in rows]
    total = sum(r[-1] for r in rows)
    lines += ["", f"**Failures: {total}.**", ""]
    if baseline:
        b = baseline[0]
        lines += [f"Baseline in the same sweep: a naive streaming writer (`open(path, 'w')`, flush per chunk) "
                  f"killed at {len(b['kill_points'])} points left {b['partial_files']} partial files.", ""]
    skipped = sorted(k for m in per.values() for k in m if k.startswith("skipped: "))
    if skipped:
        lines += ["Skipped (with reason):", ""] + [f"- {k[len('skipped: '):]}" for k in skipped] + [""]
    lines += ["Sweep table (`benchmarks/crash_safety.py`):", "", "```", sweep_table.strip(), "```", END]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=8, help="kill points per target in the sweep")
    parser.add_argument("--write", default=str(REPO / "docs" / "security.md"), help="doc to update ('' to print)")
    parser.add_argument("--no-slow", action="store_true", help="skip the slow tests (GRAPE/BIDS kills)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        junit = Path(tmp) / "junit.xml"
        rc = run_pytest(junit, slow=not args.no_slow)
        per = outcomes(junit)
        sweep, stdout = run_sweep(args.points, Path(tmp) / "sweep.json")
    table_start = stdout.find("target")
    sweep_table = stdout[table_start:] if table_start >= 0 else stdout
    sys.path.insert(0, str(HERE))
    import test_crash_safety

    block = render(per, sweep, sweep_table, test_crash_safety.POINTS)
    print(block)
    if args.write:
        doc = Path(args.write)
        text = doc.read_text()
        start, end = text.index(BEGIN), text.index(END) + len(END)
        doc.write_text(text[:start] + block + text[end:])
    return rc


if __name__ == "__main__":
    sys.exit(main())
