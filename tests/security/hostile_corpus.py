"""Hostile model answers, and adapters that push them through every parser, metric and reward.

Shared by ``test_hostile_answers.py`` and ``docs/security.md`` (counts). A
hostile answer is model *text*: code that would run if anything evaluated it,
arithmetic that is only right if evaluated, numbers and nesting that are
expensive to handle naively, unicode look-alikes, NUL bytes, megabyte strings
and inputs aimed at our own regular expressions (quadratic scans).

Each entry names the gold set it tries to hit. ``set_correct`` /
``math_correct`` say whether the answer is *literally* that gold under the
documented parsing rules (the set parser of :mod:`cf_tasks.answers`, the
number reader of :mod:`cf_tasks.math_answer`); every other entry must score 0
everywhere. ``{marker}`` in a text is replaced by a file path that must never
come into existence.

Run as a script (``python hostile_corpus.py MARKER_DIR``), it scores the whole
corpus with an audit hook armed and prints one JSON line: the forbidden audit
events seen (``exec``, ``compile``, ``os.system``, ``subprocess.Popen``, ...)
and a digest of every result (for the cross-process determinism check).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

MB = 1_000_000


@dataclass(frozen=True)
class HostileAnswer:
    name: str
    category: str
    text: str
    gold: tuple  # the gold set the answer tries to hit (all ints, so the math scorer can use gold[0])
    set_correct: bool = False  # literally the gold set under cf_tasks.answers' documented rules
    math_correct: bool = False  # literally gold[0] under cf_tasks.math_answer's documented rules


def _entries(m: str) -> list[HostileAnswer]:
    """``m`` is the marker path (a file that must never be created)."""
    E = HostileAnswer
    return [
        # -- code: would touch the marker (or forge a verdict) if anything evaluated it -------------
        E("os_system_import", "code", rf"The answer is \boxed{{__import__('os').system('touch {m}')}}", (0,)),
        E("eval_open", "code", rf"""\boxed{{eval("open('{m}', 'w').write('xyz')")}}""", (3,)),
        E("exec_statement", "code", rf"""\boxed{{exec("import os\nos.system('touch {m}')")}}""", (0,)),
        E("subprocess_lambda", "code",
          rf"\boxed{{(lambda: __import__('subprocess').check_output(['touch', '{m}']))()}}", (0,)),
        E("subclasses_walk", "code",
          rf"\boxed{{().__class__.__bases__[0].__subclasses__()[104].__init__.__globals__['sys']"
          rf".modules['os'].system('touch {m}')}}", (0,)),
        E("frame_walk_forgery", "code", r"\boxed{sys._getframe(1).f_locals['result'].append('passed')}", (7,)),
        E("gc_referrers_forgery", "code",
          r"\boxed{[r for r in __import__('gc').get_referrers(1) if isinstance(r, dict)][0].update(exact_match=1)}",
          (1,)),
        E("python_block_then_box", "code",
          f"```python\nimport os\nos.system('touch {m}')\nprint(7)\n```\n"
          rf"So the output is \boxed{{os.system('touch {m}') or len('seven')}}", (5,)),
        E("sympy_symbol_injection", "code", rf"""\boxed{{Symbol('x;__import__("os").system("touch {m}")')}}""", (0,)),
        E("lambdify_payload", "code", rf"""\boxed{{lambdify(x, "__import__('os').system('touch {m}')")(1)}}""", (0,)),
        E("pickle_payload", "code", rf"""\boxed{{__import__('pickle').loads(b"cos\nsystem\n(S'touch {m}'\ntR.")}}""",
          (0,)),
        E("yaml_payload", "code", rf"""\boxed{{!!python/object/apply:os.system ["touch {m}"]}}""", (0,)),
        E("ctypes_system", "code", rf"\boxed{{__import__('ctypes').CDLL(None).system(b'touch {m}')}}", (0,)),
        E("open_write", "code", rf"\boxed{{open('{m}', 'w').write('0') and 0}}", (0,)),
        E("format_string_globals", "code", r"\boxed{{0.__class__.__init__.__globals__}}", (1,)),
        E("jinja_ssti", "code", rf"\boxed{{{{{{ cycler.__init__.__globals__.os.popen('touch {m}').read() }}}}}}", (0,)),
        E("shell_backticks", "code", rf"\boxed{{`touch {m}`}}", (0,)),
        E("shell_substitution", "code", rf"\boxed{{$(touch {m}; expr 2 + 1)}}", (3,)),
        E("answer_tag_code", "code", f"<answer>__import__('os').system('touch {m}')</answer>", (0,)),
        E("final_answer_code", "code", f"Final answer: __import__('os').system('touch {m}')", (0,)),
        E("nested_list_literal", "code", r"\boxed{" + "[" * 2000 + "1" + "]" * 2000 + "}", (1,),
          set_correct=True),  # the math reader refuses spans over 512 characters
        # -- arithmetic that is only right if evaluated ---------------------------------------------
        E("power_tower_python", "arith", r"\boxed{10**10**10}", (10**10,)),
        E("power_python_small", "arith", r"\boxed{2**10}", (1024,)),
        E("latex_power_tower", "arith", r"\boxed{2^{2^{2^{2^{100}}}}}", (16,)),
        E("latex_power_huge", "arith", r"\boxed{10^{10^{10}}}", (0,)),
        E("latex_big_exponent", "arith", r"\boxed{9^{999999}}", (9,)),
        E("latex_big_bases", "arith", r"\boxed{99999999999^{64} \times 99999999999^{64}}", (0,)),
        E("factorial", "arith", r"\boxed{5!}", (120,)),
        E("factorial_huge", "arith", r"\boxed{(10^{100})!}", (0,)),
        E("sum_bomb", "arith", r"\boxed{\sum_{i=1}^{10^{100}} i}", (0,)),
        E("product_bomb", "arith", r"\boxed{\prod_{k=1}^{10^{9}} k}", (0,)),
        E("integral", "arith", r"\boxed{\int_0^{3} 2x\,dx}", (9,)),
        E("division_by_zero", "arith", r"\boxed{1/0}", (0,)),
        E("latex_frac_zero", "arith", r"\boxed{\frac{1}{0}}", (0,)),
        E("zero_over_zero", "arith", r"\boxed{0/0}", (0,)),
        E("sqrt_negative", "arith", r"\boxed{\sqrt{-1}}", (1,)),
        E("euler_identity", "arith", r"\boxed{e^{i\pi}+1}", (0,)),
        E("scientific_overflow", "arith", r"\boxed{1e309}", (1,)),
        E("inf_nan", "arith", r"\boxed{inf, nan, -inf}", (0,)),
        E("plain_sum", "arith", r"\boxed{1+2}", (3,)),
        E("latex_times_literal", "arith", r"\boxed{3 \times 4}", (12,), math_correct=True),
        E("latex_nested_sqrt_literal", "arith", r"\boxed{\sqrt{\sqrt{\sqrt{\sqrt{65536}}}}}", (2,),
          math_correct=True),
        E("latex_nested_frac", "arith", r"\boxed{" + r"\frac{1}{" * 40 + "2" + "}" * 40 + "}", (2,)),
        # -- huge numbers -----------------------------------------------------------------------------
        E("digits_100k_box", "digits", r"\boxed{" + "7" * 100_000 + "}", (7,)),
        E("digits_100k_tag", "digits", "<answer>" + "7" * 100_000 + "</answer>", (7,)),
        E("digits_100k_final", "digits", "Final answer: " + "7" * 100_000, (7,)),
        E("negative_100k_box", "digits", r"\boxed{-" + "9" * 100_000 + "}", (-9,)),
        E("digits_4000_literal", "digits", r"\boxed{" + "9" * 4000 + "}", (int("9" * 4000),)),
        E("digits_4299", "digits", r"\boxed{" + "1" * 4299 + "}", (1,)),
        E("decimal_4000", "digits", r"\boxed{0." + "0" * 3990 + "1}", (0,)),
        E("fraction_huge_denominator", "digits", r"\boxed{1/1" + "0" * 3000 + "}", (0,)),
        E("thousands_flood", "digits", r"\boxed{1" + ",000" * 120 + "}", (1,)),
        E("too_many_elements", "digits", r"\boxed{" + ", ".join(map(str, range(300))) + "}", (7,)),
        E("hedge_domain", "digits", r"\boxed{" + ", ".join(map(str, range(21))) + "}", (7,)),
        # -- braces and boxes -------------------------------------------------------------------------
        E("nested_braces_100k", "braces", r"\boxed{" + "{" * 100_000 + "3" + "}" * 100_000 + "}", (3,)),
        E("nested_braces_2000_literal", "braces", r"\boxed{" + "{" * 2000 + "3" + "}" * 2000 + "}", (3,),
          set_correct=True),
        E("unbalanced_open_100k", "braces", r"\boxed{" + "{" * 100_000 + "3", (3,)),
        E("nested_boxes_5000", "braces", r"\boxed{" * 5000 + "3" + "}" * 5000, (3,),
          set_correct=True, math_correct=True),
        # 100,001 boxes separated by spaces are one box list (docs/answers.md): too long to be an answer.
        E("many_boxes_last_right", "braces", r"\boxed{1} " * 100_000 + r"\boxed{3}", (3,)),
        E("many_boxes_last_wrong", "braces", r"\boxed{3} " * 100_000 + r"\boxed{4}", (3,)),
        E("bare_boxed_100k", "braces", r"\boxed{3} " + r"\boxed" * 100_000, (3,)),
        E("bare_fbox_100k", "braces", r"\fbox " * 100_000, (0,)),
        E("open_boxes_150k", "braces", r"\boxed{" * 150_000, (0,)),
        E("backslashes_1MB", "braces", "\\" * MB, (0,)),
        E("open_answer_tags_8192", "braces", "<answer>" * 8192 + "3", (3,)),
        E("open_answer_tags_1MB", "braces", "<ANSWER>" * (MB // 8) + "3", (3,)),
        E("many_answer_tags_last_right", "braces", "<answer>1</answer>" * 50_000 + "<answer>3</answer>", (3,),
          set_correct=True, math_correct=True),
        # 200-character nests: Math-Verify took 3-5 s on the first (uncached) call of such input
        E("nested_parens_200", "braces", r"\boxed{" + "(" * 99 + "1" + ")" * 99 + "}", (1,),
          set_correct=True, math_correct=True),
        E("nested_mixed_brackets_200", "braces", r"\boxed{" + "[(" * 49 + "1" + ")]" * 49 + "}", (1,),
          set_correct=True, math_correct=True),
        E("nested_braces_200", "braces", r"\boxed{" + "{" * 99 + "1" + "}" * 99 + "}", (1,),
          set_correct=True, math_correct=True),
        E("nested_left_right_200", "braces", r"\boxed{" + r"\left(" * 14 + "3" + r"\right)" * 14 + "}", (3,),
          set_correct=True, math_correct=True),
        E("nested_sqrt_200", "braces", r"\boxed{" + r"\sqrt{" * 28 + "1" + "}" * 28 + "}", (1,)),
        E("nested_frac_200", "braces", r"\boxed{" + r"\frac{1}{" * 20 + "2" + "}" * 20 + "}", (2,)),
        E("power_of_nested_parens_200", "braces", r"\boxed{2^{" + "(" * 95 + "1" + ")" * 95 + "}}", (2,),
          math_correct=True),
        E("nested_parens_sum_200", "braces", r"\boxed{" + "(" * 45 + "1+" + ")" * 45 + r"\times 1}", (1,)),
        E("nested_list_items_depth", "braces", r"\boxed{" + "[1, " * 900 + "]" * 900 + "}", (1,)),
        # -- aimed at the answer locator and the token reader ----------------------------------------
        E("think_end_flood", "braces", "</think>" * 100_000 + r"\boxed{3}", (3,), set_correct=True,
          math_correct=True),
        E("box_list_flood", "braces", r"\boxed{1}, " * 50_000, (1,)),
        E("parallel_box_labels_flood", "braces", r"f(7) = 1 + 1 = \boxed{2}. " * 5_000, (2,)),
        E("marker_lines_flood", "size", "Final answer: x\n" * 60_000 + "Final answer: 3", (3,), set_correct=True,
          math_correct=True),
        E("heading_flood", "size", "## Final Answer\n" * 60_000, (0,)),
        E("conclusion_flood", "size", "So " * 300_000 + "3", (3,)),  # a 900 kB "sentence" concludes nothing
        E("condition_flood", "redos", r"\boxed{4 if r = 1 " + "or r = 1 " * 140 + "}", (4,), set_correct=True),
        E("emphasis_flood", "redos", r"\boxed{" + "*" * 3000 + "3}", (3,)),
        E("mapping_flood", "redos", r"\boxed{" + "r=1 \\to " * 140 + "3}", (3,), set_correct=True),
        E("words_flood_box", "redos", r"\boxed{" + "the " * 550 + "3}", (3,), set_correct=True),
        # -- unicode ----------------------------------------------------------------------------------
        E("arabic_indic_digit", "unicode", "\\boxed{\u0663}", (3,)),
        E("devanagari_digit", "unicode", "\\boxed{\u0969}", (3,)),
        E("fullwidth_digit", "unicode", "\\boxed{\uff13}", (3,), set_correct=True, math_correct=True),  # NFKC: 3
        E("math_bold_digit", "unicode", "\\boxed{\U0001d7d1}", (3,), set_correct=True, math_correct=True),
        E("superscript_power", "unicode", "\\boxed{10\u00b2}", (102,)),
        E("unicode_minus", "unicode", "\\boxed{\u22123}", (-3,), set_correct=True, math_correct=True),
        E("zero_width_space", "unicode", "\\boxed{1\u200b2}", (12,)),
        E("rtl_override", "unicode", "\\boxed{\u202e71}", (17,)),
        E("greek_omicron_box", "unicode", "\\b\u03bfxed{3}", (3,)),
        E("roman_numeral", "unicode", "\\boxed{\u216b}", (12,)),
        E("lone_surrogate", "unicode", "\\boxed{\ud800 4}", (3,)),
        E("ansi_escape", "unicode", "\\boxed{\x1b[2J3}", (23,)),
        # -- NUL bytes and control characters ---------------------------------------------------------
        E("nul_inside_number", "nul", "\\boxed{4\x002}", (42,)),
        E("nul_flood_then_box", "nul", "\x00" * MB + r"\boxed{5}", (5,), set_correct=True, math_correct=True),
        E("nul_inside_command", "nul", "\\box\x00ed{3}", (3,)),
        E("crlf_after_box", "nul", "\\boxed{3}\r\n\r\n", (3,), set_correct=True, math_correct=True),
        # -- megabyte strings -------------------------------------------------------------------------
        E("one_mb_no_answer", "size", "a" * MB, (0,)),
        E("one_mb_digits", "size", "7" * MB, (7,)),
        E("one_mb_reasoning_then_box", "size", "wait, let me re-check. case 1: r = 3. " * 26_000 + r"\boxed{3}",
          (3,), set_correct=True, math_correct=True),
        E("one_mb_newlines_then_final", "size", "\n" * MB + "Final answer: 3", (3,), set_correct=True,
          math_correct=True),
        E("answer_marker_flood", "size", "answer is " * 100_000, (0,)),
        E("answer_then_1MB_spaces", "size", "answer" + " " * MB, (0,)),
        # -- LaTeX bombs ------------------------------------------------------------------------------
        E("latex_write18", "latex", rf"\boxed{{\immediate\write18{{touch {m}}}}}", (18,)),
        E("latex_input_file", "latex", r"\boxed{\input{/etc/passwd}}", (0,)),
        E("latex_def_bomb", "latex", r"\def\a{\a\a}\a \boxed{\a}", (0,)),
        E("latex_newcommand_bomb", "latex", r"\newcommand{\x}{\x\x}\boxed{\x 3}", (6,)),
        E("latex_left_right_flood", "latex", r"\boxed{" + r"\left(" * 500 + "3" + r"\right)" * 500 + "}", (9,)),
        E("latex_matrix", "latex", r"\boxed{\begin{pmatrix}1&2\\3&4\end{pmatrix}}", (10,)),
        E("latex_text_flood", "latex", r"\boxed{" + r"\text{" * 300 + "3" + "}" * 300 + "}", (4,)),
        # -- aimed at our regular expressions ---------------------------------------------------------
        E("redos_digits_then_letter", "redos", r"\boxed{" + "1" * 4000 + "a}", (1,)),
        E("redos_dot_chain", "redos", r"\boxed{" + "1." * 2000 + "}", (1,)),
        E("redos_quote_flood", "redos", r"\boxed{" + "'" * 4000 + "}", (0,)),
        E("redos_fraction_chain", "redos", r"\boxed{" + "1/" * 2000 + "1}", (1,)),
        E("redos_slash_spaces", "redos", r"\boxed{1" + " / " * 1300 + "2}", (2,)),
        E("redos_math_spaces", "redos", r"\boxed{-" + " " * 500 + "}", (0,)),
        E("redos_math_frac_flood", "redos", r"\boxed{" + r"\frac{1}{2}" * 40 + "}", (20,)),
        E("redos_final_answer_ws", "redos", "final answer" + " " * 65_536 + "x", (0,)),
        E("redos_case_roman", "redos", "case " + "i" * 100_000 + "a", (0,)),
        E("redos_hmm", "redos", "h" + "m" * MB, (0,)),
        E("redos_assign_spaces", "redos", "r" + " " * 100_000 + "=" + " " * 100_000 + "x", (0,)),
        E("redos_assume_flood", "redos", "assume " * 140_000, (0,)),
        E("redos_latent_dots", "redos", "r = 1" + "." * 100_000 + "a", (0,)),
    ]


def build_corpus(marker: str | Path) -> list[HostileAnswer]:
    """The corpus; ``marker`` is the path that code-injection entries try to create.

    The path must hold no digit: the set parser reads every number in a box, so
    digits in the path would change what the code entries parse to.
    """
    if re.search(r"[0-9]", str(marker)):
        raise ValueError(f"marker path must hold no digit: {marker}")
    entries = _entries(str(marker))
    names = [e.name for e in entries]
    assert len(names) == len(set(names)), "duplicate entry names"
    return entries


def marker_dir() -> Path:
    """A fresh, digit-free folder under the system temp dir (see :func:`build_corpus`)."""
    import secrets
    import string
    import tempfile

    base = Path(tempfile.gettempdir())
    if re.search(r"[0-9]", str(base)):
        base = Path("/tmp")
    for _ in range(100):
        path = base / ("cf_hostile_" + "".join(secrets.choice(string.ascii_lowercase) for _ in range(12)))
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            continue
        return path
    raise RuntimeError("could not create a marker folder")


# -- adapters: one callable per parser / metric / reward, each returning JSON-able data -----------

CODE_DOC = {"id": "hostile", "family": "if_else", "variant": "counterfactual", "latents": {"r": [1, 2, 3, 4, 5, 6, 7]},
            "prior_answer": [1, 2, 3, 4, 5], "n_consistent": 2}


def _frac(value: Any) -> Any:
    return None if value is None else [value.numerator, value.denominator]


def _set_json(value: Any) -> Any:
    return None if value is None else sorted(repr(v) for v in value)


def adapters() -> dict[str, Callable[[HostileAnswer], Any]]:
    """Every parser, metric and reward that exists in this checkout (optional modules are skipped)."""
    from cf_tasks import answers, metrics
    from cf_tasks.lmeval import scoring

    out: dict[str, Callable[[HostileAnswer], Any]] = {
        "answers.last_boxed": lambda e: answers.last_boxed(e.text),
        "answers.extract_answer_text": lambda e: answers.extract_answer_text(e.text),
        "answers.parse_answer_set": lambda e: _set_json(answers.parse_answer_set(e.text)),
        "metrics.score_set": lambda e: metrics.score_set(e.text, list(e.gold)),
        "lmeval.scoring.process_results": lambda e: scoring.process_results({"answer": list(e.gold)}, [e.text]),
        "lmeval.scoring.process_results[json]": lambda e: scoring.process_results(
            {"answer": json.dumps(list(e.gold)), "json_fields": ["answer"]}, [[e.text]]),
    }
    if importable("cf_tasks.math_answer"):
        math_answer = importlib.import_module("cf_tasks.math_answer")
        out["math_answer.parse_final_number"] = lambda e: _frac(math_answer.parse_final_number(e.text))
    if importable("cf_tasks.lmeval.math_scoring"):
        math_scoring = importlib.import_module("cf_tasks.lmeval.math_scoring")
        out["lmeval.math_scoring.process_results"] = lambda e: math_scoring.process_results(
            {"id": e.name, "answer": [e.gold[0]]}, [e.text])
    if importable("training.rewards"):
        rewards = importlib.import_module("training.rewards")
        for name in ("exact_match_reward", "f1_reward"):
            fn = getattr(rewards, name)
            out[f"rewards.{name}"] = (lambda f: lambda e: f([e.text], answer=[json.dumps(list(e.gold))],
                                                             family=["if_else"]))(fn)
            out[f"rewards.{name}[chat]"] = (lambda f: lambda e: f(
                [[{"role": "assistant", "content": e.text}]], answer=[list(e.gold)], family=[None]))(fn)
            out[f"rewards.{name}[gsm]"] = (lambda f: lambda e: f([e.text], answer=[json.dumps([e.gold[0]])],
                                                                 family=["gsm"]))(fn)
        out["rewards.format_reward"] = lambda e: rewards.format_reward([e.text])
    if importable("cf_tasks.report.tags"):
        tags = importlib.import_module("cf_tasks.report.tags")

        def tag(e: HostileAnswer) -> Any:
            result = tags.tag_sample(e.text, {**CODE_DOC, "answer": list(e.gold)})
            return [list(result.tags), result.parsed_answer]

        out["report.tags.tag_sample"] = tag
    return out


def importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def exact_match_of(adapter: str, result: Any) -> float | None:
    """The 0/1 correctness an adapter reported, or ``None`` for parsers (no gold involved)."""
    if adapter.startswith(("metrics.", "lmeval.scoring.")):
        return result["exact_match"]
    if adapter.startswith("lmeval.math_scoring."):
        return result["acc"]
    if adapter.startswith("rewards.exact_match_reward"):
        return result[0]
    return None


def expected_correct(adapter: str, entry: HostileAnswer) -> bool:
    """Whether ``entry`` is literally its gold for this adapter's notion of an answer."""
    if adapter.startswith("lmeval.math_scoring.") or adapter.endswith("[gsm]"):
        return entry.math_correct
    return entry.set_correct


# -- audit: nothing may execute, spawn, connect or open files while hostile text is scored -------

FORBIDDEN_EVENTS = frozenset({
    "exec", "compile", "import", "open", "os.system", "os.exec", "os.posix_spawn", "os.spawn", "os.fork",
    "os.forkpty", "os.startfile", "os.kill", "os.killpg", "os.remove", "os.rename", "os.mkdir", "os.chmod",
    "subprocess.Popen", "pty.spawn", "socket.__new__", "socket.connect", "socket.bind", "ctypes.dlopen",
    "ctypes.dlsym", "ctypes.call_function", "pickle.find_class", "marshal.loads", "shutil.rmtree",
    "builtins.input", "code.__new__", "function.__new__",
})
class Auditor:
    """A process-wide audit hook (hooks cannot be removed) that records forbidden events while armed."""

    def __init__(self) -> None:
        self.armed = False
        self.where = ""
        self.violations: list[str] = []
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple) -> None:
        # No exceptions: the scoring path calls no third-party parser (Math-Verify's sympy
        # Number("49") used to be allowed here), so any compile or exec is a violation.
        if self.armed and event in FORBIDDEN_EVENTS:
            self.violations.append(f"{self.where}: {event} {str(args)[:160]}")

    def call(self, where: str, fn: Callable, *args: Any) -> Any:
        self.where, self.armed = where, True
        try:
            return fn(*args)
        finally:
            self.armed = False


def warm_up(funcs: dict[str, Callable]) -> None:
    """Exercise the code paths once with benign answers, so lazy imports happen before auditing."""
    benign = [HostileAnswer("warm", "warm", t, (12,)) for t in (
        r"\boxed{12}", r"\boxed{3 \times 4}", r"\boxed{\sqrt{144}}", r"\boxed{2^{3} + 4}", r"\boxed{\frac{24}{2}}",
        "<answer>12</answer>", "Final answer: 12", "\\boxed{\uff11\uff12}", r"\boxed{1.5 \cdot 8}",
        r"\boxed{e^{i\pi}+1}", r"\boxed{\int_0^{1} 2x\,dx}", r"\boxed{\sqrt{-1}}", r"\boxed{9^{999999}}")]
    for fn in funcs.values():
        for entry in benign:
            fn(entry)


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=repr, ensure_ascii=True)


def measure(entries: list[HostileAnswer], funcs: dict[str, Callable], auditor: Auditor, *,
            budget_s: float = 0.010) -> dict[str, dict[str, Any]]:
    """Score every entry with every adapter: the first call audited and timed, best-of-3 time, stability.

    The first call of an entry is uncached (the warm-up uses other texts), so its
    time is the honest one: a parser that caches (Math-Verify does) looks fast
    only from the second call on. A second call always runs (determinism); a
    third only when both were over budget but not hopelessly so.
    """
    records: dict[str, dict[str, Any]] = {}
    for name, fn in funcs.items():
        for entry in entries:
            key = f"{name}/{entry.name}"
            times, results = [], []
            for attempt in range(3):
                if attempt == 2 and (min(times) <= budget_s or min(times) > 20 * budget_s):
                    break
                start = time.perf_counter()
                result = auditor.call(key, fn, entry) if attempt == 0 else fn(entry)
                times.append(time.perf_counter() - start)
                results.append(_canonical_json(result))
            records[key] = {
                "adapter": name, "entry": entry.name, "first_ms": times[0] * 1000,
                "best_ms": min(times) * 1000, "calls": len(times),
                "stable": len(set(results)) == 1, "digest": hashlib.sha256(
                    results[0].encode("utf-8", "surrogatepass")).hexdigest(),
                "exact_match": exact_match_of(name, json.loads(results[0])), "result": results[0][:300],
            }
    return records


def control_violations() -> list[str]:
    """Positive control: the auditor must see code that does execute."""
    auditor = Auditor()
    auditor.call("control/eval", eval, "1 + 1")
    auditor.call("control/compile", compile, "x = 1", "<hostile>", "exec")
    auditor.call("control/socket", lambda: __import__("socket").socket().close())
    auditor.call("control/open", lambda: open(__file__, "rb").close())
    return auditor.violations


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Score the hostile corpus under an audit hook (JSON to stdout).")
    parser.add_argument("marker_dir")
    parser.add_argument("--max-chars", type=int, default=None, help="only entries up to this length")
    parser.add_argument("--budget-ms", type=float, default=10.0)
    args = parser.parse_args(argv)
    marker = Path(args.marker_dir) / "PWNED"
    entries = [e for e in build_corpus(marker) if args.max_chars is None or len(e.text) <= args.max_chars]
    funcs = adapters()
    warm_up(funcs)
    auditor = Auditor()
    records = measure(entries, funcs, auditor, budget_s=args.budget_ms / 1000)
    print(json.dumps({"violations": auditor.violations, "control": control_violations(),
                      "n_entries": len(entries), "adapters": sorted(funcs), "records": records}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
