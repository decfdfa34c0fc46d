"""Trusted pool: values, order, errors and every limit, with the pool still usable afterwards.

Only generated programs run in the trusted pool, so every job here is built through
``generated_source`` (as the generation pipeline does).
"""

from __future__ import annotations

import json
import time

import pytest

from cf_tasks.executor import CallResult, Executor, Limits
from cf_tasks.executor import Job as _Job
from cf_tasks.executor import generated_source


def Job(source, entry_point, calls):  # noqa: N802 - a generated job, spelled like the real one
    return _Job(generated_source(source), entry_point, tuple(calls))


LIMITS = Limits(call_timeout_s=0.25, job_timeout_s=1.5, memory_mb=512, output_bytes=20_000)

ADD = "def f(x, r):\n    return x * r if x > r else x - r\n"


@pytest.fixture(scope="module")
def ex():
    with Executor(workers=2, limits=LIMITS) as executor:
        yield executor


def job(body: str, calls=({},)) -> Job:
    return Job(body, "f", tuple(calls))


def expect_pool_still_works(ex: Executor) -> None:
    [[res]] = ex.run([job("def f(a):\n    return a + 1\n", [{"a": 41}])])
    assert res == CallResult("ok", 42)


def test_values_and_order_across_chunks(ex):
    jobs = [Job(ADD, "f", tuple({"x": x, "r": r} for r in range(4))) for x in range(600)]
    results = ex.run(jobs)
    assert len(results) == 600
    for x, per_job in enumerate(results):
        assert [c.value for c in per_job] == [x * r if x > r else x - r for r in range(4)]
        assert all(c.status == "ok" and c.error is None for c in per_job)


def test_json_values_round_trip(ex):
    src = "def f(v):\n    return v\n"
    values = [None, True, 3, -2.5, "é\u2603", [1, [2, {"a": None}]], {"k": [1, 2]}]
    [res] = ex.run([Job(src, "f", tuple({"v": v} for v in values))])
    assert [c.value for c in res] == values


def test_fresh_globals_per_job_shared_between_calls_of_a_job(ex):
    src = "seen = []\ndef f():\n    seen.append(1)\n    return len(seen)\n"
    results = ex.run([job(src, [{}, {}, {}]) for _ in range(5)])
    assert [[c.value for c in r] for r in results] == [[1, 2, 3]] * 5


def test_empty_inputs(ex):
    assert ex.run([]) == []
    assert ex.run([job(ADD, [])]) == [[]]


def test_errors_are_typed_and_truncated(ex):
    src = "def f(k):\n    if k == 0:\n        return 1 / 0\n    raise ValueError('x' * 10000)\n"
    [res] = ex.run([job(src, [{"k": 0}, {"k": 1}])])
    assert res[0] == CallResult("error", None, "ZeroDivisionError: division by zero")
    assert res[1].status == "error" and res[1].error.startswith("ValueError: xxx")
    assert len(res[1].error) <= 200


def test_syntax_error_missing_entry_point_bad_kwargs(ex):
    out = ex.run([job("def f(:\n", [{}, {}]), Job("def g():\n    return 1\n", "f", ({},)), job(ADD, [{"y": 1}])])
    assert [c.status for c in out[0]] == ["error", "error"] and out[0][0].error.startswith("SyntaxError")
    assert out[1][0].status == "error" and "NameError" in out[1][0].error
    assert out[2][0].status == "error" and out[2][0].error.startswith("TypeError")


def test_module_level_errors_affect_every_call(ex):
    [res] = ex.run([job("raise KeyError('boom')\ndef f():\n    return 1\n", [{}, {}])])
    assert [c.status for c in res] == ["error", "error"]


def test_sys_exit_is_an_error_not_a_crash(ex):
    [res] = ex.run([job("import sys\ndef f():\n    sys.exit(0)\n")])
    assert res[0].status == "error" and res[0].error.startswith("SystemExit")
    expect_pool_still_works(ex)


def test_print_does_not_corrupt_the_protocol(ex):
    src = "def f():\n    print('\\x00\\x00\\x00\\x05hello' * 1000)\n    return 7\n"
    assert ex.run([job(src)] * 3) == [[CallResult("ok", 7)]] * 3


def test_python_infinite_loop_times_out_per_call(ex):
    src = "def f(k):\n    if k:\n        while True:\n            pass\n    return 5\n"
    t = time.monotonic()
    [res] = ex.run([job(src, [{"k": 0}, {"k": 1}, {"k": 0}])])
    assert [c.status for c in res] == ["ok", "timeout", "ok"]
    assert time.monotonic() - t < 1.5  # the in-worker timer, not the wall-clock kill
    expect_pool_still_works(ex)


def test_timeout_swallowed_by_except_baseexception(ex):
    src = ("def f():\n    while True:\n        try:\n            while True:\n                pass\n"
           "        except BaseException:\n            pass\n")
    [[res]] = ex.run([job(src)])
    assert res.status == "timeout"
    expect_pool_still_works(ex)


def test_timeout_swallowed_then_value_returned_is_not_ok(ex):
    src = "def f():\n    try:\n        while True:\n            pass\n    except BaseException:\n        return 1\n"
    [[res]] = ex.run([job(src)])
    assert res.status == "timeout"


def test_c_level_loop_is_killed_and_neighbours_survive(ex):
    ok = job("def f():\n    return 'fine'\n")
    t = time.monotonic()
    out = ex.run([ok, job("def f():\n    return sum(range(10**12))\n"), ok])
    assert [r[0].status for r in out] == ["ok", "timeout", "ok"]
    assert out[0][0].value == out[2][0].value == "fine"
    assert time.monotonic() - t < 6
    expect_pool_still_works(ex)


def test_memory_bomb_is_a_limit(ex):
    [[res]] = ex.run([job("def f():\n    return len(bytearray(8 * 1024**3))\n")])
    assert res.status == "limit" and "MemoryError" in res.error
    expect_pool_still_works(ex)


def test_huge_output_is_a_limit(ex):
    [res] = ex.run([job("def f(n):\n    return 'x' * n\n", [{"n": 100}, {"n": 50_000}, {"n": 100}])])
    assert [c.status for c in res] == ["ok", "limit", "ok"]


def test_output_budget_is_per_job(ex):
    [res] = ex.run([job("def f():\n    return 'x' * 8000\n", [{}] * 4)])
    assert [c.status for c in res] == ["ok", "ok", "limit", "limit"]


@pytest.mark.parametrize("body", ["return {1, 2}", "return object()", "return float('nan')", "return f"])
def test_non_json_result_is_a_limit(ex, body):
    [[res]] = ex.run([job(f"def f():\n    {body}\n")])
    assert res.status == "limit" and res.value is None


def test_huge_int_result_is_a_limit(ex):
    [[res]] = ex.run([job("def f():\n    return 7 ** 20000\n")])
    assert res.status == "limit"


def test_recursion_is_a_limit(ex):
    [[res]] = ex.run([job("def f(n=0):\n    return f(n + 1)\n")])
    assert res.status == "limit" and "RecursionError" in res.error
    expect_pool_still_works(ex)


def test_worker_crash_is_isolated_and_recovered(ex):
    ok = job("def f():\n    return 1\n")
    boom = job("import os\ndef f():\n    os._exit(0)\n")
    out = ex.run([ok] * 3 + [boom] + [ok] * 3 + [boom, ok])
    assert [r[0].status for r in out] == ["ok"] * 3 + ["crash"] + ["ok"] * 3 + ["crash", "ok"]
    expect_pool_still_works(ex)


def test_segfault_is_a_crash(ex):
    [[res]] = ex.run([job("import ctypes\ndef f():\n    return ctypes.string_at(0)\n")])
    assert res.status == "crash"
    expect_pool_still_works(ex)


def test_job_wall_clock_limit(ex):
    t = time.monotonic()
    [[res]] = ex.run([job("import time\ndef f():\n    time.sleep(30)\n")])
    assert res.status == "timeout" and "wall-clock" in res.error
    assert time.monotonic() - t < 5
    expect_pool_still_works(ex)


def test_numpy_imports_under_the_memory_cap(ex):
    pytest.importorskip("numpy")
    [[res]] = ex.run([job("import numpy as np\ndef f():\n    return int(np.arange(10).sum())\n")])
    assert res == CallResult("ok", 45)


def test_results_are_json_decoded_copies(ex):
    [[res]] = ex.run([job("def f():\n    return {'a': (1, 2)}\n")])
    assert res.value == {"a": [1, 2]} and json.dumps(res.value)


def test_rejects_non_jobs_and_bad_config():
    with pytest.raises(ValueError, match="workers"):
        Executor(workers=0)
    with pytest.raises(ValueError, match="call_timeout_s"):
        Limits(call_timeout_s=0)
    with Executor(workers=1) as ex:
        with pytest.raises(ValueError, match=r"jobs\[0\]"):
            ex.run([("def f(): pass", "f", ({},))])
        with pytest.raises(ValueError, match=r"jobs\[1\]\.calls\[1\] is not JSON"):
            ex.run([job(ADD, [{"x": 1, "r": 2}]), job(ADD, [{"x": 1, "r": 2}, {"x": {1, 2}, "r": 0}])])
        assert ex.run([job(ADD, [{"x": 1, "r": 2}])]) == [[CallResult("ok", -1)]]
