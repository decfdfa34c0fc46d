"""Synthetic lm-eval outputs (and a rule-based judge backend) in the real on-disk layout, for the report tests.

``write_lmeval_run`` writes ``OUT/<model>/results_<ts>.json`` and
``samples_<task>_<ts>.jsonl`` with the keys lm-eval 0.4.13 writes (checked
against a real ``lm_eval --model dummy --log_samples`` run), docs encoded the
way ``cf_tasks.lmeval.docs.encode_doc`` stores them (nested fields as JSON
text listed in ``json_fields``).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from statistics import fmean

from lm_eval.api.model import LM
from lm_eval.api.registry import register_model

TS = "2026-01-02T03-04-05.123456"
GROUPS = {
    "executable_cf": ["executable_cf_code", "executable_cf_math"],
    "executable_cf_code": [],
}


def encode(doc: dict) -> dict:
    out, fields = {}, []
    for k, v in doc.items():
        if isinstance(v, (list, dict)):
            out[k] = json.dumps(v, sort_keys=True)
            fields.append(k)
        else:
            out[k] = v
    out["json_fields"] = sorted(fields)
    return out


def make_doc(family: str, variant: str, i: int, *, answer=None, prior=None, n_consistent=1, level="easy",
             latents=None) -> dict:
    return {
        "id": f"{family}-{variant}-{i}",
        "family": family,
        "variant": variant,
        "level": level,
        "n_consistent": n_consistent,
        "answer": answer if answer is not None else [i],
        "prior_answer": prior if prior is not None else [i, i + 100],
        "latents": latents if latents is not None else {"r": list(range(1, 11))},
        "prompt": f"def f(x):\n    r = random.randint(1, 10)\n    return x + r\n# item {i}",
    }


def _h(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def write_lmeval_run(out: Path, model: str, tasks: dict, *, model_args=None, limit=None, ts: str = TS,
                     samples: bool = True, results: bool = True, sanitized: str | None = None) -> Path:
    """``tasks``: {task: [(doc, response, {"exact_match": 0/1, "f1": x} or {"acc": ...}), ...]}."""
    folder = out / (sanitized or model.replace("/", "__"))
    folder.mkdir(parents=True, exist_ok=True)
    res = {}
    for task, rows in tasks.items():
        metric_names = list(rows[0][2])
        entry = {"alias": task, "name": task, "sample_len": len(rows)}
        for m in metric_names:
            entry[f"{m},none"] = fmean(r[2][m] for r in rows)
            entry[f"{m}_stderr,none"] = "N/A"
        res[task] = entry
    groups = {g: {"alias": g, "name": g, "sample_len": 1} for g in GROUPS}
    res.update(groups)
    data = {
        "results": res,
        "groups": groups,
        "group_subtasks": {g: list(tasks) if not v else v for g, v in GROUPS.items()},
        "configs": {t: {"task": t} for t in tasks},
        "versions": {t: 1.0 for t in tasks},
        "n-shot": {t: 0 for t in tasks},
        "higher_is_better": {t: {m: True for m in rows[0][2]} for t, rows in tasks.items()},
        "n-samples": {t: {"original": 200, "effective": len(rows)} for t, rows in tasks.items()},
        "config": {"model": model, "model_args": model_args or {}, "batch_size": 1, "limit": limit,
                   "bootstrap_iters": 0, "gen_kwargs": {}, "random_seed": 0},
        "git_hash": None,
        "date": 1.0,
        "lm_eval_version": "0.4.13",
        "model_name": model,
        "model_name_sanitized": sanitized or model,
        "task_hashes": {},
    }
    if results:
        (folder / f"results_{ts}.json").write_text(json.dumps(data, indent=2))
    if samples:
        for task, rows in tasks.items():
            with open(folder / f"samples_{task}_{ts}.jsonl", "w") as fh:
                for i, (doc, resp, metrics) in enumerate(rows):
                    line = {
                        "doc_id": i,
                        "doc": encode(doc),
                        "target": "\\boxed{" + ", ".join(map(str, doc.get("answer", []))) + "}",
                        "arguments": {"gen_args_0": {"arg_0": doc.get("prompt", ""), "arg_1": {"until": []}}},
                        "resps": [[resp]],
                        "filtered_resps": [resp],
                        "filter": "none",
                        "metrics": list(metrics),
                        "doc_hash": _h(json.dumps(doc)),
                        "prompt_hash": _h(doc.get("prompt", "")),
                        "target_hash": _h(str(doc.get("answer"))),
                        **metrics,
                    }
                    fh.write(json.dumps(line) + "\n")
    return folder


def rows_with_em(family: str, variant: str, ems: list[int], **doc_kw) -> list:
    """Rows whose exact match follows ``ems`` (responses box the gold or a wrong value)."""
    rows = []
    for i, em in enumerate(ems):
        doc = make_doc(family, variant, i, **doc_kw)
        value = doc["answer"][0] if em else -999
        rows.append((doc, f"So the answer is \\boxed{{{value}}}.", {"exact_match": float(em), "f1": float(em)}))
    return rows


JUDGE_NAME = "cf-report-test-judge"


@register_model(JUDGE_NAME)
class RuleJudgeLM(LM):
    """A deterministic lm-eval backend: grades by what the response under review contains."""

    calls = 0

    def __init__(self, style: str = "plain", **kwargs):
        super().__init__()
        self.style = style

    def generate_until(self, requests, disable_tqdm: bool = False):
        type(self).calls += len(requests)
        out = []
        for request in requests:
            context, gen_kwargs = request.args
            assert isinstance(gen_kwargs, dict)
            response = context.split("### Response to grade", 1)[1].split("### Your verdict", 1)[0]
            if "GARBLED" in response:
                out.append("I refuse to grade this.")
            elif "\\boxed{7}" in response:
                out.append("<think>planning 1?</think>The response abducts r first.\nPLANNING: 5\nEXECUTION: 4")
            else:
                out.append("**Planning (1-5):** 2/5\n**Execution score** - 1" if self.style == "plain"
                           else '{"planning": 2, "execution": 1}')
        return out

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError


ECHO_NAME = "cf-report-test-echo"


@register_model(ECHO_NAME)
class EchoAnswerLM(LM):
    """Answers ``\\boxed{a}`` for prompts ending in ``answer=a`` when the item number is even, else a wrong box."""

    def __init__(self, **kwargs):
        super().__init__()

    def generate_until(self, requests, disable_tqdm: bool = False):
        out = []
        for request in requests:
            context = request.args[0]
            item = int(context.split("item=")[1].split()[0])
            answer = context.rsplit("answer=", 1)[1].strip()
            out.append(f"\\boxed{{{answer}}}" if item % 2 == 0 else "\\boxed{999}")
        return out

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError


TOY_TASK_YAML = """task: {task}
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: "{{{{prompt}}}}"
doc_to_target: "{{{{target}}}}"
generation_kwargs:
  until: []
  max_gen_toks: 16
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
metadata:
  version: 1.0
"""


def run_real_lmeval(tmp: Path, n: int = 4) -> Path:
    """Run lm-eval in-process exactly as ``lm_eval ... --output_path OUT --log_samples`` saves files.

    Two toy tasks (``executable_cf_toy`` and its interventional twin) from local JSONL files,
    answered by :class:`EchoAnswerLM` (items 0, 2, ... right). Returns ``OUT``.
    """
    import lm_eval
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.tasks import TaskManager

    tasks_dir = tmp / "toy_tasks"
    tasks_dir.mkdir(parents=True, exist_ok=True)
    names = []
    for variant in ("counterfactual", "interventional"):
        task = "executable_cf_toy" + ("_interventional" if variant == "interventional" else "")
        names.append(task)
        data = tasks_dir / f"{task}.jsonl"
        with open(data, "w") as fh:
            for i in range(n):
                doc = make_doc("toy", variant, i, answer=[i + 1], n_consistent=1 + i % 3)
                doc["prompt"] = f"item={i} answer={i + 1}"
                doc = encode(doc)
                doc["target"] = f"\\boxed{{{i + 1}}}"
                fh.write(json.dumps(doc) + "\n")
        (tasks_dir / f"{task}.yaml").write_text(TOY_TASK_YAML.format(task=task, data=data))
    out = tmp / "lm_out"
    tracker = EvaluationTracker(output_path=str(out))
    results = lm_eval.simple_evaluate(
        model=ECHO_NAME, tasks=names, task_manager=TaskManager(include_path=str(tasks_dir), include_defaults=False),
        log_samples=True, bootstrap_iters=0, evaluation_tracker=tracker, random_seed=0,
    )
    samples = results.pop("samples")
    tracker.save_results_aggregated(results=results, samples=samples)
    for task_name in results["configs"]:
        tracker.save_results_samples(task_name=task_name, samples=samples[task_name])
    return out
