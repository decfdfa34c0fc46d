"""The answer parser and the set metrics, including hostile model answers."""

import time

import pytest

from cf_tasks.answers import extract_answer_text, format_answer, last_boxed, parse_answer_set
from cf_tasks.metrics import score_set, set_scores


@pytest.mark.parametrize(
    "response, gold, em, f1",
    [
        ("so the answer is \\boxed{3, 7}", [3, 7], 1.0, 1.0),
        ("\\boxed{\\{7, 3\\}}", [3, 7], 1.0, 1.0),
        ("\\boxed{[3, 7]}", [3, 7], 1.0, 1.0),
        ("\\boxed{{3, 7}}", [7, 3], 1.0, 1.0),
        ("\\boxed{3, 7, 9}", [3, 7], 0.0, 0.8),  # hedging is not rewarded by exact match
        ("\\boxed{3}", [3, 7], 0.0, 2 / 3),
        ("first \\boxed{1} then \\boxed{-4}", [-4], 1.0, 1.0),  # the last box counts
        ("\\boxed{3.0}", [3], 1.0, 1.0),
        ("\\boxed{5/2}", [2.5], 1.0, 1.0),
        ("\\boxed{ -2 ,  -2 }", [-2], 1.0, 1.0),
        ("\\boxed{\u22125}", [-5], 1.0, 1.0),  # unicode minus sign
        ("no box here", [1], 0.0, 0.0),
        ("\\boxed{}", [1], 0.0, 0.0),
        ("\\boxed{True}", [1], 0.0, 0.0),  # a bool is not the integer 1
        ("\\boxed{'abc'}", ["abc"], 1.0, 1.0),
        ("<answer>4, 5</answer>", [4, 5], 1.0, 1.0),
        ("The final answer is 12.", [12], 1.0, 1.0),
        ("\\boxed{1e999999}", [1], 0.0, 0.0),
        ("\\boxed{3, 7", [3, 7], 0.0, 0.0),  # unbalanced box: no fallback to other text
    ],
)
def test_score_set(response, gold, em, f1):
    scores = score_set(response, gold)
    assert scores["exact_match"] == em
    assert scores["f1"] == pytest.approx(f1)


def test_set_scores_empty_prediction_is_zero():
    assert set_scores(None, frozenset({("num", 1)})) == {"exact_match": 0.0, "f1": 0.0}


def test_format_answer_round_trips():
    for gold in ([3, 7], [-1], [2.5, 1], ["a", "b"], [0]):
        assert score_set("x " + format_answer(gold), gold)["exact_match"] == 1.0
    assert format_answer([7, -1, 3]) == "\\boxed{-1, 3, 7}"


def test_nested_braces_balanced():
    assert last_boxed("\\boxed{\\frac{1}{2}} end") == "\\frac{1}{2}"
    assert last_boxed("\\boxed {4}") == "4"


HOSTILE = [
    "\\boxed{__import__('os').system('touch /tmp/cf_pwned')}",
    "\\boxed{10**10**10}",
    "\\boxed{" + "9" * 100_000 + "}",
    "\\boxed{" + "1" * 70 + "}",
    "\\boxed{" + "{" * 50_000 + "1" + "}" * 50_000 + "}",
    "\\boxed{" * 10_000,
    "\\boxed{\u0663, \u0667}",  # Arabic-Indic digits are not ASCII digits
    "\\boxed{1\x002}",
    "x" * 1_000_000 + "\\boxed{1}",
    "\\boxed{1}" * 20_000,
    "\\boxed{" + ", ".join(str(i) for i in range(2000)) + "}",
    "```python\nimport os\nos.remove('/')\n```\n\\boxed{exec('1')}",
    "\\boxed{lambda: 1}",
    "\\boxed{().__class__.__bases__[0].__subclasses__()}",
    "\\boxed{1e999999}",
    "\\boxed{1/0}",
    "\\boxed{" + "-" * 10_000 + "1}",
    "\\boxed{'" + "a" * 100_000 + "'}",
    "\\boxed{3" + "\u0301" * 1000 + "}",
    "Final answer: " + "7 " * 100_000,
]


@pytest.mark.parametrize("response", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_answers_are_fast_inert_and_deterministic(response, tmp_path):
    start = time.perf_counter()
    first = score_set(response, [1])
    elapsed = time.perf_counter() - start
    assert elapsed < 0.05, f"took {elapsed * 1000:.1f} ms"
    assert first == score_set(response, [1])
    assert 0.0 <= first["f1"] <= 1.0
    assert not (tmp_path / "cf_pwned").exists()


def test_hostile_values_never_match_gold():
    assert score_set("\\boxed{" + "9" * 100 + "}", [int("9" * 100)])["exact_match"] == 0.0
    assert parse_answer_set("\\boxed{10**10**10}") == frozenset({("num", 10)})
    assert extract_answer_text("\\boxed{" * 10_000) is None


def test_scoring_throughput_floor():
    response = "Let me reason. " * 40 + "So the answer is \\boxed{3, 7}."
    start = time.perf_counter()
    for _ in range(20_000):
        score_set(response, [3, 7])
    rate = 20_000 / (time.perf_counter() - start)
    assert rate > 20_000, f"{rate:.0f} responses/s"
