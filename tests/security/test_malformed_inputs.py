"""Malformed task YAMLs, program records, configs and plugins (issue 7, "Hostile answers and files").

Each bad input must fail with a message naming the file (and line) or the
plugin, and the field; nothing half-written may be left behind; one broken
plugin must not break the others. What lm-eval itself does with YAML it cannot
parse is pinned here too (it skips the file silently; lm-eval 0.4.13's TaskManager).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# -- task YAMLs (lm-eval TaskManager with include_path, no built-in tasks: 0.1 s) ----------------

TASK_YAML = """\
task: {name}
custom_dataset: !function {loader}
test_split: test
output_type: generate_until
doc_to_text: "{{{{prompt}}}}"
doc_to_target: "{{{{target}}}}"
generation_kwargs: {{until: [], max_gen_toks: 16}}
process_results: !function cf_tasks.lmeval.scoring.process_results
metric_list:
  - {{metric: exact_match, aggregation: mean, higher_is_better: true}}
metadata: {metadata}
"""

GOOD_META = {"version": 1.0, "family": "if_else", "variant": "counterfactual", "level": "easy", "n": 2, "seed": 3}

# (case, metadata changes, field the message must name)
BAD_METADATA = [
    ("n_not_int", {"n": "lots"}, "'n'"),
    ("n_fraction", {"n": 2.5}, "'n'"),
    ("seed_not_int", {"seed": "abc"}, "'seed'"),
    ("family_unknown", {"family": "if_els"}, "'family'"),
    ("family_missing", {"family": None}, "'family'"),
    ("level_unknown", {"level": "insane"}, "level 'insane'"),
    ("variant_unknown", {"variant": "factual"}, "'variant'"),
    ("config_not_mapping", {"config": [1, 2]}, "'config'"),
    ("config_unknown_field", {"config": {"bogus": 1}}, "bogus"),
    ("config_wrong_type", {"config": {"max_attempts": "abc"}}, "'max_attempts'"),
    ("config_bool_for_int", {"config": {"max_abs_value": True}}, "'max_abs_value'"),
    ("config_out_of_range", {"config": {"nested_prob": 2.5}}, "nested_prob"),
]


def _task_manager(folder: Path):
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(folder), include_defaults=False)


def _write_task(folder: Path, name: str, metadata: dict, loader: str = "cf_tasks.lmeval.dataset.load_family") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(TASK_YAML.format(name=name, loader=loader, metadata=json.dumps(metadata)))
    return path


@pytest.fixture(scope="module")
def task_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("bad_tasks")
    for case, change, _ in BAD_METADATA:
        meta = {k: v for k, v in {**GOOD_META, **change}.items() if v is not None}
        _write_task(folder, f"sec_bad_{case}", meta)
    _write_task(folder, "sec_good_task", GOOD_META)
    _write_task(folder, "sec_missing_function", GOOD_META, loader="cf_tasks.lmeval.dataset.no_such_loader")
    _write_task(folder, "sec_missing_module", GOOD_META, loader="no_such_module_xyz.loader")
    _write_task(folder, "sec_records_missing", {"version": 1.0}, loader="cf_tasks.lmeval.dataset.load_records")
    _write_task(folder, "sec_records_bad_path", {"version": 1.0, "records": str(folder / "nope.jsonl")},
                loader="cf_tasks.lmeval.dataset.load_records")
    bad_records = folder / "bad_records.jsonl"
    bad_records.write_text(json.dumps(GOOD_RECORD) + "\n" + json.dumps({**GOOD_RECORD, "id": "b", "latents": []})
                           + "\n")
    _write_task(folder, "sec_records_bad_line", {"version": 1.0, "records": str(bad_records)},
                loader="cf_tasks.lmeval.dataset.load_records")
    (folder / "sec_unparsable.yaml").write_text("task: sec_unparsable\nmetadata: {version: 1.0\n  bad: [\n")
    return folder


@pytest.mark.parametrize("case,change,field", BAD_METADATA, ids=[c[0] for c in BAD_METADATA])
def test_task_yaml_bad_metadata_names_yaml_and_field(task_folder, case, change, field):
    manager = _task_manager(task_folder)
    with pytest.raises(ValueError) as err:
        manager.load([f"sec_bad_{case}"])
    message = str(err.value)
    assert str(task_folder / f"sec_bad_{case}.yaml") in message, message
    assert field in message, message


def test_task_yaml_records_loader_errors_name_files(task_folder):
    manager = _task_manager(task_folder)
    with pytest.raises(ValueError, match=r"sec_records_missing\.yaml.*'records'"):
        manager.load(["sec_records_missing"])
    with pytest.raises(ValueError, match=r"sec_records_bad_path\.yaml.*'records'.*not found.*nope\.jsonl"):
        manager.load(["sec_records_bad_path"])
    with pytest.raises(ValueError, match=r"bad_records\.jsonl:2: field 'latents'"):
        manager.load(["sec_records_bad_line"])


def test_task_yaml_missing_function_names_it(task_folder):
    """lm-eval's own errors for a ``!function`` that does not resolve name the function and the folder."""
    manager = _task_manager(task_folder)
    with pytest.raises(AttributeError, match="no_such_loader"):
        manager.load(["sec_missing_function"])
    with pytest.raises(ImportError, match="no_such_module_xyz"):
        manager.load(["sec_missing_module"])


def test_unparsable_task_yaml_is_skipped_by_lm_eval_but_named_when_loaded_by_path(task_folder):
    """lm-eval 0.4.13 indexes YAMLs with a debug-level log only: the broken task just disappears.

    The other YAMLs of the folder still load, and loading the file by path shows
    the parser error with the file and line.
    """
    import yaml

    manager = _task_manager(task_folder)
    assert "sec_unparsable" not in manager.all_tasks
    assert "sec_good_task" in manager.all_tasks and "executable_cf_if_else" in manager.all_tasks
    with pytest.raises(KeyError, match="sec_unparsable"):
        manager.load(["sec_unparsable"])
    with pytest.raises(yaml.YAMLError) as err:
        manager.load([str(task_folder / "sec_unparsable.yaml")])
    assert "sec_unparsable.yaml" in str(err.value) and "line 3" in str(err.value)
    loaded = manager.load(["sec_good_task"])
    assert "sec_good_task" in str(loaded)


# -- program records through `cf-tasks solve` ----------------------------------------------------

GOOD_RECORD = {
    "id": "a", "program": "def f(x, r):\n    return x + r\n", "entry_point": "f", "latents": {"r": [1, 2, 3]},
    "observed": {"inputs": {"x": 1}, "output": 3}, "intervention": {"x": 5},
}
_DROP = object()

# (case, changes to the record on line 2, field the message must name)
BAD_RECORDS = [
    *[(f"missing_{k}", {k: _DROP}, k) for k in ("id", "program", "entry_point", "latents", "observed", "intervention")],
    ("id_list", {"id": [1]}, "id"),
    ("id_bool", {"id": True}, "id"),
    ("program_empty", {"program": "  "}, "program"),
    ("program_not_str", {"program": 42}, "program"),
    ("entry_point_not_identifier", {"entry_point": "f; import os"}, "entry_point"),
    ("entry_point_not_defined", {"entry_point": "g"}, "entry_point"),
    ("latents_empty", {"latents": {}}, "latents"),
    ("latents_list", {"latents": [1, 2]}, "latents"),
    ("latent_name_not_identifier", {"latents": {"r-1": [1]}}, "latents"),
    ("latent_domain_empty", {"latents": {"r": []}}, "latents.r"),
    ("latent_domain_nested", {"latents": {"r": [[1]]}}, "latents.r"),
    ("latent_domain_string", {"latents": {"r": "123"}}, "latents.r"),
    ("latent_range_keys", {"latents": {"r": {"low": 1}}}, "latents.r"),
    ("latent_range_floats", {"latents": {"r": {"low": 1.5, "high": 3}}}, "latents.r"),
    ("latent_range_reversed", {"latents": {"r": {"low": 5, "high": 1}}}, "latents.r"),
    ("latent_range_huge", {"latents": {"r": {"low": 0, "high": 10**12}}}, "latents.r"),
    ("latent_joint_domain_huge", {"latents": {"r": {"low": 0, "high": 999}, "s": {"low": 0, "high": 999}}}, "latents"),
    ("observed_not_mapping", {"observed": [1, 3]}, "observed"),
    ("observed_no_output", {"observed": {"inputs": {"x": 1}}}, "observed"),
    ("observed_inputs_list", {"observed": {"inputs": [1], "output": 3}}, "observed.inputs"),
    ("observed_input_nested", {"observed": {"inputs": {"x": {"v": 1}}, "output": 3}}, "observed.inputs.x"),
    ("observed_output_list", {"observed": {"inputs": {"x": 1}, "output": [3]}}, "observed.output"),
    ("observed_input_is_latent", {"observed": {"inputs": {"x": 1, "r": 2}, "output": 3}}, "observed.inputs"),
    ("intervention_empty", {"intervention": {}}, "intervention"),
    ("intervention_unknown_name", {"intervention": {"y": 5}}, "intervention"),
    ("intervention_not_mapping", {"intervention": 5}, "intervention"),
    ("intervention_value_nested", {"intervention": {"x": [5]}}, "intervention.x"),
    ("variant_unknown", {"variant": "factual"}, "variant"),
    ("latent_values_missing", {"variant": "interventional"}, "latent_values"),
    ("latent_values_outside_domain", {"variant": "interventional", "latent_values": {"r": 9}}, "latent_values.r"),
    ("latent_values_wrong_names", {"variant": "interventional", "latent_values": {"s": 1}}, "latent_values"),
    ("latent_values_on_counterfactual", {"latent_values": {"r": 1}}, "latent_values"),
    ("answer_not_list", {"answer": 7}, "answer"),
    ("answer_nested", {"answer": [[7]]}, "answer"),
    ("duplicate_id", {"id": "a"}, "id"),
]


def _solve(tmp_path: Path, text: str | bytes, capsys) -> tuple[int, str, Path]:
    from cf_tasks.cli import main

    src = tmp_path / "records.jsonl"
    if isinstance(text, bytes):
        src.write_bytes(text)
    else:
        src.write_text(text)
    out = tmp_path / "out" / "solved.jsonl"
    rc = main(["solve", str(src), "-o", str(out)])
    return rc, capsys.readouterr().err, out


@pytest.mark.parametrize("case,change,field", BAD_RECORDS, ids=[c[0] for c in BAD_RECORDS])
def test_bad_program_record_names_file_line_and_field(tmp_path, capsys, case, change, field):
    record = {k: v for k, v in {**GOOD_RECORD, "id": "b", **change}.items() if v is not _DROP}
    rc, err, out = _solve(tmp_path, json.dumps(GOOD_RECORD) + "\n" + json.dumps(record) + "\n", capsys)
    assert rc == 2, err
    assert f"{tmp_path / 'records.jsonl'}:2:" in err, err
    assert f"field {field!r}" in err, err
    assert "Traceback" not in err
    assert not out.parent.exists() or not any(out.parent.iterdir()), "no output may be written for bad input"


BAD_FILES = [
    ("invalid_json", '{"id": "a",\n', "records.jsonl:1: invalid JSON"),
    ("invalid_json_line_3", json.dumps(GOOD_RECORD) + "\n\n{'id': 'b'}\n", "records.jsonl:3: invalid JSON"),
    ("not_an_object", "[1, 2, 3]\n", "records.jsonl:1: expected a JSON object"),
    ("string_line", '"just text"\n', "records.jsonl:1: expected a JSON object"),
    ("nan_output", json.dumps(GOOD_RECORD).replace('"output": 3', '"output": NaN') + "\n", "'observed.output'"),
    ("not_utf8", json.dumps(GOOD_RECORD).encode() + b"\n" + b'{"id": "\xff\xfe"}\n', "records.jsonl:2: not UTF-8"),
    ("utf8_bom", "\ufeff" + json.dumps(GOOD_RECORD) + "\n", "records.jsonl:1: invalid JSON"),
    ("nul_bytes", "\x00" * 16 + "\n", "records.jsonl:1: invalid JSON"),
]


@pytest.mark.parametrize("case,text,expected", BAD_FILES, ids=[c[0] for c in BAD_FILES])
def test_bad_record_file_names_file_and_line(tmp_path, capsys, case, text, expected):
    rc, err, out = _solve(tmp_path, text, capsys)
    assert rc == 2 and expected in err, err
    assert not out.exists()


def test_record_file_that_is_missing_or_a_folder(tmp_path, capsys):
    from cf_tasks.cli import main

    for source in (tmp_path / "nope.jsonl", tmp_path):
        rc = main(["solve", str(source), "-o", str(tmp_path / "o.jsonl")])
        err = capsys.readouterr().err
        assert rc == 2 and str(source) in err and "Traceback" not in err, err


def test_records_whose_programs_fail_name_the_record(tmp_path, capsys):
    """Valid JSON, bad program: execution (in the isolated executor) fails; the error names the record."""
    lines = [
        {**GOOD_RECORD, "id": "syntax", "program": "def f(x, r):\n    return (\n"},
        {**GOOD_RECORD, "id": "raises", "program": "def f(x, r):\n    raise ValueError(x)\n"},
    ]
    for record in lines:
        rc, err, out = _solve(tmp_path, json.dumps(record) + "\n", capsys)
        assert rc == 2 and repr(record["id"]) in err, err
        assert not out.exists()
    wrong = {**GOOD_RECORD, "id": "wrong_answer", "answer": [8]}
    rc, err, out = _solve(tmp_path, json.dumps(wrong) + "\n", capsys)
    assert rc == 2 and "'wrong_answer'" in err and "answer" in err, err


# -- configs -------------------------------------------------------------------------------------

BAD_OVERRIDES = [
    ("max_attempts=abc", "'max_attempts'"),
    ('nested_prob="x"', "'nested_prob'"),
    ("max_elifs=1.5", "'max_elifs'"),
    ("max_abs_value=true", "'max_abs_value'"),
    ("max_attempts=null", "'max_attempts'"),
    ("nesting_depth=[1,2]", "'nesting_depth'"),
    ("max_attempts=-1", "max_attempts"),
    ("nested_prob=2.5", "nested_prob"),
    ("nesting_depth=5", "nesting_depth"),
    ("bogus=1", "bogus"),
    ("noequals", "key=value"),
]


@pytest.mark.parametrize("override,field", BAD_OVERRIDES, ids=[o[0] for o in BAD_OVERRIDES])
def test_bad_family_override_names_the_field(tmp_path, capsys, override, field):
    from cf_tasks.cli import main

    out = tmp_path / "gen"
    rc = main(["generate", "--family", "if_else", "--n", "2", "--set", override, "-o", str(out), "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and field in err and "Traceback" not in err, err
    assert not out.exists()


@pytest.mark.parametrize("args,expected", [
    (["--family", "if_els"], "Did you mean 'if_else'"),
    (["--family", "if_else", "--level", "insane"], "level 'insane'"),
    (["--family", "gsm", "--set", "money_step=0.3"], "money_step"),
    (["--family", "gsm", "--set", "intervene_on=[\"nope\"]"], "intervene_on"),
], ids=["unknown_family", "unknown_level", "gsm_money_step", "gsm_intervene_on"])
def test_bad_generate_arguments(tmp_path, capsys, args, expected):
    from cf_tasks.cli import main

    rc = main(["generate", *args, "--n", "2", "-o", str(tmp_path / "gen"), "-q"])
    err = capsys.readouterr().err
    assert rc == 2 and expected in err, err


TRAINER_CONFIGS = [
    ("unknown_field", lambda y: y.replace("\nmodel:", "\nmodle:"), ["modle"]),
    ("invalid_yaml", lambda y: y + "\nrewards: [\n  x: 1\n", ["invalid YAML"]),
    ("not_mapping", lambda y: "- just\n- a list\n", ["must be a mapping"]),
    ("wrong_type", lambda y: y.replace("prompt_batch_size: 2", "prompt_batch_size: two"), ["prompt_batch_size"]),
    ("bad_number", lambda y: y.replace("n: 8", "n: -3"), ["data.n"]),
    ("unknown_trl_field", lambda y: y.replace("max_steps: 2", "max_stepz: 2"), ["max_stepz"]),
    ("lora_not_mapping", lambda y: y + "\nlora: 5\n", ["lora"]),
]


@pytest.mark.parametrize("case,mutate,expected", TRAINER_CONFIGS, ids=[c[0] for c in TRAINER_CONFIGS])
def test_bad_trainer_config_names_file_and_field(tmp_path, capsys, case, mutate, expected):
    pytest.importorskip("training.config")
    from training.cli import main

    source = REPO / "training" / "configs" / "grpo_tiny_cpu.yaml"
    if not source.exists():
        pytest.skip("no tiny GRPO config in this checkout")
    path = tmp_path / f"{case}.yaml"
    path.write_text(mutate(source.read_text()))
    rc = main(["grpo", "--config", str(path), "--dry-run"])
    err = capsys.readouterr().err
    assert rc == 2 and str(path) in err, err
    for text in expected:
        assert text in err, err


def test_bad_trainer_override_names_the_field(tmp_path, capsys):
    pytest.importorskip("training.config")
    from training.cli import main

    source = REPO / "training" / "configs" / "grpo_tiny_cpu.yaml"
    if not source.exists():
        pytest.skip("no tiny GRPO config in this checkout")
    rc = main(["grpo", "--config", str(source), "--set", "rewards.exact_match=abc", "--dry-run"])
    err = capsys.readouterr().err
    assert rc == 2 and "rewards.exact_match" in err, err


# -- plugins whose import fails ------------------------------------------------------------------

BROKEN_DIST = {
    "entry_points": """\
        [executable_cf.families]
        broken_fam = sec_broken_fam:FAMILY
        exit_fam = sec_exit_fam:FAMILY
        hollow_fam = sec_hollow_fam:FAMILY
        [executable_cf.selectors]
        broken_sel = sec_broken_sel:SELECTOR
        [executable_cf.trainers]
        broken_trainer = sec_broken_trainer:TRAINER
        [lm_eval.tasks]
        broken_tasks = sec_no_such_tasks_pkg
        [lm_eval.models]
        broken_model = sec_no_such_models:Model
        """,
    "modules": {
        "sec_broken_fam": "raise RuntimeError('boom at import')\n",
        "sec_exit_fam": "import sys\nsys.exit(3)  # e.g. argparse run at import time\n",
        "sec_hollow_fam": "FAMILY = object()\n",
        "sec_broken_sel": "import sec_no_such_dependency\n",
        "sec_broken_trainer": "raise ImportError('trainer needs a missing extra')\n",
    },
}

# Runs each console entry point in one interpreter (start-up once) and reports rc/stdout/stderr.
DRIVER = r'''
import contextlib, io, json, sys, traceback

def run(main, argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as exc:
            rc = exc.code if isinstance(exc.code, int) else 1
        except BaseException:
            traceback.print_exc()
            rc = "traceback"
    return {"rc": rc, "out": out.getvalue(), "err": err.getvalue()}

results = {}
from cf_tasks.cli import main as cf_tasks
results["families"] = run(cf_tasks, ["families"])
results["generate_broken"] = run(cf_tasks, ["generate", "--family", "broken_fam", "-o", sys.argv[1] + "/b", "-q"])
results["generate_exit"] = run(cf_tasks, ["generate", "--family", "exit_fam", "-o", sys.argv[1] + "/e", "-q"])
results["generate_ok"] = run(cf_tasks, ["generate", "--family", "if_else", "--level", "easy", "--n", "3",
                                        "-o", sys.argv[1] + "/ok", "-q"])
from selection.cli import main as cf_select
results["select_help"] = run(cf_select, ["--help"])
results["select_broken"] = run(cf_select, ["broken_sel"])
from training.cli import main as cf_train
results["train_help"] = run(cf_train, ["--help"])
results["train_broken"] = run(cf_train, ["broken_trainer", "--config", sys.argv[1] + "/none.yaml"])
from lm_eval.tasks import TaskManager
from lm_eval.api.registry import get_model
tasks = TaskManager(include_defaults=False).all_tasks
results["lm_eval_tasks"] = sorted(t for t in tasks if t.startswith("executable_cf"))
results["lm_eval_oracle"] = get_model("cf_oracle").__name__
try:
    get_model("broken_model")
    results["lm_eval_broken_model"] = "loaded"
except Exception as exc:
    results["lm_eval_broken_model"] = f"{type(exc).__name__}: {exc}"
print("@@RESULTS@@" + json.dumps(results))
'''


@pytest.fixture(scope="module")
def broken_plugin_run(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("broken_plugins")
    site = root / "site"
    info = site / "sec_dist_broken-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sec-dist-broken\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(BROKEN_DIST["entry_points"]))
    for name, src in BROKEN_DIST["modules"].items():
        (site / f"{name}.py").write_text(src)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
               HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    proc = subprocess.run([sys.executable, "-c", DRIVER, str(root)], capture_output=True, text=True, env=env,
                          timeout=600, cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = [l for l in proc.stdout.splitlines() if l.startswith("@@RESULTS@@")][-1]
    return {**json.loads(line[len("@@RESULTS@@"):]), "root": str(root)}


def test_families_lists_broken_plugins_by_name_and_the_rest(broken_plugin_run):
    listing = broken_plugin_run["families"]
    assert listing["rc"] == 0, listing
    lines = {line.split()[0]: line for line in listing["out"].splitlines() if line.strip()}
    assert {"if_else", "if_else_long", "while", "multi_r", "gsm"} <= set(lines), listing["out"]
    for name, detail in [("broken_fam", "boom at import"), ("exit_fam", "SystemExit: 3"),
                         ("hollow_fam", "generate_items")]:
        assert "BROKEN" in lines[name] and "sec-dist-broken" in lines[name] and detail in lines[name], lines[name]
    assert "BROKEN" not in lines["if_else"]


def test_generate_with_a_broken_plugin_names_it_and_others_still_work(broken_plugin_run):
    for key, detail in [("generate_broken", "boom at import"), ("generate_exit", "SystemExit")]:
        result = broken_plugin_run[key]
        assert result["rc"] == 2, result
        assert "'broken_fam'" in result["err"] or "'exit_fam'" in result["err"]
        assert detail in result["err"] and "Traceback" not in result["err"], result["err"]
    ok = broken_plugin_run["generate_ok"]
    assert ok["rc"] == 0, ok
    assert len((Path(broken_plugin_run["root"]) / "ok" / "data.jsonl").read_text().splitlines()) == 3


def test_cf_select_help_survives_a_broken_selector(broken_plugin_run):
    help_ = broken_plugin_run["select_help"]
    assert help_["rc"] == 0, help_
    text = " ".join(help_["out"].split())
    assert "grape" in text and "bids" in text and "broken_sel" in text and "broken plugin" in text
    broken = broken_plugin_run["select_broken"]
    assert broken["rc"] == 2 and "'broken_sel'" in broken["err"] and "sec_no_such_dependency" in broken["err"]


def test_cf_train_survives_a_broken_trainer(broken_plugin_run):
    help_ = broken_plugin_run["train_help"]
    assert help_["rc"] == 0 and "grpo" in help_["out"] and "broken_trainer" in help_["out"], help_
    broken = broken_plugin_run["train_broken"]
    assert broken["rc"] not in (0, None), broken
    assert "'broken_trainer'" in broken["err"] and "trainer needs a missing extra" in broken["err"], broken
    assert "Traceback" not in broken["err"] and broken["rc"] == 2, broken


def test_lm_eval_hook_skips_broken_entry_points(broken_plugin_run):
    assert {"executable_cf", "executable_cf_if_else", "executable_cf_gsm"} <= set(broken_plugin_run["lm_eval_tasks"])
    assert broken_plugin_run["lm_eval_oracle"] == "OracleLM"
    assert "sec_no_such_models" in broken_plugin_run["lm_eval_broken_model"]
