"""The exact number parser for math answers, including hostile model output."""

import os
import time
from fractions import Fraction as F

import pytest

from cf_tasks.lmeval.math_scoring import gold_number, process_results, score_number
from cf_tasks.math_answer import parse_final_number, parse_number


@pytest.mark.parametrize("response, value", [
    (r"\boxed{77}", F(77)),
    (r"so the total is \boxed{\$77}.", F(77)),
    (r"\boxed{77 \text{ dollars}}", F(77)),
    (r"\boxed{\text{77 trays}}", F(77)),
    (r"\boxed{-3}", F(-3)),
    ("\\boxed{\u22123}", F(-3)),
    (r"\boxed{-\$3}", F(-3)),
    (r"\boxed{3/4}", F(3, 4)),
    (r"\boxed{\frac{3}{4}}", F(3, 4)),
    (r"\boxed{-\dfrac{3}{4}}", F(-3, 4)),
    (r"\boxed{\tfrac34}", F(3, 4)),
    (r"\boxed{\frac{154}{2}}", F(77)),
    (r"\boxed{12.50}", F(25, 2)),
    (r"\boxed{.5}", F(1, 2)),
    (r"\boxed{77.}", F(77)),
    (r"\boxed{1,234}", F(1234)),
    (r"\boxed{\$1,234,567.50}", F(246913500, 200)),
    (r"\boxed{1{,}234}", F(1234)),
    (r"\boxed{1\,234}", F(1234)),
    (r"\boxed{25\%}", F(25)),
    (r"\boxed{€7.50}", F(15, 2)),
    (r"\boxed{£ 7}", F(7)),
    (r"\boxed{x = 77}", F(77)),
    (r"\boxed{'77'}", F(77)),  # what the reference solvers print for string answers
    ("\\boxed{\uff17\uff17}", F(77)),  # full-width digits
    (r"\boxed{{{{77}}}}", F(77)),
    (r"\boxed{5} then \boxed{6}", F(6)),  # the last box counts
    (r"The final answer is 42", F(42)),
    (r"\boxed{11 \times 7}", F(77)),  # LaTeX arithmetic: Math-Verify fallback
    (r"\boxed{\sqrt{49}}", F(7)),
    (r"\boxed{2^{3}}", F(8)),
])
def test_parses_exactly(response, value):
    assert parse_final_number(response) == value


@pytest.mark.parametrize("response", [
    r"\boxed{3 or 4}", r"\boxed{3, 4}", r"\boxed{3 \text{ or } 4}", r"\boxed{between 3 and 4}", r"\boxed{3 4}",
    r"\boxed{1,5}", r"\boxed{3 \lor 4}", r"\boxed{\pm 4}", r"\boxed{3; 4}", r"\boxed{11*7}",
])
def test_hedges_and_plain_text_arithmetic_score_zero(response):
    assert parse_final_number(response) is None


def test_no_box_or_broken_box():
    assert parse_final_number("I think it is 77 but I am not sure") is None
    assert parse_final_number(r"\boxed{77") is None
    assert parse_final_number("") is None
    assert parse_number(None) is None


def test_fallback_is_optional():
    assert parse_number(r"11 \times 7", arithmetic=False) is None
    assert parse_number("77", arithmetic=False) == 77


HOSTILE = [
    r"\boxed{__import__('os').system('touch /tmp/pwned_gsm')}",
    r"\boxed{exec(\"import os; os.remove('x')\")}",
    "\\boxed{```python\nimport shutil; shutil.rmtree('/')\n```}",
    r"\boxed{10**10**10}",
    r"\boxed{10^{10^{10}}}",
    r"\boxed{2^{2^{2^{2^{100}}}}}",
    r"\boxed{9^{999999}}",
    r"\boxed{" + "9" * 100_000 + "}",
    r"\boxed{" + "1" * 5000 + "/3}",
    r"\boxed{" + "{" * 5000 + "7" + "}" * 5000 + "}",
    r"\boxed{" * 20_000,
    "\\boxed{\u0667\u0667}",  # Arabic-Indic digits are not read as numbers
    "\\boxed{7\x007}",
    "\x00" * 100_000,
    "x" * 1_000_000,
    "x" * 1_000_000 + r"\boxed{3 or 4}",
    r"\boxed{" + "1, " * 300_000 + "}",
    r"\boxed{\frac{1}{0}}",
    r"\boxed{1/0}",
    r"\boxed{\sqrt{-4}}",
    r"\boxed{\frac{\frac{\frac{1}{2}}{3}}{4}}",
    r"\boxed{\infty}",
    r"\boxed{NaN}",
]


@pytest.mark.parametrize("index", range(len(HOSTILE)))
def test_hostile_answers_are_fast_and_never_executed(index):
    text = HOSTILE[index]
    parse_final_number(text)  # warm caches (Math-Verify import, regex compilation)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        value = parse_final_number(text)
        best = min(best, time.perf_counter() - start)
    assert best < 0.010, f"{best * 1000:.1f} ms"
    assert value is None or (abs(value.numerator).bit_length() < 300 and value.denominator.bit_length() < 300)
    assert not os.path.exists("/tmp/pwned_gsm")


def test_process_results_and_gold():
    doc = {"id": "x", "answer": ["12.5"]}
    assert process_results(doc, [r"... \boxed{12.50}"]) == {"acc": 1.0}
    assert process_results(doc, [r"... \boxed{\frac{25}{2}}"]) == {"acc": 1.0}
    assert process_results(doc, [r"... \boxed{12.5 or 13}"]) == {"acc": 0.0}
    assert process_results(doc, [[r"\boxed{12.5}"]]) == {"acc": 1.0}  # take_first_k hands a list
    assert process_results({"answer": '["77"]', "json_fields": ["answer"]}, [r"\boxed{77}"]) == {"acc": 1.0}
    assert process_results({"answer": [77]}, [r"\boxed{77}"]) == {"acc": 1.0}
    assert score_number(None, F(1)) == 0.0
    with pytest.raises(ValueError, match="one number"):
        gold_number({"answer": ["1", "2"]})
    with pytest.raises(ValueError, match="not a number"):
        gold_number({"answer": ["abc"]})
