"""Training data: GRPO prompts from family mixes and item files, SFT rows from selections and traces."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from cf_tasks.jsonl import JSONLError, write_jsonl
from training.config import FamilySpec, PromptData, SFTData
from training.data import prompt_rows, sft_rows, split_counts
from training.rewards import decode_gold, exact_match_reward


def test_split_counts_is_exact_and_deterministic():
    assert split_counts(10, [1, 1, 1]) == [4, 3, 3]
    assert split_counts(7, [3, 1]) == [5, 2]
    assert sum(split_counts(1001, [0.2, 0.3, 0.5])) == 1001
    assert split_counts(0, [1, 2]) == [0, 0]


def test_family_mix_prompts_are_deterministic_and_carry_gold():
    data = PromptData(families=[FamilySpec("if_else", level="easy", weight=3), FamilySpec("multi_r", level="easy")],
                      n=8, seed=5, chat=True, system_prompt="be brief")
    rows = prompt_rows(data)
    assert len(rows) == 8
    assert sorted(r["family"] for r in rows) == ["if_else"] * 6 + ["multi_r"] * 2
    assert rows == prompt_rows(data)  # same seed, same rows (and order)
    first = rows[0]
    assert first["prompt"][0] == {"role": "system", "content": "be brief"}
    assert first["prompt"][1]["role"] == "user" and "\\boxed" in first["prompt"][1]["content"]
    gold = decode_gold(first["answer"])
    assert isinstance(gold, list) and gold
    # the gold answer, boxed, earns the reward: data and reward agree on the answer encoding
    boxed = "\\boxed{" + ", ".join(map(str, gold)) + "}"
    assert exact_match_reward([boxed], [first["answer"]], family=[first["family"]]) == [1.0]
    other = prompt_rows(PromptData(families=data.families, n=8, seed=6, chat=True))
    assert {r["id"] for r in other} != {r["id"] for r in rows}


def test_prompt_rows_in_a_fresh_process_are_identical(tmp_path):
    code = ("import json;from training.config import PromptData, FamilySpec;from training.data import prompt_rows;"
            "print(json.dumps(prompt_rows(PromptData(families=[FamilySpec('if_else', level='easy')], n=3, seed=1,"
            " chat=False))))")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env={**__import__("os").environ, "PYTHONHASHSEED": seed}).stdout for seed in ("1", "2")}
    assert len(outs) == 1
    assert len(json.loads(outs.pop())) == 3


def test_jsonl_prompts_and_errors(tmp_path):
    good = tmp_path / "items.jsonl"
    write_jsonl(good, [{"id": "a", "prompt": "p1", "answer": [1, 2], "family": "if_else"},
                       {"id": "b", "prompt": "p2", "answer": [3]}])
    rows = prompt_rows(PromptData(jsonl=[str(good)], chat=False, shuffle=False))
    assert [r["prompt"] for r in rows] == ["p1", "p2"]
    assert [json.loads(r["answer"]) for r in rows] == [[1, 2], [3]]
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "p", "answer": [1]}\n{"prompt": "q"}\n')
    with pytest.raises(ValueError, match=r"bad\.jsonl:2: missing field 'answer'"):
        prompt_rows(PromptData(jsonl=[str(bad)]))
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"prompt": "p", "answer": [1]}\n{oops\n')
    with pytest.raises(JSONLError, match=r"broken\.jsonl:2"):
        prompt_rows(PromptData(jsonl=[str(broken)]))


@pytest.fixture(scope="module")
def tok():
    from helpers.tiny_lm import build_tokenizer

    return build_tokenizer()


def text_of(rows):
    return [(r["prompt"], r["completion"], r["format"]["style"]) for r in rows]


def test_sft_rows_from_selections_and_traces(tmp_path, tok):
    sel = tmp_path / "grape.jsonl"
    write_jsonl(sel, [{"instruction": "i1", "response": "r1", "score": 0.1},
                      {"instruction": "i2", "input": "ctx", "response": ["r2"]}])
    rows = sft_rows(SFTData(files=[str(sel)], chat=False, shuffle=False), tok)
    assert text_of(rows) == [("i1", "r1", "text"), ("i2\n\nctx", "r2", "text")]
    assert rows[0]["format"]["end"] == tok.eos_token and rows[0]["format"]["add_special_tokens"] is True
    traces = tmp_path / "traces.jsonl"
    write_jsonl(traces, [{"prompt": "p", "completion": "c \\boxed{1}", "answer": [1]}])
    (row,) = sft_rows(SFTData(files=[str(traces)], chat=True), tok)
    assert text_of([row]) == [("<|user|>p\n<|assistant|>", "c \\boxed{1}", "chat")] and row["format"]["end"] == "\n"
    assert len(sft_rows(SFTData(files=[str(sel), str(traces)], max_rows=2, chat=False), tok)) == 2


def test_recorded_formats_win_over_data_chat(tmp_path, tok):
    """A GRAPE row is trained as it was scored, whatever data.chat says (before: re-wrapped in the chat template)."""
    from selection.grape.prompting import format_candidate

    scored = format_candidate(tok, "What is 2 + 3?", "The answer is 5.", template="Question: {instruction}\nAnswer: {response}")
    sel = tmp_path / "grape.jsonl"
    write_jsonl(sel, [{"instruction": "What is 2 + 3?", "response": "The answer is 5.", "formatted": scored.to_record()}])
    (row,) = sft_rows(SFTData(files=[str(sel)], chat=True), tok)
    assert row == scored.to_record()


def test_sft_rows_errors_name_file_and_line(tmp_path, tok):
    odd = tmp_path / "odd.jsonl"
    write_jsonl(odd, [{"q": "x", "a": "y"}])
    with pytest.raises(ValueError, match=r"odd\.jsonl:1: no known prompt/completion columns.*columns present: a, q"):
        sft_rows(SFTData(files=[str(odd)]), tok)
    assert text_of(sft_rows(SFTData(files=[str(odd)], prompt_field="q", completion_field="a", chat=False), tok)) == [
        ("x", "y", "text")]
    empty = tmp_path / "empty.jsonl"
    write_jsonl(empty, [{"prompt": "x", "completion": "ok"}, {"prompt": "x", "completion": "  "}])
    with pytest.raises(ValueError, match=r"empty\.jsonl:2: empty completion"):
        sft_rows(SFTData(files=[str(empty)]), tok)
    bad = tmp_path / "bad.jsonl"
    write_jsonl(bad, [{"prompt": "x", "completion": "y", "formatted": {"prompt": "x", "completion": 3, "format": {}}}])
    with pytest.raises(ValueError, match=r"bad\.jsonl:1: field formatted.completion must be a string"):
        sft_rows(SFTData(files=[str(bad)]), tok)


def test_evaluation_problems_are_held_out_of_training(tmp_path):
    """Items of the shipped evaluation tasks never become GRPO prompts (unless decontaminate is off)."""
    from cf_tasks.jsonl import write_jsonl
    from cf_tasks.lmeval.dataset import TASK_DEFAULTS, generate_items
    from training.config import PromptData

    held_out = generate_items("if_else", "interventional", TASK_DEFAULTS["level"], 5, TASK_DEFAULTS["seed"])
    fresh = generate_items("if_else", "counterfactual", "medium", 3, 98765)
    path = tmp_path / "items.jsonl"
    write_jsonl(path, held_out + fresh)
    rows = prompt_rows(PromptData(jsonl=[str(path)], chat=False, shuffle=False))
    assert [r["id"] for r in rows] == [item["id"] for item in fresh]
    everything = prompt_rows(PromptData(jsonl=[str(path)], chat=False, shuffle=False, decontaminate=False))
    assert len(everything) == 8
