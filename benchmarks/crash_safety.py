"""Crash safety: SIGKILL long jobs at seeded random moments; no partial output, identical reruns.

For each target (``cf-tasks generate``, ``cf-tasks solve``, ``cf-select grape``
scoring, ``cf-select bids`` feature extraction) the script

1. runs the command once, uninterrupted, in its own folder (the reference);
2. in a second folder, starts the same command and SIGKILLs its main process
   at each kill point -- seconds after the start for jobs that redo all their
   work, or a random number of new progress files (GRAPE score shards, BIDS
   feature shards, the temp file of an output being written) plus a random
   delay for resumable ones, so that every point lands inside the work even
   as earlier kills leave less of it. After every kill it checks the folder:
   every file must be byte-identical to the reference's file of that name or
   be a temp / resumable work file (``.NAME.XXXX.tmp``, ``*.partial``), and
   files whose content is run-specific (timings) must still parse;
3. reruns the command to completion in that folder and compares every output
   with the reference, byte for byte.

Kill points come from ``random.Random(seed)``. The baseline row is a naive
streaming writer (``open(path, "w")`` and a flush per chunk, paced over the
same duration as ``generate``) killed at the same relative moments: what a
job without temp-file-and-rename writes leaves behind.

Run: ``python benchmarks/crash_safety.py [--points 8] [--targets generate,solve,grape,bids] [--json out.json]``
(GRAPE and BIDS build a tiny local model; no download.)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
       "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": os.pathsep.join(
           [str(REPO), str(REPO / "tests"), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}


# -- targets --------------------------------------------------------------------------------------

@dataclass
class Target:
    """One command to interrupt. Paths in ``command`` are relative to the run folder."""

    name: str
    command: list[str]
    setup: Callable[[Path], None] = lambda folder: None
    progress: str | None = None  # glob of files the job writes as it goes (shards); kill points count new ones
    inputs: tuple[str, ...] = ()  # files written by setup (not outputs)
    volatile: dict[str, str] = field(default_factory=dict)  # rel path -> "json" | "text": content differs per run
    timeout: float = 300.0


def _normalise_volatile(kind: str, data: bytes) -> object:
    if kind == "json":
        obj = json.loads(data)
        return _strip_timings(obj)
    text = data.decode("utf-8")
    return re.sub(r"(?m)^(\s*[\w-]*(?:seconds|items_per_s|propose|execute|decide_and_build)\w*\s*[:=]).*$", r"\1",
                  text)


def _strip_timings(obj: object) -> object:
    if isinstance(obj, dict):
        return {k: _strip_timings(v) for k, v in obj.items()
                if not re.search(r"seconds|items_per_s|elapsed|_at$|time", k)}
    if isinstance(obj, list):
        return [_strip_timings(v) for v in obj]
    return obj


def generate_target(n: int = 5000) -> Target:
    return Target(
        "generate",
        [PY, "-m", "cf_tasks.cli", "generate", "--family", "if_else", "--level", "easy", "--n", str(n), "--seed", "7",
         "-o", "out", "-q"],
        volatile={"out/generation_report.json": "json", "out/README.md": "text"},
    )


def generate_write_target(n: int = 5000) -> Target:
    """``generate`` killed while its output is being written (the clock starts when the temp file appears)."""
    target = generate_target(n)
    target.name, target.progress = "generate (during the write)", "out/.data.jsonl.*.tmp"
    return target


def solve_target(records: Path) -> Target:
    def setup(folder: Path) -> None:
        shutil.copyfile(records, folder / "records.jsonl")

    return Target("solve", [PY, "-m", "cf_tasks.cli", "solve", "records.jsonl", "-o", "out/solved.jsonl"],
                  setup=setup, inputs=("records.jsonl",))


def grape_target(model: Path, n: int = 40, candidates: int = 8) -> Target:
    def setup(folder: Path) -> None:
        rows = []
        for i in range(n):
            responses = [f"{i + 3}", f"The answer is \\boxed{{{i + 3}}}.", "seven", f" {i} plus 3 is {i + 3}"]
            responses += [f"candidate {k} for {i} " * 5 for k in range(candidates - 4)]
            rows.append({"id": i, "instruction": f"what is {i} + 3? " * 8, "responses": responses[:candidates]})
        (folder / "pool.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    return Target(
        "grape",
        [PY, "-m", "selection.cli", "grape", "--model", str(model), "--data", "pool.jsonl", "--output",
         "out/selected.jsonl", "--shard-size", "1", "--max-batch-tokens", "256", "--no-progress"],
        setup=setup, progress="out/selected.jsonl.work/shard-*.jsonl", inputs=("pool.jsonl",),
    )


BIDS_SMALL = ["--epochs", "2", "--lora-r", "4", "--lora-alpha", "16", "--batch-size", "4", "--micro-batch-size", "4",
              "--learning-rate", "1e-3", "--warmup-fraction", "0.5", "--target-modules", "c_attn", "--proj-dim", "64",
              "--shard-size", "4", "--grad-batch-size", "4", "--device", "cpu", "--budget", "6"]


def bids_target(model: Path, n: int = 24) -> Target:
    def setup(folder: Path) -> None:
        train = []
        for i in range(n):
            if i % 3 == 0:
                train.append({"id": i, "prompt": f"Question: what is {i} + 3? Answer:", "completion": f" {i + 3}"})
            elif i % 3 == 1:
                train.append({"id": i, "prompt": f"def f(x, r):\n    if x > {i}:",
                              "completion": f"\n        return x + {i}\n"})
            else:
                train.append({"id": i, "messages": [
                    {"role": "user", "content": f"Give the answer {i}"},
                    {"role": "assistant", "content": f"The answer is \\boxed{{{i}}}."}]})
        math_val = [{"prompt": f"Question: what is {i} + 5? Answer:", "completion": f" {i + 5}"} for i in range(3)]
        code_val = [{"prompt": "def f(x, r):\n    if x > 3:", "completion": f"\n        return r - {i}\n"}
                    for i in range(2)]
        for name, rows in (("train", train), ("math", math_val), ("code", code_val)):
            (folder / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    return Target(
        "bids",
        [PY, "-m", "selection.cli", "bids", "--model", str(model), "--train", "train.jsonl", "--val",
         "math=math.jsonl", "code=code.jsonl", "--work-dir", "work", "--output", "out/selected.json", "--no-progress",
         *BIDS_SMALL],
        setup=setup, progress="work/features/*/*/shard-*.npy", inputs=("train.jsonl", "math.jsonl", "code.jsonl"),
        volatile={"work/influence.progress.json": "json"},
    )


# -- running and checking -------------------------------------------------------------------------

def is_scratch(rel: str) -> bool:
    """Temp files of atomic writes (``.NAME.XXXX.tmp`` files or folders) and resumable ``*.partial`` files."""
    parts = rel.split("/")
    return any(p.startswith(".") and p.endswith(".tmp") for p in parts) or rel.endswith(".partial")


def snapshot(folder: Path, inputs: tuple[str, ...]) -> dict[str, bytes]:
    out = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_file() and rel not in inputs:
            out[rel] = path.read_bytes()
    return out


def _descendants(pid: int) -> list[int]:
    try:
        import psutil

        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except Exception:  # noqa: BLE001 - psutil missing or the process already gone
        return []


ORPHAN_GRACE_S = 1.0
"""How long a killed job's processes (executor workers, the sandbox) may outlive it."""


def _reap(pids: list[int], grace: float = ORPHAN_GRACE_S) -> int:
    """Wait for the killed job's children to exit by themselves; SIGKILL and count the ones that do not."""
    try:
        import psutil
    except ImportError:
        return 0
    deadline = time.monotonic() + grace
    alive = []
    for pid in pids:
        try:
            alive.append(psutil.Process(pid))
        except psutil.NoSuchProcess:
            pass
    def running(p) -> bool:
        try:
            return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    while alive and time.monotonic() < deadline:
        alive = [p for p in alive if running(p)]
        time.sleep(0.02)
    for p in alive:
        try:
            p.kill()  # a child of the job this script started, still running after the grace period
        except psutil.NoSuchProcess:
            pass
    return len(alive)


@dataclass
class Run:
    returncode: int | None
    seconds: float
    progress_times: list[float]  # seconds after the start at which each new progress file appeared
    killed: bool
    orphans: int = 0
    stderr: str = ""
    sandbox_dirs: int = 0  # cf-sandbox-* temp folders left behind


@dataclass(frozen=True)
class KillPoint:
    """SIGKILL ``delay`` seconds after the ``after_files``-th new progress file (or after the start if 0)."""

    after_files: int
    delay: float

    def __str__(self) -> str:
        return f"{self.delay:.3f}s" if self.after_files == 0 else f"file {self.after_files} + {self.delay:.3f}s"


def run_command(target: Target, folder: Path, kill: KillPoint | None = None) -> Run:
    """Run in ``folder``; with ``kill``, SIGKILL the main process (only it, as ``kill -9 PID`` would) there."""
    existing = set(folder.glob(target.progress)) if target.progress else set()
    tmp = folder.parent / f".{folder.name}.tmpdir"  # the job's TMPDIR: sandbox folders left there are counted
    tmp.mkdir(exist_ok=True)
    start = time.monotonic()
    proc = subprocess.Popen(target.command, cwd=folder, env={**ENV, "TMPDIR": str(tmp)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, start_new_session=True)
    progress_times: list[float] = []
    seen: set = set()
    kill_at = start + kill.delay if kill is not None and kill.after_files == 0 else None
    children: list[int] = []
    killed = False
    stderr_chunks: list[bytes] = []
    os.set_blocking(proc.stderr.fileno(), False)
    while proc.poll() is None:
        now = time.monotonic()
        if target.progress:
            new = set(folder.glob(target.progress)) - existing - seen
            if new:
                seen |= new
                progress_times += [now - start] * len(new)
                if kill is not None and kill_at is None and len(seen) >= kill.after_files > 0:
                    kill_at = now + kill.delay
        if kill_at is not None and now >= kill_at:
            children = _descendants(proc.pid)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            killed = True
            break
        if now - start > target.timeout:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            raise TimeoutError(f"{target.name}: no exit after {target.timeout} s")
        chunk = proc.stderr.read()
        if chunk:
            stderr_chunks.append(chunk)
        time.sleep(0.002)
    rest = proc.stderr.read()
    if rest:
        stderr_chunks.append(rest)
    proc.stderr.close()
    seconds = time.monotonic() - start
    orphans = _reap(children) if killed else 0
    left = list(tmp.glob("cf-sandbox-*"))
    for path in left:
        shutil.rmtree(path, ignore_errors=True)
    return Run(proc.returncode, seconds, progress_times, killed, orphans,
               b"".join(stderr_chunks).decode("utf-8", "replace")[-3000:], len(left))


def check_folder(target: Target, folder: Path, reference: dict[str, bytes]) -> tuple[list[str], int]:
    """Problems (partial or unexpected files) and the number of temp/resumable leftovers."""
    problems, scratch = [], 0
    for rel, data in snapshot(folder, target.inputs).items():
        if is_scratch(rel):
            scratch += 1
        elif rel in target.volatile:
            try:
                _normalise_volatile(target.volatile[rel], data)
            except (ValueError, UnicodeDecodeError) as exc:
                problems.append(f"{rel}: unreadable ({exc})")
        elif rel not in reference:
            problems.append(f"{rel}: not an output of the uninterrupted run")
        elif data != reference[rel]:
            problems.append(f"{rel}: {len(data)} bytes differ from the reference's {len(reference[rel])} (partial?)")
    return problems, scratch


def same_as_reference(target: Target, folder: Path, reference: dict[str, bytes]) -> list[str]:
    mine = {rel: data for rel, data in snapshot(folder, target.inputs).items() if not is_scratch(rel)}
    problems = [f"missing {rel}" for rel in sorted(set(reference) - set(mine))]
    problems += [f"extra {rel}" for rel in sorted(set(mine) - set(reference))]
    for rel in sorted(set(mine) & set(reference)):
        kind = target.volatile.get(rel)
        if kind is None:
            if mine[rel] != reference[rel]:
                problems.append(f"{rel} differs")
        elif _normalise_volatile(kind, mine[rel]) != _normalise_volatile(kind, reference[rel]):
            problems.append(f"{rel} differs beyond timings")
    return problems


@dataclass
class Report:
    target: str
    kill_points: list[str]
    killed: int = 0
    partial_files: int = 0
    scratch_left: int = 0
    orphans: int = 0
    sandbox_dirs: int = 0
    rerun_identical: bool = False
    problems: list[str] = field(default_factory=list)
    reference_seconds: float = 0.0
    seconds: float = 0.0

    def ok(self) -> bool:
        return (self.partial_files == 0 and self.orphans == 0 and self.sandbox_dirs == 0 and self.rerun_identical
                and not self.problems)


def kill_delays(window: float, points: int, seed: int, lo: float = 0.05, hi: float = 0.95) -> list[float]:
    """``points`` seeded delays spread over ``[lo, hi] * window`` (stratified so they cover the window)."""
    rng = random.Random(seed)
    width = (hi - lo) / max(points, 1)
    return [round(window * (lo + width * (k + rng.random())), 4) for k in range(points)]


def kill_points(reference: Run, target: Target, points: int, seed: int) -> list[KillPoint]:
    """Seeded kill points that all land inside the work, even when every kill leaves less of it.

    Time-based (from the start) for jobs that redo everything on a rerun; for
    resumable jobs (``progress`` files) the k-th point waits for a random number
    of new progress files, at most its share of what is left, plus a random
    fraction of the mean time between two files.
    """
    if not target.progress:  # a later run may be a little faster than the reference: stay clear of its end
        return [KillPoint(0, d) for d in kill_delays(reference.seconds, points, seed, hi=0.85)]
    times = reference.progress_times
    if not times:
        raise RuntimeError(f"{target.name}: the reference run wrote no {target.progress}")
    rng = random.Random(seed)
    if len(times) == 1:  # one progress file (a temp file being written): kill within the rest of the run
        return [KillPoint(1, d) for d in kill_delays(reference.seconds - times[0], points, seed, hi=0.5)]
    interval = (times[-1] - times[0]) / (len(times) - 1)
    left, out = len(times), []
    for k in range(points):
        share = max(1, left // (points - k + 1))
        files = rng.randint(1, share)
        out.append(KillPoint(files, round(rng.random() * interval, 4)))
        left -= files + 1  # the file in flight at the kill is lost and redone
    return out


def crash_test(target: Target, root: Path, points: int, seed: int = 0) -> Report:
    """Reference run, ``points`` SIGKILLs in one folder, then a completing rerun compared byte for byte."""
    started = time.monotonic()
    slug = re.sub(r"[^a-z0-9]+", "-", target.name.lower()).strip("-")
    ref_dir, crash_dir = root / f"{slug}-ref", root / f"{slug}-crash"
    for folder in (ref_dir, crash_dir):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        target.setup(folder)
    ref = run_command(target, ref_dir)
    if ref.returncode != 0:
        raise RuntimeError(f"{target.name}: reference run failed ({ref.returncode}): {ref.stderr}")
    reference = {rel: data for rel, data in snapshot(ref_dir, target.inputs).items() if not is_scratch(rel)}
    plan = kill_points(ref, target, points, seed)
    report = Report(target.name, [str(k) for k in plan], reference_seconds=round(ref.seconds, 2))
    for point in plan:
        run = run_command(target, crash_dir, kill=point)
        report.killed += run.killed
        report.orphans += run.orphans
        report.sandbox_dirs += run.sandbox_dirs
        problems, _ = check_folder(target, crash_dir, reference)
        report.partial_files += len(problems)
        report.problems += [f"kill at {point}: {p}" for p in problems]
        if not run.killed and run.returncode != 0:
            report.problems.append(f"kill at {point}: the run failed before the kill: {run.stderr}")
    final = run_command(target, crash_dir)
    if final.returncode != 0:
        report.problems.append(f"rerun failed ({final.returncode}): {final.stderr}")
    else:
        diff = same_as_reference(target, crash_dir, reference)
        report.rerun_identical = not diff
        report.problems += [f"rerun: {d}" for d in diff]
    report.scratch_left = check_folder(target, crash_dir, reference)[1]
    report.seconds = round(time.monotonic() - started, 2)
    return report


# -- baseline: a naive streaming writer killed at the same relative moments ------------------------

NAIVE_WRITER = r"""
import sys, time
data, out, seconds = open(sys.argv[1], "rb").read().splitlines(keepends=True), sys.argv[2], float(sys.argv[3])
chunks = [data[i:i + 100] for i in range(0, len(data), 100)]
with open(out, "wb") as handle:
    for chunk in chunks:
        handle.writelines(chunk)
        handle.flush()
        time.sleep(seconds / len(chunks))
"""


def naive_baseline(reference_file: Path, seconds: float, root: Path, points: int, seed: int = 0) -> Report:
    folder = root / "naive"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    expected = reference_file.read_bytes()
    target = Target("naive streaming writer (baseline)",
                    [PY, "-c", NAIVE_WRITER, str(reference_file), "data.jsonl", str(seconds)])
    delays = kill_delays(seconds, points, seed)
    report = Report(target.name, [f"{d:.3f}s" for d in delays], reference_seconds=seconds)
    started = time.monotonic()
    for delay in delays:
        run = run_command(target, folder, kill=KillPoint(0, delay))
        report.killed += run.killed
        out = folder / "data.jsonl"
        if out.exists() and out.read_bytes() != expected:
            report.partial_files += 1
    report.rerun_identical = run_command(target, folder).returncode == 0 and (folder / "data.jsonl").read_bytes() == \
        expected
    report.seconds = round(time.monotonic() - started, 2)
    return report


# -- command line ---------------------------------------------------------------------------------

def build_targets(names: list[str], root: Path, generate_n: int, solve_n: int = 1500) -> list[Target]:
    targets = []
    model = None
    if {"grape", "bids"} & set(names):
        from helpers.tiny_lm import save_tiny_lm  # tests/helpers (on sys.path below)

        model = save_tiny_lm(root / "tiny_lm")
    for name in names:
        if name == "generate":
            targets.append(generate_target(generate_n))
            targets.append(generate_write_target(generate_n))
        elif name == "solve":
            records = root / "records.jsonl"
            if not records.exists():
                proc = subprocess.run([PY, "-m", "cf_tasks.cli", "generate", "--family", "if_else", "--level", "easy",
                                       "--n", str(solve_n), "--seed", "11", "-o", str(root / "records_src"), "-q"],
                                      env=ENV, capture_output=True, text=True, timeout=300)
                if proc.returncode != 0:
                    raise RuntimeError(proc.stderr)
                shutil.copyfile(root / "records_src" / "data.jsonl", records)
            targets.append(solve_target(records))
        elif name == "grape":
            targets.append(grape_target(model))
        elif name == "bids":
            targets.append(bids_target(model))
        else:
            raise SystemExit(f"unknown target {name!r}; targets: generate, solve, grape, bids")
    return targets


def print_table(reports: list[Report]) -> None:
    header = f"{'target':36s} {'kill points':>11s} {'killed':>6s} {'partial files':>13s} {'temp left':>9s} " \
             f"{'orphans':>7s} {'sandbox dirs':>12s} {'rerun identical':>15s} {'seconds':>8s}"
    print(header)
    print("-" * len(header))
    for r in reports:
        print(f"{r.target:36s} {len(r.kill_points):11d} {r.killed:6d} {r.partial_files:13d} {r.scratch_left:9d} "
              f"{r.orphans:7d} {r.sandbox_dirs:12d} {str(r.rerun_identical):>15s} {r.seconds:8.1f}")
    print(f"orphans: processes of a killed job alive {ORPHAN_GRACE_S:g}s after the kill; sandbox dirs: its "
          "cf-sandbox-* temp folders left")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--points", type=int, default=8, help="kill points per target")
    parser.add_argument("--targets", default="generate,solve,grape,bids")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--generate-n", type=int, default=20000, help="items for the generate target")
    parser.add_argument("--json", default=None, help="also write the reports here")
    parser.add_argument("--keep", default=None, help="work in this folder and keep it (default: a temp folder)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO / "tests"))
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="cf_crash_"))
    root.mkdir(parents=True, exist_ok=True)
    reports = []
    try:
        targets = build_targets([t for t in args.targets.split(",") if t], root, args.generate_n)
        for target in targets:
            print(f"{target.name}: {args.points} kill points ...", file=sys.stderr, flush=True)
            reports.append(crash_test(target, root, args.points, seed=args.seed))
        if any(r.target == "generate" for r in reports):
            gen = next(r for r in reports if r.target == "generate")
            reports.append(naive_baseline(root / "generate-ref" / "out" / "data.jsonl", gen.reference_seconds, root,
                                          args.points, seed=args.seed))
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print_table(reports)
    ours = [r for r in reports if "baseline" not in r.target]
    base = [r for r in reports if "baseline" in r.target]
    if base:
        print(f"\npartial files after SIGKILL: ours {sum(r.partial_files for r in ours)} over "
              f"{sum(len(r.kill_points) for r in ours)} kill points; naive streaming writer "
              f"{base[0].partial_files} over {len(base[0].kill_points)}")
    for r in ours:
        for p in r.problems:
            print(f"  {r.target}: {p}")
    if args.json:
        Path(args.json).write_text(json.dumps([r.__dict__ for r in reports], indent=2) + "\n")
    return 0 if all(r.ok() for r in ours) else 1


if __name__ == "__main__":
    sys.exit(main())
