"""Reward functions: the benchmark's metric, picklable, thread-safe, safe on hostile text."""

from __future__ import annotations

import json
import pickle
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from cf_tasks import scoring
from training import rewards
from training.rewards import REWARDS, exact_match_reward, f1_reward, format_reward, resolve_reward

GOLD = json.dumps([3, 5])


def test_exact_match_is_set_equality():
    completions = [
        "so the outputs are \\boxed{3, 5}",
        "\\boxed{5, 3}",           # order does not matter
        "\\boxed{{3, 5}}",         # set braces inside the box
        "\\boxed{3}",              # missing element
        "\\boxed{3, 5, 7}",        # hedged: extra element
        "no box at all",
        "",
    ]
    assert exact_match_reward(completions, [GOLD] * len(completions)) == [1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0]


def test_hedging_never_gets_exact_match_but_gets_partial_f1():
    hedge = "\\boxed{" + ", ".join(str(i) for i in range(0, 50)) + "}"  # every value in a wide domain
    assert exact_match_reward([hedge], [GOLD]) == [0.0]
    (f1,) = f1_reward([hedge], [GOLD])
    assert 0.0 < f1 < 0.1
    assert f1_reward(["\\boxed{3, 5, 7}"], [GOLD]) == [pytest.approx(0.8)]


def test_last_box_counts():
    assert exact_match_reward(["first \\boxed{1} then \\boxed{3,5}"], [GOLD]) == [1.0]
    assert exact_match_reward(["first \\boxed{3,5} then \\boxed{1}"], [GOLD]) == [0.0]


def test_conversational_completions_and_list_gold():
    conv = [[{"role": "assistant", "content": "thinking... \\boxed{3, 5}"}],
            [{"role": "assistant", "content": [{"type": "text", "text": "\\boxed{4}"}]}]]
    assert exact_match_reward(conv, [[3, 5], [3, 5]]) == [1.0, 0.0]
    assert format_reward(conv) == [1.0, 1.0]


def test_format_reward():
    assert format_reward(["\\boxed{1}", "boxed 1", "\\boxed{unbalanced"]) == [1.0, 0.0, 0.0]


def test_missing_gold_is_not_applicable_and_missing_column_is_an_error():
    assert exact_match_reward(["\\boxed{1}"], [None]) == [None]
    with pytest.raises(ValueError, match="answer"):
        exact_match_reward(["\\boxed{1}"])
    with pytest.raises(ValueError, match="2 completions but 1 answers"):
        exact_match_reward(["a", "b"], [GOLD])


def test_trl_call_signature_extra_kwargs_are_accepted():
    out = exact_match_reward(prompts=["p"], completions=["\\boxed{3,5}"], completion_ids=[[1, 2]], answer=[GOLD],
                             family=["if_else"], id=["x"], trainer_state=None, log_extra=None, log_metric=None)
    assert out == [1.0]


@pytest.mark.parametrize("name", sorted(REWARDS))
def test_rewards_pickle_by_reference(name):
    func = REWARDS[name]
    assert pickle.loads(pickle.dumps(func)) is func
    assert resolve_reward(name) is func


def test_resolve_reward_by_module_path_and_errors():
    assert resolve_reward("training.rewards:f1_reward") is f1_reward
    with pytest.raises(ValueError, match="unknown reward 'exact'"):
        resolve_reward("exact")
    with pytest.raises(ImportError, match="no attribute"):
        resolve_reward("training.rewards:nope")


def test_rewards_in_threads_match_serial():
    completions = [f"\\boxed{{{i % 7}, {(i * 3) % 7}}}" for i in range(400)]
    answers = [json.dumps(sorted({i % 5, (i * 3) % 5})) for i in range(400)]
    serial = exact_match_reward(completions, answers), f1_reward(completions, answers)
    assert 0 < sum(serial[0]) < len(completions)  # a mix of right and wrong, so the comparison can fail

    def work(_):
        return exact_match_reward(completions, answers), f1_reward(completions, answers)

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(work, range(16)))
    assert all(r == serial for r in results)
    assert threading.current_thread() is threading.main_thread()


HOSTILE = [
    "\\boxed{__import__('os').system('touch /tmp/pwned_by_reward')}",
    "```python\nimport os\nos.system('touch /tmp/pwned_by_reward')\n```\n\\boxed{exec('1')}",
    "\\boxed{" + "9" * 100_000 + "}",
    "\\boxed{10**10**10}",
    "\\boxed{" * 20_000 + "1" + "}" * 20_000,
    "{" * 50_000 + "\\boxed{3, 5}",
    "\\boxed{" + ", ".join(["1e308"] * 5000) + "}",
    "\\boxed{nan, inf, -inf}",
    "\\boxed{3, 5" + "}" * 10 + "\\boxed{" * 100,
    "\x00\\boxed{\udcff}",
    "x" * 2_000_000,
]


def test_hostile_completions_are_fast_deterministic_and_never_executed(tmp_path):
    marker = "/tmp/pwned_by_reward"
    answers = [GOLD] * len(HOSTILE)
    start = time.perf_counter()
    first = (exact_match_reward(HOSTILE, answers), f1_reward(HOSTILE, answers), format_reward(HOSTILE))
    elapsed = time.perf_counter() - start
    second = (exact_match_reward(HOSTILE, answers), f1_reward(HOSTILE, answers), format_reward(HOSTILE))
    assert first == second
    assert all(isinstance(x, float) for part in first for x in part)
    assert first[0][:5] == [0.0] * 5  # code, huge and nested answers are wrong answers
    assert elapsed < 2.0, f"hostile completions took {elapsed:.2f}s"
    import os

    assert not os.path.exists(marker)


def test_family_scorer_registry_dispatch(monkeypatch):
    monkeypatch.setitem(rewards.SCORERS, "always_right", "tests_training_scorer:not_importable")
    monkeypatch.setattr(scoring, "_cache", {})
    # An unimportable family scorer falls back to the set scorer (logged), it does not crash training.
    assert exact_match_reward(["\\boxed{3,5}", "\\boxed{1}"], [GOLD, GOLD],
                              family=["always_right", "always_right"]) == [1.0, 0.0]

    monkeypatch.setitem(rewards.SCORERS, "lenient", "cf_tasks.scoring:score_set_answer")
    monkeypatch.setattr(scoring, "_cache", {})
    assert rewards.scorer_for("lenient") is rewards.score_set_answer
    assert rewards.scorer_for("if_else") is rewards.score_set_answer


def test_scalar_gold_is_a_one_element_set():
    assert exact_match_reward(["\\boxed{42}", "\\boxed{41}"], ["42", 42]) == [1.0, 0.0]


def test_math_items_use_the_math_scorer():
    from training.data import FamilySpec, generate_family_items, item_to_prompt_row

    (item,) = generate_family_items(FamilySpec("gsm", level="easy"), 1, seed=2)
    row = item_to_prompt_row(item, chat=False, system_prompt=None)
    gold = item["answer"][0]
    assert rewards.scorer_for("gsm") is rewards.score_math_answer
    completions = [f"so \\boxed{{{gold}}}", f"\\boxed{{{gold}.0}}", f"\\boxed{{{gold}, 1000003}}", "\\boxed{}"]
    out = exact_match_reward(completions, [row["answer"]] * 4, family=["gsm"] * 4)
    assert out == [1.0, 1.0, 0.0, 0.0]
