"""Hostile model answers through every parser, metric and reward (issue 7, "Hostile answers").

The corpus (``hostile_corpus.py``) is scored in a child process with an audit
hook armed (``exec``/``compile``/``import``/``open``/process/socket/ctypes
events are recorded), once per adapter and entry; the records come back as
JSON and each (adapter, entry) pair is one test here:

* nothing executed: no forbidden audit event, the marker file never appears;
* bounded: the first, uncached call stays under a generous budget that only a
  super-linear scan can exceed on a loaded 2-core machine (the strict 10 ms
  budget is timed by ``benchmarks/bench_hostile_answers.py``, not here);
* deterministic: repeated calls agree, and a second child with another
  ``PYTHONHASHSEED`` produces the same results;
* never fooled: exact match is 1 only for entries that are literally the gold.

Problems found in modules owned by others are listed in ``KNOWN_ISSUES``: when
a listed problem reproduces the test is an expected failure naming the file
and input; once fixed it simply passes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import hostile_corpus as hc

HERE = Path(__file__).parent
# Generous on purpose: a linear scan of the largest (1 MB) entry costs a few ms even with the other core
# busy; a quadratic one costs seconds. Strict timing lives in benchmarks/bench_hostile_answers.py.
FIRST_CALL_BUDGET_MS = 250.0
CEILING_MS = 2000.0  # even a known-slow module must never take this long (catastrophic backtracking)
ADAPTERS = sorted(hc.adapters())
CORPUS = {e.name: e for e in hc.build_corpus("/nonexistent/PWNED")}  # texts only; the marker is unused here
ENTRY_NAMES = list(CORPUS)


def _math_reward_wired() -> bool:
    from cf_tasks.scoring import SCORERS, load_object

    try:
        load_object(SCORERS["gsm"])
    except (ImportError, KeyError):
        return False
    return True


# (adapter prefix, entry name or "*", kind) -> reason. kind: "slow" or "wrong". Problems found in other
# modules are listed here while they reproduce (the test then xfails); all found so far are fixed.
KNOWN_ISSUES: dict[tuple[str, str, str], str] = {}
if "training.rewards" in sys.modules or any(a.startswith("rewards.") for a in ADAPTERS):
    if not _math_reward_wired():
        KNOWN_ISSUES[("rewards.exact_match_reward[gsm]", "*", "wrong")] = (
            "training/rewards.py: SCORERS['gsm'] names 'cf_tasks.lmeval.math_scoring:score_math', which does not "
            "exist (the module has score_number/process_results), so gsm rewards silently fall back to the set "
            "scorer (e.g. '\\boxed{\uff13}' and '\\boxed{3 \\times 4}' are rewarded 0 though the benchmark scores 1)")


def known_issue(adapter: str, entry: str, kind: str) -> str | None:
    for (prefix, name, k), reason in KNOWN_ISSUES.items():
        if k == kind and adapter.startswith(prefix) and name in ("*", entry):
            return reason
    return None


def _run_corpus(marker: Path, hash_seed: str, *extra: str) -> dict:
    env = dict(os.environ, PYTHONHASHSEED=hash_seed, TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run([sys.executable, str(HERE / "hostile_corpus.py"), str(marker), *extra],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def marker_dir():
    path = hc.marker_dir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def run(marker_dir) -> dict:
    return _run_corpus(marker_dir, "12345")


def test_corpus_is_big_and_varied():
    corpus = list(CORPUS.values())
    assert len(corpus) >= 50
    categories = {e.category for e in corpus}
    assert {"code", "arith", "digits", "braces", "unicode", "nul", "size", "latex", "redos"} <= categories
    assert any(len(e.text) >= 1_000_000 for e in corpus)
    assert any("\x00" in e.text for e in corpus)
    assert all(isinstance(g, int) for e in corpus for g in e.gold)


def test_every_parser_metric_and_reward_is_covered(run):
    assert run["adapters"] == ADAPTERS
    expected = {"answers.parse_answer_set", "metrics.score_set", "lmeval.scoring.process_results"}
    for module, name in [("cf_tasks.math_answer", "math_answer.parse_final_number"),
                         ("cf_tasks.lmeval.math_scoring", "lmeval.math_scoring.process_results"),
                         ("training.rewards", "rewards.exact_match_reward"),
                         ("cf_tasks.report.tags", "report.tags.tag_sample")]:
        if hc.importable(module):
            expected.add(name)
    assert expected <= set(ADAPTERS)
    assert run["n_entries"] == len(ENTRY_NAMES)
    assert len(run["records"]) == len(ADAPTERS) * len(ENTRY_NAMES)


def test_nothing_executed_spawned_or_opened(run, marker_dir):
    assert run["violations"] == []
    assert list(marker_dir.iterdir()) == []


def test_audit_hook_sees_real_execution(run):
    """Positive control: the same auditor flags eval, compile, a socket and an open."""
    seen = " ".join(run["control"])
    for where in ("control/eval", "control/compile", "control/socket", "control/open"):
        assert where in seen, run["control"]


def test_results_do_not_depend_on_the_process_or_hash_seed(run, marker_dir):
    other = _run_corpus(marker_dir, "0", "--max-chars", "65536")
    assert other["violations"] == []
    assert other["records"], "no small entries"
    for key, record in other["records"].items():
        assert record["digest"] == run["records"][key]["digest"], (key, record["result"], run["records"][key]["result"])


@pytest.mark.parametrize("entry", ENTRY_NAMES)
@pytest.mark.parametrize("adapter", ADAPTERS)
def test_hostile_answer(run, adapter, entry):
    record = run["records"][f"{adapter}/{entry}"]
    assert record["stable"], f"{adapter} gives different results for the same text: {record['result']}"
    expected = float(hc.expected_correct(adapter, CORPUS[entry]))
    problems = []
    if record["exact_match"] is not None and record["exact_match"] != expected:
        reason = known_issue(adapter, entry, "wrong")
        if reason is None:
            problems.append(f"exact match {record['exact_match']}, expected {expected} (result {record['result']})")
        else:
            problems.append(f"KNOWN: {reason}")
    if record["first_ms"] > FIRST_CALL_BUDGET_MS:
        reason = known_issue(adapter, entry, "slow")
        assert record["first_ms"] < CEILING_MS, f"{adapter} took {record['first_ms']:.0f} ms on {entry}"
        if reason is None:
            problems.append(f"the first (uncached) call took {record['first_ms']:.1f} ms "
                            f"(budget {FIRST_CALL_BUDGET_MS} ms)")
        else:
            problems.append(f"KNOWN: {reason} ({record['first_ms']:.0f} ms)")
    if problems and all(p.startswith("KNOWN: ") for p in problems):
        pytest.xfail("; ".join(problems))
    assert not problems, f"{adapter} on {entry}: " + "; ".join(problems)

