"""Failure is never silent, and only JSON scalars are answers (issue 13 class 2 and 5; issue 11, ``solve``).

An assignment that does not finish ``ok`` with an answer value makes its record an error
naming file and line; no gold set is ever computed from the remaining assignments. Before, a
killed or timed-out assignment was dropped and the set computed from the rest (``[1, 2]``
became ``[1]``, exit 0), a program returning a list ended in a traceback, huge ints were
accepted, an interventional record contradicting its own observation was accepted, a wrong
given ``answer`` named no line, and only the first bad record of a file was reported.
"""

from __future__ import annotations

import json

import pytest
from sandbox_probes import cli, record, write_records

from cf_tasks.abduction import SolveError, solve_records
from cf_tasks.executor import CallResult, Executor, JobResult, Limits

GOOD = "def f(x, r):\n    return x + r\n"
LIMITS = Limits(call_timeout_s=0.3, job_timeout_s=5.0, memory_mb=512, output_bytes=64_000)


@pytest.fixture(scope="module")
def sandbox():
    with Executor(workers=2, limits=LIMITS, untrusted=True) as ex:
        yield ex


def solve_cli(tmp_path, records: list[dict]) -> tuple[int, str, object]:
    path = write_records(tmp_path / "records.jsonl", records)
    out = tmp_path / "out" / "solved.jsonl"
    code, _, err = cli("solve", str(path), "-o", str(out), "--call-timeout-s", "0.3")
    assert "Traceback" not in err
    if code != 0:
        assert not out.exists(), "nothing may be written when a record is bad"
    return code, err, path


# Programs that do not give an answer value for some assignment of r in {1, 2, 3}.
ODD = {
    "returns a list": ("def f(x, r):\n    return [x, r] if r == 3 else x + r\n", "a list"),
    "returns a dict": ("def f(x, r):\n    return {'v': r} if r == 1 else x + r\n", "an object"),
    "returns a huge int": ("def f(x, r):\n    return 2 ** 70 if r == 1 else x + r\n", "an int beyond"),
    "returns NaN": ("def f(x, r):\n    return float('nan') if r == 1 else x + r\n", "not JSON"),
    "returns a set": ("def f(x, r):\n    return {1} if r == 1 else x + r\n", "not JSON"),
    "loops at one assignment": ("def f(x, r):\n    while r == 3:\n        pass\n    return x + r\n", "timeout"),
    "crashes at one assignment": ("import os\ndef f(x, r):\n    if r == 3:\n        os._exit(0)\n    return x + r\n",
                                  "crash"),
    "allocates too much": ("def f(x, r):\n    return len(bytearray(8 << 30)) if r == 3 else x + r\n", "limit"),
    "raises where the answer needs it": ("def f(x, r):\n    if x == 5 and r == 2:\n        raise KeyError(r)\n"
                                         "    return x + r\n", "KeyError"),
}


@pytest.mark.parametrize("case", sorted(ODD))
def test_an_assignment_without_an_answer_value_fails_its_record(tmp_path, case):
    program, reason = ODD[case]
    code, err, path = solve_cli(tmp_path, [record(GOOD, "fine"), record(program, "odd")])
    assert code == 2, err
    assert f"{path}:2:" in err and "record 'odd'" in err and reason in err, err
    assert f"{path}:1:" not in err


def test_a_killed_assignment_never_shrinks_the_gold_set():
    """The attack of the review: a sibling killed two of a record's runs; they came back as timeouts."""
    rec = record("def f(x, r):\n    return x + r % 2\n", "victim", latents={"r": [0, 1, 2, 3]},
                 observed={"inputs": {"x": 1}, "output": 1})

    class Killing:
        def run_jobs(self, jobs):
            real = Executor(workers=1, limits=LIMITS, untrusted=True)
            with real:
                out = real.run_jobs(jobs)
            calls = list(out[0].calls)
            calls[5] = calls[7] = CallResult("timeout", None, "job exceeded its 10s wall-clock limit")
            return [JobResult(calls, out[0].wall_s)]

    assert solve_records([rec])[0].answer == [5]
    with pytest.raises(SolveError, match="r=2 ended with timeout"):
        solve_records([rec], Killing())


def test_every_bad_record_of_a_file_is_reported_in_one_run(tmp_path):
    wrong = record(GOOD, "wrong", answer=[99])
    bad_field = record(GOOD, "no-latents", latents={})
    contradict = record(GOOD, "contradicts", variant="interventional", latent_values={"r": 1})
    odd = record(ODD["returns a list"][0], "list")
    lines = [record(GOOD, "a"), wrong, bad_field, record(GOOD, "b"), contradict, odd]
    path = write_records(tmp_path / "records.jsonl", lines)
    with open(path, "a") as fh:
        fh.write("{not json\n")
    code, _, err = cli("solve", str(path), "-o", str(tmp_path / "o.jsonl"))
    assert code == 2 and "5 bad records" in err, err
    for line, text in [(2, "field 'answer' record 'wrong': its 'answer' [99] disagrees with execution [7]"),
                       (3, "field 'latents'"), (5, "field 'latent_values' record 'contradicts'"),
                       (6, "field 'program' record 'list': the program returned a list"), (7, "invalid JSON")]:
        assert f"{path}:{line}: {text}" in err, (line, err)
    assert not (tmp_path / "o.jsonl").exists()


def test_an_interventional_record_must_agree_with_its_observation(tmp_path):
    code, err, path = solve_cli(tmp_path, [record(GOOD, "iv", variant="interventional", latent_values={"r": 1})])
    assert code == 2 and f"{path}:1: field 'latent_values'" in err and "contradict" in err, err
    code, err, path = solve_cli(tmp_path, [record(GOOD, "iv", variant="interventional", latent_values={"r": 2})])
    assert code == 0, err
    assert json.loads((tmp_path / "out" / "solved.jsonl").read_text())["answer"] == [7]


def test_a_raise_at_the_observed_inputs_is_evidence_not_an_error(tmp_path):
    """r=3 raises at the observed input: it cannot have produced the observation, so it is excluded
    (and counted); the answer is still a complete set."""
    program = "def f(x, r):\n    if x == 1 and r == 3:\n        raise ValueError(r)\n    return x + r\n"
    code, err, _ = solve_cli(tmp_path, [record(program, "ev")])
    assert code == 0, err
    item = json.loads((tmp_path / "out" / "solved.jsonl").read_text())
    assert item["answer"] == [7] and item["prior_answer"] == [6, 7, 8] and item["n_consistent"] == 1
    assert item["n_raised"] == 1


def test_only_bounded_scalars_are_accepted_as_given_outputs(tmp_path):
    code, err, path = solve_cli(tmp_path, [record(GOOD, "big", observed={"inputs": {"x": 1}, "output": 2 ** 64})])
    assert code == 2 and f"{path}:1: field 'observed.output'" in err and "an int beyond" in err, err
