"""inspect_ai tasks ``executable_cf/<family>[_<variant>]``: discovery, our dataset, our scorer.

Models: inspect's own ``mockllm`` with scripted outputs, and a custom
``ModelAPI``; all offline. ``mockllm``'s *default* output is not used: it
counts tokens with tiktoken's ``o200k_base``, which tiktoken downloads on
first use (no network here), while scripted outputs carry their usage.
"""

import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("inspect_ai")

from inspect_ai import eval as inspect_eval  # noqa: E402
from inspect_ai.log import read_eval_log  # noqa: E402
from inspect_ai.model import ModelAPI, ModelOutput, ModelUsage, get_model, modelapi  # noqa: E402

from cf_tasks.integrations import common  # noqa: E402
from cf_tasks.jsonl import write_jsonl  # noqa: E402

HERE = Path(__file__).parent
# inspect's own retry helper passes a parameter tenacity deprecates; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:The 'initial' parameter is deprecated:DeprecationWarning")


def output(text: str) -> ModelOutput:
    out = ModelOutput.from_content(model="scripted", content=text)
    out.usage = ModelUsage(input_tokens=1, output_tokens=1, total_tokens=2)  # no tiktoken download
    return out


class ScriptedModel(ModelAPI):
    """A custom model provider: answers each prompt from a table (the gold answer unless told otherwise)."""

    answers: dict[str, str] = {}

    async def generate(self, input, tools, tool_choice, config):
        return output(self.answers.get(input[-1].text, "I do not know."))


@modelapi(name="cf_scripted")
def cf_scripted():
    return ScriptedModel


def run(task, model, **kwargs):
    log = inspect_eval(task, model=model, display="none", **kwargs)[0]
    assert log.status == "success", log.error
    return log


def metrics(log):
    return {score.name: score.metrics["mean"].value for score in log.results.scores}


def test_tasks_are_registered_for_every_family_and_variant_through_the_entry_point():
    import importlib.metadata as md

    from inspect_ai._util.registry import registry_lookup

    assert [ep.value for ep in md.entry_points(group="inspect_ai") if ep.name == "executable_cf"] == \
        ["executable_cf._registry"]
    for ref in common.task_refs():
        assert registry_lookup("task", f"executable_cf/{ref.short_name}") is not None, ref
    assert registry_lookup("task", "executable_cf/from_file") is not None
    assert registry_lookup("scorer", "executable_cf/set_match") is not None


def test_mockllm_responses_are_scored_by_our_metric(tmp_path):
    items = common.generate(common.TaskRef("while"), level="hard", n=4, seed=7)
    texts = [f"so \\boxed{{{common.answer_text(items[0])}}}", f"\\boxed{{{common.answer_text(items[1])}, 987654}}",
             "no box at all", f"\\boxed{{{common.answer_text(items[3])}}} (and {{1, 2}} earlier)"]
    by_prompt = {item["prompt"]: text for item, text in zip(items, texts)}
    model = get_model("mockllm/model", custom_outputs=lambda inp, *_: output(by_prompt[inp[-1].text]))
    log = run("executable_cf/while", model, task_args={"n": 4, "seed": 7, "level": "hard"}, log_dir=str(tmp_path))
    expected = [common.score("while", text, item["answer"]) for item, text in zip(items, texts)]
    samples = sorted(log.samples, key=lambda s: s.metadata["index"])
    assert [s.id for s in samples] == [item["id"] for item in items]
    assert [s.scores["set_match"].value for s in samples] == expected
    assert samples[0].target == common.answer_text(items[0]) and samples[0].metadata["program"] == items[0]["program"]
    assert samples[2].scores["set_match"].answer is None
    assert metrics(log) == pytest.approx({k: sum(e[k] for e in expected) / 4 for k in ("exact_match", "f1")})
    assert log.eval.task == "executable_cf/while" and log.eval.task_args["seed"] == 7


def test_custom_model_api_on_math_and_on_a_frozen_mixed_folder(tmp_path):
    math = common.generate(common.TaskRef("gsm", "interventional"), n=3, seed=11)
    code = common.generate(common.TaskRef("if_else"), level="easy", n=3, seed=11)
    ScriptedModel.answers = {item["prompt"]: f"\\boxed{{{common.answer_text(item)}}}" for item in math + code}
    ScriptedModel.answers[math[2]["prompt"]] = "\\boxed{3 or 4}"  # a hedge scores 0 on math
    model = get_model("cf_scripted/table")
    log = run("executable_cf/gsm_interventional", model, task_args={"n": 3, "seed": 11}, log_dir=str(tmp_path))
    assert metrics(log) == pytest.approx({"acc": 2 / 3})
    write_jsonl(tmp_path / "frozen" / "data.jsonl", code + math)
    log = run("executable_cf/from_file", model, task_args={"path": str(tmp_path / "frozen")}, log_dir=str(tmp_path))
    assert len(log.samples) == 6 and metrics(log) == pytest.approx({"exact_match": 5 / 6, "f1": 5 / 6})
    write_jsonl(tmp_path / "ifelse.jsonl", code)
    log = run("executable_cf/if_else", model, task_args={"data": str(tmp_path / "ifelse.jsonl")},
              log_dir=str(tmp_path))
    assert metrics(log) == {"exact_match": 1.0, "f1": 1.0}


def test_data_of_another_task_is_rejected(tmp_path):
    from executable_cf._registry import TASKS

    write_jsonl(tmp_path / "items.jsonl", common.generate(common.TaskRef("if_else"), n=2, seed=1))
    with pytest.raises(ValueError, match="is if_else/counterfactual, not a executable_cf_while item"):
        TASKS["while"](data=str(tmp_path / "items.jsonl"))


def test_inspect_eval_cli_discovers_runs_and_scores(tmp_path):
    inspect_cli = Path(sys.executable).with_name("inspect")
    proc = subprocess.run(
        [str(inspect_cli), "eval", "executable_cf/while_interventional", "-T", "n=4", "-T", "level=easy",
         "--model", "mockllm/model", "--solver", f"{HERE / 'inspect_scripted_solver.py'}@alternate",
         "--log-dir", str(tmp_path), "--display", "none"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    (path,) = tmp_path.glob("*.eval")
    log = read_eval_log(str(path))
    assert log.status == "success" and log.eval.task == "executable_cf/while_interventional"
    assert len(log.samples) == 4
    # even indices answer the gold set, odd ones add one wrong element: EM 1/2, F1 (1 + 2/3) / 2
    assert metrics(log) == pytest.approx({"exact_match": 0.5, "f1": 5 / 6})
    items = common.generate(common.TaskRef("while", "interventional"), level="easy", n=4, seed=1234)
    assert sorted(s.input[-1].content for s in log.samples) == sorted(i["prompt"] for i in items)
