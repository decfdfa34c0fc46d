"""The lm-eval path as users run it: zero-flag CLI, --include_path, reference solvers, hf models."""

import glob
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CODE_FAMILIES = ["if_else", "if_else_long", "while", "multi_r"]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


def lm_eval(*args: str, cwd: Path) -> dict:
    """Run the ``lm_eval`` console script with no extra flag; return the results JSON."""
    out = cwd / "out"
    proc = subprocess.run(["lm_eval", *args, "--output_path", str(out)], capture_output=True, text=True,
                          cwd=cwd, env=ENV, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    files = sorted(glob.glob(str(out / "**" / "results_*.json"), recursive=True))
    assert files, proc.stdout[-2000:]
    return json.loads(Path(files[-1]).read_text())


@pytest.fixture(scope="module")
def oracle_results(tmp_path_factory):
    return lm_eval("--model", "cf_oracle", "--tasks", "executable_cf", "--limit", "20",
                   cwd=tmp_path_factory.mktemp("oracle"))


def test_zero_flag_oracle_scores_one_on_every_subtask(oracle_results):
    results = oracle_results["results"]
    subtasks = [name for name in results if name.startswith("executable_cf_") and "exact_match,none" in results[name]
                or "acc,none" in results.get(name, {})]
    for family in CODE_FAMILIES:
        assert f"executable_cf_{family}" in results
        assert f"executable_cf_{family}_interventional" in results
    assert len(subtasks) >= 8
    for name in subtasks:
        metrics = results[name]
        for key in ("exact_match,none", "f1,none", "acc,none"):
            if key in metrics:
                assert metrics[key] == 1.0, (name, key, metrics[key])
    assert oracle_results["n-samples"]["executable_cf_if_else"]["effective"] == 20


def test_results_record_the_benchmark_version(oracle_results):
    """Family and prompt versions are in the task metadata lm-eval writes, so two runs can be compared."""
    from plugins import FAMILIES

    for family in CODE_FAMILIES:
        meta = oracle_results["configs"][f"executable_cf_{family}"]["metadata"]
        assert meta["family_version"] == FAMILIES.get(family).version
        assert meta["prompt_version"] == "2" and meta["n"] == 400
        assert oracle_results["versions"][f"executable_cf_{family}"] == 2.0


def test_no_abduction_scores_zero_on_counterfactual_code(tmp_path):
    data = lm_eval("--model", "cf_no_abduction", "--tasks", "executable_cf_code", "--limit", "40", cwd=tmp_path)
    results = data["results"]
    for family in CODE_FAMILIES:
        assert results[f"executable_cf_{family}"]["exact_match,none"] == 0.0, family
        assert results[f"executable_cf_{family}_interventional"]["exact_match,none"] == 1.0, family


def test_one_latent_scores_exactly_the_singleton_share(tmp_path):
    """cf_one_latent is right exactly when the gold set has one value; samples record the benchmark version."""
    data = lm_eval("--model", "cf_one_latent", "--tasks", "executable_cf_counterfactual", "--limit", "30",
                   "--log_samples", cwd=tmp_path)
    for family in CODE_FAMILIES:
        files = glob.glob(str(tmp_path / "out" / "**" / f"samples_executable_cf_{family}_2*.jsonl"), recursive=True)
        rows = [json.loads(line) for line in open(files[0])]
        assert len(rows) == 30
        singletons = sum(len(json.loads(r["doc"]["answer"])) == 1 for r in rows) / len(rows)
        assert data["results"][f"executable_cf_{family}"]["exact_match,none"] == pytest.approx(singletons)
        assert 0 < singletons < 1
        version = json.loads(rows[0]["doc"]["benchmark_version"])
        assert version["family"] == family and version["prompt_version"] == "2" and version["package"]


def test_echo_is_registered_with_a_stable_name():
    code = textwrap.dedent("""
        from lm_eval.api.registry import get_model
        lm = get_model("cf_echo").create_from_arg_string("")
        print(type(lm).__name__, lm.model_name, get_model("cf_one_latent")().model_name)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120)
    assert proc.stdout.split() == ["EchoLM", "cf_echo", "cf_one_latent"], proc.stderr[-2000:]


def test_include_path_yaml_with_other_knobs(tmp_path):
    """Adding a task is adding a YAML: one in a temporary folder, other knobs, picked up by --include_path."""
    tasks = tmp_path / "my_tasks"
    tasks.mkdir()
    (tasks / "my_cf.yaml").write_text(textwrap.dedent("""
        task: my_cf_while_hard
        custom_dataset: !function cf_tasks.lmeval.dataset.load_family
        test_split: test
        output_type: generate_until
        doc_to_text: "{{prompt}}"
        doc_to_target: "{{target}}"
        generation_kwargs: {until: [], max_gen_toks: 64}
        process_results: !function cf_tasks.lmeval.scoring.process_results
        metric_list:
          - {metric: exact_match, aggregation: mean, higher_is_better: true}
          - {metric: f1, aggregation: mean, higher_is_better: true}
        metadata: {version: 1.0, family: while, variant: counterfactual, level: hard, n: 7, seed: 3}
    """))
    data = lm_eval("--model", "cf_oracle", "--tasks", "my_cf_while_hard", "--include_path", str(tasks),
                   "--log_samples", cwd=tmp_path)
    assert data["results"]["my_cf_while_hard"]["exact_match,none"] == 1.0
    assert data["n-samples"]["my_cf_while_hard"]["effective"] == 7
    samples = [json.loads(l) for f in glob.glob(str(tmp_path / "out" / "**" / "samples_my_cf*.jsonl"),
                                                 recursive=True) for l in open(f)]
    assert len(samples) == 7
    assert {s["doc"]["level"] for s in samples} == {"hard"}
    assert {s["doc"]["seed"] for s in samples} == {3}


def test_metadata_flag_overrides_yaml_knobs(tmp_path):
    data = lm_eval("--model", "cf_oracle", "--tasks", "executable_cf_if_else", "--metadata",
                   '{"n": 5, "level": "easy"}', cwd=tmp_path)
    assert data["n-samples"]["executable_cf_if_else"]["effective"] == 5


def test_hf_model_chat_template_log_samples(tmp_path, tiny_lm_dir):
    data = lm_eval("--model", "hf", "--model_args", f"pretrained={tiny_lm_dir},dtype=float32", "--device", "cpu",
                   "--tasks", "executable_cf_if_else", "--limit", "2", "--apply_chat_template", "--log_samples",
                   "--gen_kwargs", "max_gen_toks=8", "--batch_size", "2", cwd=tmp_path)
    metrics = data["results"]["executable_cf_if_else"]
    assert 0.0 <= metrics["exact_match,none"] <= 1.0 and "f1,none" in metrics
    samples = glob.glob(str(tmp_path / "out" / "**" / "samples_executable_cf_if_else_*.jsonl"), recursive=True)
    rows = [json.loads(l) for l in open(samples[0])]
    assert len(rows) == 2
    assert "<|user|>" in rows[0]["arguments"]["gen_args_0"]["arg_0"]  # the chat template was applied
    assert rows[0]["doc"]["family"] == "if_else" and rows[0]["target"].startswith("\\boxed{")


def test_task_manager_sees_tasks_without_include_path():
    code = textwrap.dedent("""
        from lm_eval.tasks import TaskManager
        tm = TaskManager(include_defaults=False)
        names = set(tm.all_tasks)
        print(all(n in names for n in ["executable_cf", "executable_cf_code", "executable_cf_counterfactual",
                                       "executable_cf_interventional", "executable_cf_if_else_interventional"]))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120)
    assert proc.stdout.strip() == "True", proc.stderr[-2000:]


def test_hook_failure_never_breaks_start_up_or_lm_eval(tmp_path):
    """A broken metadata backend inside the hook leaves lm-eval usable (just without our tasks)."""
    code = textwrap.dedent("""
        import plugins.lmeval_hook as hook
        def boom():
            raise RuntimeError("broken metadata")
        hook.plugin_task_paths = boom
        from lm_eval.tasks import TaskManager
        tm = TaskManager(include_defaults=False, include_path=[])
        print("ok", "executable_cf" in tm.all_tasks)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=ENV, timeout=120)
    assert proc.stdout.strip() == "ok False", proc.stderr[-2000:]
    # Interpreter start-up with the hook's .pth present costs little and prints nothing.
    start = subprocess.run([sys.executable, "-c", "import sys; print(type(sys.meta_path[0]).__name__)"],
                           capture_output=True, text=True, env=ENV, timeout=60)
    assert start.stdout.strip() == "LmEvalPluginFinder" and start.stderr == ""


def _fresh_venv_with_deps_of_this_one(root: Path) -> Path:
    """A new venv that sees this venv's third-party packages but none of its ``.pth`` start-up files.

    The dependencies (lm-eval, torch, ...) come from a plain path entry, so the
    editable install of this checkout and its hook stay invisible; only what the
    wheel installs into the new venv's own site-packages is processed at start-up.
    """
    import venv

    venv.EnvBuilder(with_pip=False).create(root)
    python = root / "bin" / "python"
    site_dir = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                   capture_output=True, text=True, check=True).stdout.strip())
    import sysconfig

    (site_dir / "zz_outer_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python


def _build_wheel(out: Path) -> Path:
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(out), str(REPO)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-3000:]
    return next(out.glob("executable_cf-*.whl"))


def test_regular_wheel_ships_hook_and_task_yamls(tmp_path):
    """``pip install .`` (a real wheel) into a fresh venv: the hook, YAMLs and models work from that copy.

    Nothing depends on the base interpreter: the venv is made here, the wheel is
    installed into its site-packages, and lm-eval runs from its interpreter.
    """
    wheel = _build_wheel(tmp_path / "wheel")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "executable_cf_lmeval.pth" in names and "executable_cf_startup.py" in names
    assert "cf_tasks/tasks/executable_cf.yaml" in names
    assert "cf_tasks/tasks/code/_code_template_yaml" in names
    assert "cf_tasks/tasks/code/executable_cf_multi_r_interventional.yaml" in names
    assert not any(n.startswith("tests/") for n in names)

    python = _fresh_venv_with_deps_of_this_one(tmp_path / "venv")
    site_dir = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              capture_output=True, text=True, check=True).stdout.strip()
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", site_dir,
                              str(wheel)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-3000:]
    code = textwrap.dedent(f"""
        import cf_tasks
        from lm_eval.tasks import TaskManager
        tm = TaskManager(include_defaults=False)
        print(cf_tasks.__file__.startswith({site_dir!r}), "executable_cf_while" in tm.all_tasks)
    """)
    proc = subprocess.run([str(python), "-c", code], capture_output=True, text=True, env=ENV, timeout=120,
                          cwd=tmp_path)
    assert proc.stdout.strip() == "True True", proc.stderr[-3000:]
    run = subprocess.run([str(python), "-m", "lm_eval", "--model", "cf_oracle", "--tasks", "executable_cf_while",
                          "--limit", "3"], capture_output=True, text=True, env=ENV, timeout=600, cwd=tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "executable_cf_while" in run.stdout and "exact_match" in run.stdout, run.stdout[-2000:]


def test_without_site_processing_the_module_entry_point_registers_everything(tmp_path):
    """A ``pip install --target`` copy on PYTHONPATH skips ``.pth`` files: ``python -m cf_tasks.lmeval`` works."""
    wheel = _build_wheel(tmp_path / "wheel")
    target = tmp_path / "target"
    install = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target),
                              str(wheel)], capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-3000:]
    python = _fresh_venv_with_deps_of_this_one(tmp_path / "venv")
    env = {**ENV, "PYTHONPATH": str(target)}
    plain = subprocess.run([str(python), "-m", "lm_eval", "--model", "cf_oracle", "--tasks", "executable_cf_while",
                            "--limit", "2"], capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)
    assert plain.returncode != 0  # the hook never ran: lm-eval knows neither the model nor the task
    hooked = subprocess.run([str(python), "-m", "cf_tasks.lmeval", "--model", "cf_oracle", "--tasks",
                             "executable_cf_while", "--limit", "2"], capture_output=True, text=True, env=env,
                            timeout=600, cwd=tmp_path)
    assert hooked.returncode == 0, hooked.stderr[-3000:]
    assert "executable_cf_while" in hooked.stdout, hooked.stdout[-2000:]


def test_shipped_task_yamls_use_the_default_knobs():
    """Training decontaminates against TASK_DEFAULTS: the shipped YAMLs must generate with exactly those."""
    import yaml

    from cf_tasks.lmeval.dataset import TASK_DEFAULTS

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    tasks = REPO / "cf_tasks" / "tasks"
    seen = set()
    for path in tasks.rglob("*.yaml"):
        meta = (yaml.load(path.read_text(), Loader=Loader) or {}).get("metadata") or {}
        if "family" in meta:
            seen.add(meta["family"])
            assert {k: meta[k] for k in TASK_DEFAULTS} == TASK_DEFAULTS, path
    assert seen == {"if_else", "if_else_long", "while", "multi_r", "gsm"}
