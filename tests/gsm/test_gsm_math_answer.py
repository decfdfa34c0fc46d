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
    (r"\boxed{5} then \boxed{6}", F(6)),  # "then": a new step, the last box counts
    (r"\boxed{77}, \boxed{77}", F(77)),  # a box list that agrees
    (r"The final answer is 42", F(42)),
    (r"\boxed{11 \times 7}", F(77)),  # LaTeX arithmetic, exact (cf_tasks.latex_arith)
    (r"\boxed{\sqrt{49}}", F(7)),
    (r"\boxed{2^{3}}", F(8)),
    (r"\boxed{11 \times 7 = 77}", F(77)),  # the value after the last "="
    (r"\boxed{77 = 11 \times 7}", F(77)),
    (r"\boxed{x \approx 581.75}", F(58175, 100)),  # ... or the last \approx
    ("\\boxed{10\u00b2\u00b3}", F(10**23)),  # a superscript run is one exponent
    ("\\boxed{10\u2076}", F(10**6)),
    (r"\boxed{7\frac{1}{2}}", F(15, 2)),  # a mixed number
    (r"\boxed{\sqrt[3]{27}}", F(3)),
    (r"\boxed{\frac{1}{2} \times 154}", F(77)),
    ("**Answer: 77**", F(77)),  # unboxed fallbacks
    ("Final answer: $77.", F(77)),
    ("#### 1,250", F(1250)),
    ("<think>maybe \\boxed{66}</think>\n**Answer:** 77", F(77)),  # the box in the reasoning is not the answer
    ("So 11 trays would cost $77.", F(77)),
])
def test_parses_exactly(response, value):
    assert parse_final_number(response) == value


@pytest.mark.parametrize("response", [
    r"\boxed{3 or 4}", r"\boxed{3, 4}", r"\boxed{3 \text{ or } 4}", r"\boxed{between 3 and 4}", r"\boxed{3 4}",
    r"\boxed{1,5}", r"\boxed{3 \lor 4}", r"\boxed{\pm 4}", r"\boxed{3; 4}", r"\boxed{11*7}",
    r"\boxed{1+2}", r"\boxed{2**10}", r"\boxed{3}, \boxed{4}", r"\boxed{2^{2^{2}}}", r"\boxed{\sqrt{2}}",
    r"\boxed{3.33\ldots}", r"\boxed{10^2^3}",
])
def test_hedges_and_plain_text_arithmetic_score_zero(response):
    assert parse_final_number(response) is None


def test_no_box_or_broken_box():
    assert parse_final_number("I think it is 77 but I am not sure") is None
    assert parse_final_number(r"\boxed{77") is None
    assert parse_final_number("") is None
    assert parse_number(None) is None


def test_arithmetic_is_optional():
    assert parse_number(r"11 \times 7", arithmetic=False) is None
    assert parse_number("77", arithmetic=False) == 77


@pytest.mark.parametrize("expression", [
    r"2^{100} \times 2^{100} \times 2^{100}",  # intermediate results are capped at 256 bits
    r"99999999999^{64}", r"2^{65}", r"0^{-1}", r"\frac{1}{1 - 1}", r"(-4)^{1/2}",
    "(" * 9 + "1" + "+1)" * 9,  # nine nested groups of structure
    " + ".join(["1"] * 40) + r" \times 1",  # more tokens than an answer has
])
def test_arithmetic_bounds(expression):
    assert parse_number(expression) is None


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
    r"\boxed{" + "(" * 99 + "1" + ")" * 99 + "}",  # Math-Verify: seconds on the first call
    r"\boxed{" + r"\sqrt{" * 28 + "4" + "}" * 28 + "}",
    r"\boxed{2^{" + "(" * 95 + "1" + ")" * 95 + "}}",
    r"\boxed{" + " + ".join(["(1+2)"] * 30) + "}",
]


@pytest.mark.parametrize("index", range(len(HOSTILE)))
def test_hostile_answers_are_fast_and_never_executed(index):
    text = HOSTILE[index]
    start = time.perf_counter()
    value = parse_final_number(text)  # the first, uncached call: nothing here caches
    elapsed = time.perf_counter() - start
    assert elapsed < 0.25, f"{elapsed * 1000:.1f} ms"  # generous: the strict 10 ms is bench_hostile_answers.py
    assert parse_final_number(text) == value
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
