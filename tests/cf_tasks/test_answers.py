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
        ("first \\boxed{1} then \\boxed{-4}", [-4], 1.0, 1.0),  # "then": a new step, the last box counts
        ("\\boxed{1}, \\boxed{-4}", [1, -4], 1.0, 1.0),  # one box per value: the boxes are the list
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
    assert elapsed < 0.25, f"took {elapsed * 1000:.1f} ms"  # generous: strict timing is benchmarks/
    assert first == score_set(response, [1])
    assert 0.0 <= first["f1"] <= 1.0
    assert not (tmp_path / "cf_pwned").exists()


def test_hostile_values_never_match_gold():
    assert score_set("\\boxed{" + "9" * 100 + "}", [int("9" * 100)])["exact_match"] == 0.0
    assert parse_answer_set("\\boxed{10**10**10}") is None  # arithmetic is refused, never evaluated
    assert extract_answer_text("\\boxed{" * 10_000) is None


def test_scoring_throughput_floor():
    response = "Let me reason. " * 40 + "So the answer is \\boxed{3, 7}."
    start = time.perf_counter()
    for _ in range(20_000):
        score_set(response, [3, 7])
    rate = 20_000 / (time.perf_counter() - start)
    assert rate > 20_000, f"{rate:.0f} responses/s"


# -- where the answer is (cf_tasks.answer_span) ----------------------------------------------------

from cf_tasks import answer_span as S  # noqa: E402
from cf_tasks import answer_tokens as T  # noqa: E402
from cf_tasks.answers import UNMATCHABLE, read_set  # noqa: E402


@pytest.mark.parametrize("text, region", [
    ("plain \\boxed{1}", "plain \\boxed{1}"),
    ("<think>\\boxed{1}</think> answer 2", " answer 2"),
    ("a</think>b</think>c", "c"),
    ("<thinking>x</thinking>y", "y"),
    ("<|begin_of_thought|>x<|end_of_thought|>y", "y"),
    ("<think> never closed \\boxed{1}", "<think> never closed \\boxed{1}"),
])
def test_final_region(text, region):
    assert S.final_region(text) == region


@pytest.mark.parametrize("text, spans", [
    ("\\boxed{4}, \\boxed{10}", ("4", "10")),
    ("\\boxed{4}\\boxed{10}", ("4", "10")),
    ("$\\boxed{4}$ \\text{ or } $\\boxed{10}$", ("4", "10")),
    ("- If r = 1: \\boxed{4}\n- If r = 5: \\boxed{10}", ("4", "10")),
    ("\\boxed{4}. Wait, no: \\boxed{10}", ("10",)),  # a correction
    ("r = \\boxed{3}. So f(6) = \\boxed{9}", ("9",)),  # a conclusion word
    ("r = \\boxed{3}, f(6) = 3 + 6 = \\boxed{9}", ("9",)),  # arithmetic, boxes of different names
    ("If r = 1, f(7) = 7 - 3 = \\boxed{4}. If r = 5, f(7) = 7 + 3 = \\boxed{10}.", ("4", "10")),  # parallel
    ("\\boxed{\\boxed{3}}", ("3",)),  # nested: the inner box
    ("\\boxed{4} " + "x" * 600 + " \\boxed{10}", ("10",)),  # far apart
])
def test_box_lists(text, spans):
    located = S.locate(text)
    assert located.source == "boxed" and located.spans == spans


def test_box_list_refusals_and_bounds():
    assert S.locate("\\boxed{0}, \\boxed{1}, \\ldots, \\boxed{6}").refused == "ellipsis"
    flood = S.locate("\\boxed{1}, " * (S.MAX_LIST_BOXES + 5))
    assert flood.truncated and len(flood.spans) == S.MAX_LIST_BOXES
    assert parse_answer_set("\\boxed{1}, " * (S.MAX_LIST_BOXES + 5)) == frozenset({UNMATCHABLE})


def test_broken_box_blocks_fallbacks_but_bare_mentions_do_not():
    assert S.locate("Final answer: 4\n\\boxed{4") is None
    assert S.locate("I will use \\boxed notation.\nFinal answer: 4").spans == ("4",)
    assert S.locate("\\boxed " * (S.MAX_BOX_CANDIDATES + 1) + "Final answer: 4") is None  # gave up: malformed


@pytest.mark.parametrize("text, source, span", [
    ("<answer>4</answer> Final answer: 5", "answer_tag", "4"),
    ("Final answer: 5\n\n{4, 10}", "marker", "5"),
    ("## Final Answer\n\n- 4\n- 10", "marker", " 4\n 10"),
    ("The answer is 6. Because r = 6.", "marker", "6."),
    ("#### 77", "marker", "77"),
    ("blah blah\n$\\{4, 10\\}$", "last_line", "$\\{4, 10\\}$"),
    ("It is known that r = 2.\nSo f(7) could have returned 4 or 10.", "conclusion",
     "So f(7) could have returned 4 or 10."),
])
def test_fallback_order(text, source, span):
    located = S.locate(text)
    assert (located.source, located.spans) == (source, (span,))


@pytest.mark.parametrize("text", [
    "Let's check r = 3:\nr = 3",  # truncated reasoning: no answer line, no conclusion
    "We observed that the function returned 6 for x = 18.",
    "The answer depends on r.",
])
def test_no_answer_is_found_in_plain_reasoning(text):
    assert parse_answer_set(text) is None


def test_box_scan_work_is_linear():
    """Walking back over many boxes reads the text a bounded number of times (counts, not time)."""
    class CountingStr(str):
        scanned = 0

        def rfind(self, sub, start=0, end=None):  # a reverse search reads from its end back to the hit
            end = len(self) if end is None else end
            found = str.rfind(self, sub, start, end)
            CountingStr.scanned += end - (start if found < 0 else found)
            return found

    text = CountingStr("\\boxed{1} " * 20_000 + "\\boxed{2}")
    S._box_list(text)
    assert CountingStr.scanned <= 3 * len(text)


# -- what the answer says (cf_tasks.answers) ---------------------------------------------------------

@pytest.mark.parametrize("span, values", [
    ("f(5) = 2", [2]),
    ("f(x=7) \\in \\{4, 10, 16\\}", [4, 10, 16]),
    ("y = 4, 10", [4, 10]),
    ("r=1 \\to 4, r=5 \\to 10", [4, 10]),
    ("r_1 = 1, r_2 = 3 \\to 4; r_1 = 2, r_2 = 1 \\to 7", [4, 7]),
    ("r = 3, f(6) = 9", [9]),
    ("4 \\text{ if } r < 7, 10 \\text{ otherwise}", [4, 10]),
    ("4 if r = 1 and 10 if r = 5", [4, 10]),
    ("4 or 10 depending on whether r is 1 or 5", [4, 10]),
    ("4 (r=1), 10 (r=5)", [4, 10]),
    ("4 (or possibly 10)", [4, 10]),
    ("- 7", [-7]), ("\u2013 7", [-7]), ("\u2014 7", [-7]), ("\u22127", [-7]), ("+4", [4]),
    ("\\frac{14}{2}", [7]), ("-\\frac{7}{2}", [-3.5]), ("5/2", [2.5]),
    ("set([4, 10])", [4, 10]), ("4 10 16", [4, 10, 16]), ("\\{4\\} \\cup \\{10\\}", [4, 10]),
    ("[" * 50 + "1" + "]" * 50, [1]),
])
def test_read_set(span, values):
    assert read_set(span) == frozenset(("num", v) for v in values)


@pytest.mark.parametrize("span", [
    "0, 1, \\ldots, 6", "0 \\text{ to } 6", "from 0 to 6", "between 0 and 6", "0 \\le y \\le 6", "0-6", "3 + 4",
    "4 \\pm 3", "1e3", "3x", "\\infty", "\\mathbb{Z}", "range(0, 7)", "open('f').write('0') and 0", "f(15)",
    "\\emptyset", "",
])
def test_read_set_refuses(span):
    assert read_set(span) is None


def test_token_and_nesting_bounds():
    with pytest.raises(T.TooManyTokens):
        T.tokenize("1 " * (T.MAX_TOKENS + 1))
    assert read_set(", ".join(["1"] * 600)) == frozenset({("num", 1)})  # fast path: no tokens
    assert read_set("1; " * (T.MAX_TOKENS // 2 + 1)) == frozenset({UNMATCHABLE})
    assert read_set("[1, " * (T.MAX_DEPTH + 2) + "]" * (T.MAX_DEPTH + 2)) is None  # structured depth is capped
    assert T.strip_wrappers("(" * 2000 + "1" + ")" * 2000) == "(1)"
    assert T.strip_wrappers("{1}, {2}") == "{1}, {2}"
