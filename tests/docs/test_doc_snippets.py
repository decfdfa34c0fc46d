"""The README and docs are a contract: every fenced block runs (see ``snippets.py`` for the rules).

One test per document; its blocks run in order in one working folder, so a
block may use what an earlier one wrote. A failure names the document, the
line of the block and the command, with the command's output.
"""

from __future__ import annotations

import configparser
import json
import os
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import snippets  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
       "TOKENIZERS_PARALLELISM": "false", "PYTHONHASHSEED": "0"}
COMMAND_TIMEOUT_S = 900


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("snippet-model") / "tiny"
    proc = subprocess.run(["cf-tasks", "tiny-model", "-o", str(out)], capture_output=True, text=True, env=ENV,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return str(out)


def _run(command: str, cwd: Path, where: str) -> None:
    started = time.monotonic()
    proc = subprocess.run(["bash", "-euxo", "pipefail", "-c", command], cwd=cwd, capture_output=True, text=True,
                          env={**ENV, "PYTHONPATH": str(cwd)}, timeout=COMMAND_TIMEOUT_S)
    assert proc.returncode == 0, (f"{where}: exited {proc.returncode}\n--- ran\n{command}\n--- stdout\n"
                                  f"{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}")
    print(f"{where}: {time.monotonic() - started:.1f}s")  # shown with -s / on failure: where the minutes go


def _write(snippet: snippets.Snippet, target: str, cwd: Path) -> Path:
    path = cwd / target
    path.parent.mkdir(parents=True, exist_ok=True)
    text = snippet.text
    if path.suffix == ".jsonl":  # a pretty-printed record in the docs is one line in the file
        text = "".join(json.dumps(obj) + "\n" for obj in _json_objects(text, snippet.where))
    path.write_text(text, encoding="utf-8")
    return path


def _json_objects(text: str, where: str) -> list:
    decoder, objects, i = json.JSONDecoder(), [], 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        try:
            obj, i = decoder.raw_decode(text, i)
        except json.JSONDecodeError as exc:
            raise AssertionError(f"{where}: invalid JSON ({exc})") from None
        objects.append(obj)
    return objects


def _check_written(path: Path, snippet: snippets.Snippet, cwd: Path) -> None:
    """What a written file must be: records parse, task YAMLs load, setup.cfg entry points resolve."""
    if path.suffix in (".json", ".jsonl"):
        from cf_tasks.records import ProgramRecord

        for obj in _json_objects(path.read_text(), snippet.where):
            if isinstance(obj, dict) and "program" in obj:
                ProgramRecord.from_json(obj, source=snippet.where)
    elif path.suffix in (".yaml", ".yml") and "task:" in snippet.text:
        code = ("from lm_eval.tasks import TaskManager; import sys; tm = TaskManager(include_path=[sys.argv[1]]); "
                "tasks = tm.load_task_or_group([sys.argv[2]]); print(len(tasks))")
        name = next(line.split(":", 1)[1].strip() for line in snippet.text.splitlines() if line.startswith("task:"))
        _run(f"python -c {shlex.quote(code)} {shlex.quote(str(path.parent))} {shlex.quote(name)}", cwd,
             snippet.where)
    elif path.name == "setup.cfg":
        parser = configparser.ConfigParser()
        parser.read_string(snippet.text)
        for group, value in parser["options.entry_points"].items():
            for line in filter(None, (v.strip() for v in value.splitlines())):
                module = line.split("=", 1)[1].strip().split(":", 1)[0]
                assert (cwd / (module.replace(".", "/") + ".py")).is_file(), f"{snippet.where}: {group}: {module}"
    elif path.suffix == ".py":
        code = ("import runpy, sys; ns = runpy.run_path(sys.argv[1]); fam = ns.get('FAMILY');\n"
                "if fam is not None:\n"
                "    items = fam.generate_items(variant='counterfactual', n=5, seed=0, config=fam.config(None))\n"
                "    assert len(items.items) == 5, items.report")
        _run(f"python -c {shlex.quote(code)} {shlex.quote(str(path))}", cwd, snippet.where)


def _check_inspect_logs(cwd: Path, doc: Path) -> None:
    """``inspect eval`` exits 0 even when a task was interrupted: its logs say whether it ran."""
    logs = sorted((cwd / "logs").glob("*.eval")) if (cwd / "logs").is_dir() else []
    if logs:
        from inspect_ai.log import read_eval_log

        for path in logs:
            log = read_eval_log(str(path), header_only=True)
            assert log.status == "success", f"{doc.name}: inspect run {path.name} ended {log.status}: {log.error}"


@pytest.mark.parametrize("doc", DOCS, ids=[d.name for d in DOCS])
def test_every_snippet_runs(doc: Path, tiny_model: str, tmp_path: Path) -> None:
    for checkout_folder in ("tests", "benchmarks"):  # commands that name them run as in a checkout
        (tmp_path / checkout_folder).symlink_to(REPO / checkout_folder)
    ran = 0
    for snippet in snippets.extract(doc):
        if snippet.directive == "skip":
            assert snippet.argument.strip("() "), f"{snippet.where}: a skipped snippet must say why"
            continue
        target = snippets.file_target(snippet)
        if target:
            _check_written(_write(snippet, target, tmp_path), snippet, tmp_path)
            ran += 1
        elif snippet.lang in ("bash", "sh", "console", "shell"):
            runnable = snippets.script(snippet.text, tiny_model=tiny_model, dry_run=snippet.directive == "dry-run")
            if runnable:
                _run(runnable, tmp_path, snippet.where)
                ran += 1
        elif snippet.lang == "python":
            code = snippets.HUB_MODEL_RE.sub(tiny_model, snippet.text)
            _run(f"python -c {shlex.quote(code)}", tmp_path, snippet.where)
            ran += 1
        elif snippet.lang == "json":
            _json_objects(snippet.text, snippet.where)
            ran += 1
        elif snippet.lang in ("yaml", "yml"):
            import yaml

            yaml.safe_load(snippet.text)
            ran += 1
        elif snippet.lang in ("", "text", "ini", "toml"):
            continue  # output listings and layouts, not something to run
        else:
            raise AssertionError(f"{snippet.where}: no rule for a `{snippet.lang}` block (see tests/docs/snippets.py)")
    _check_inspect_logs(tmp_path, doc)
    assert ran or not snippets.extract(doc) or all(s.directive == "skip" or s.lang in ("", "text")
                                                  for s in snippets.extract(doc))


def test_substitutions_keep_the_command_and_make_it_small():
    sub = snippets.substitute
    assert sub("lm_eval --model hf --model_args pretrained=Qwen/Qwen2.5-7B-Instruct,dtype=bfloat16 --limit 20",
               tiny_model="/m") == ("lm_eval --model hf --model_args pretrained=/m,dtype=bfloat16 --limit 3 "
                                    "--gen_kwargs max_gen_toks=16")
    assert sub("cf-select grape --model Qwen/Qwen2.5-7B-Instruct --data p.jsonl", tiny_model="/m") == \
        "cf-select grape --model /m --data p.jsonl"
    assert sub("cf-tasks generate --family while --n 1000 -o d", tiny_model="/m") == \
        "cf-tasks generate --family while --n 40 -o d"
    assert sub("pip install -e .", tiny_model="/m") is None
    assert sub("cf-train grpo --config c.yaml", tiny_model="/m", dry_run=True).endswith("--dry-run")
    assert snippets.commands("a \\\n  b  # note\n# only a comment\nc\n") == ["a b", "c"]
    assert sub("lm_eval --model cf_oracle --tasks executable_cf_code", tiny_model="/m").endswith("--limit 3")
    assert sub("inspect eval executable_cf/while --model openai/gpt-4o-mini", tiny_model="/m") == \
        f"inspect eval executable_cf/while --model mockllm/model --solver {snippets.INSPECT_SOLVER} --limit 3"
    assert snippets.script("pip install -e . && lm_eval --model cf_echo --limit 2\npython benchmarks/b.py\n",
                           tiny_model="/m") == "lm_eval --model cf_echo --limit 2\n"
