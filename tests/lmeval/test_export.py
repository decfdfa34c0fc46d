"""The frozen release: ``cf-tasks export`` round-trips through ``datasets.load_dataset`` and through lm-eval."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest

from cf_tasks.benchmark import SHIPPED_N, generate_task, release_name, shipped_tasks
from cf_tasks.lmeval.docs import decode_doc

PAPER_CONFIGS = {"code-if_else-counterfactual", "code-if_else_long-counterfactual", "code-while-counterfactual",
                 "code-multi_r-counterfactual", "math-gsm-counterfactual", "code-while-interventional",
                 "code-multi_r-interventional", "math-gsm-interventional"}
N = 12


@pytest.fixture(scope="module")
def release_dir(tmp_path_factory) -> Path:
    from cf_tasks.cli import main

    out = tmp_path_factory.mktemp("release") / "executable-cf"
    assert main(["export", "-o", str(out), "--n", str(N), "--train-n", "6", "-q"]) == 0
    return out


def test_shipped_tasks_are_the_yamls_with_paper_config_names():
    from plugins import FAMILIES

    specs = shipped_tasks()
    names = [release_name(s) for s in specs]
    assert PAPER_CONFIGS <= set(names) and len(names) == len(set(names)) == 10
    assert names[0] == "code-if_else-counterfactual" and names[-1] == "math-gsm-interventional"
    for spec in specs:
        assert spec.n == SHIPPED_N and spec.level == "medium" and spec.seed == 1234
        assert spec.family_version == FAMILIES.get(spec.family).version, spec.path


def test_every_config_loads_with_load_dataset_and_equals_generation(release_dir):
    import datasets

    manifest = json.loads((release_dir / "release.json").read_text())
    assert set(manifest["configs"]) >= PAPER_CONFIGS
    specs = {release_name(s): s for s in shipped_tasks()}
    for name, spec in specs.items():
        ds = datasets.load_dataset(str(release_dir), name=name, split="test")
        items = [decode_doc(row) for row in ds]
        assert items == generate_task(spec, N).items, name
    train = datasets.load_dataset(str(release_dir), name="code-if_else-counterfactual-train", split="train")
    also = datasets.load_dataset(str(release_dir), name="code-if_else-counterfactual", split="train")
    assert len(train) == len(also) == 6
    test = datasets.load_dataset(str(release_dir), name="code-if_else-counterfactual", split="test")
    key = lambda row: (row["program"], json.dumps(row["observed"], sort_keys=True))  # noqa: E731
    assert not {key(r) for r in train} & {key(r) for r in test}


def test_card_states_version_digests_and_baselines(release_dir):
    card = (release_dir / "README.md").read_text()
    manifest = json.loads((release_dir / "release.json").read_text())
    version = manifest["benchmark_version"]
    assert version["families"]["while"] == "2" and version["code_prompt"] == "2" and version["package"]
    assert f"`{version['package']}`" in card
    assert "| `code-while-counterfactual` | 100.0 (100.0) |" in card  # the oracle column comes first
    base = manifest["baselines"]["code-while-counterfactual"]
    assert base["cf_oracle"]["exact_match"] == 1.0 and base["cf_no_abduction"]["exact_match"] == 0.0
    assert base["cf_echo"]["exact_match"] == 0.0
    sha = manifest["configs"]["code-while-counterfactual"]["splits"]["test"]["sha256"]
    assert sha[:16] in card and len(sha) == 64


def test_tampered_file_is_refused(release_dir, tmp_path):
    import shutil

    from cf_tasks.lmeval.dataset import TaskMetadataError, load_export

    copy = tmp_path / "copy"
    shutil.copytree(release_dir, copy)
    docs = load_export(path=str(copy), name="code-while-counterfactual")["test"]
    assert len(docs) == N and json.loads(docs[0]["benchmark_version"])["family"] == "while"
    path = copy / "code-while-counterfactual" / "test.jsonl"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-1]) + "\n")
    with pytest.raises(TaskMetadataError, match="test.jsonl.*SHA-256"):
        load_export(path=str(copy), name="code-while-counterfactual", config_source="my.yaml")
    with pytest.raises(TaskMetadataError, match="no config 'code-nope'"):
        load_export(path=str(copy), name="code-nope")


def test_more_formats_plug_into_the_registry(tmp_path):
    from cf_tasks.export import EXPORT_FORMATS, ExportFormat, Release, ReleaseSplit, export, register_format

    def write_ids(release, out):
        out.mkdir(parents=True, exist_ok=True)
        path = out / "ids.txt"
        path.write_text("\n".join(item["id"] for s in release.splits for item in s.items))
        return [path]

    fmt = register_format(ExportFormat("ids_for_test", "one id per line", write_ids))
    try:
        release = Release(version={}, splits=[ReleaseSplit("c", "test", "f", "counterfactual", "medium", 0,
                                                           [{"id": "a"}, {"id": "b"}])])
        assert export(release, tmp_path, "ids_for_test") == [tmp_path / "ids.txt"]
        assert (tmp_path / "ids.txt").read_text() == "a\nb"
        with pytest.raises(ValueError, match="already registered"):
            register_format(fmt)
        with pytest.raises(ValueError, match="unknown export format 'nope'.*hf"):
            export(release, tmp_path, "nope")
    finally:
        EXPORT_FORMATS.pop("ids_for_test")


def test_frozen_yaml_version_mismatch_is_an_error_naming_the_field():
    from cf_tasks.lmeval.dataset import TaskMetadataError, load_family

    with pytest.raises(TaskMetadataError, match=r"my\.yaml: task metadata 'family_version'.*version 1"):
        load_family(family="while", n=2, family_version="1", config_source="my.yaml")
    with pytest.raises(TaskMetadataError, match="prompt_version"):
        load_family(family="while", n=2, prompt_version="1", config_source="my.yaml")


def test_lm_eval_on_the_frozen_folder(release_dir, tmp_path):
    """A task YAML with load_export evaluates the exported data (no generation) through lm-eval."""
    import glob
    import os

    tasks = tmp_path / "frozen_tasks"
    tasks.mkdir()
    for name, process in (("code-while-counterfactual", "scoring"), ("math-gsm-counterfactual", "math_scoring")):
        metric = ("[{metric: exact_match, aggregation: mean, higher_is_better: true}]" if process == "scoring"
                  else "[{metric: acc, aggregation: mean, higher_is_better: true}]")
        (tasks / f"{name}.yaml").write_text(textwrap.dedent(f"""
            task: frozen_{name.replace('-', '_')}
            custom_dataset: !function cf_tasks.lmeval.dataset.load_export
            test_split: test
            output_type: generate_until
            doc_to_text: "{{{{prompt}}}}"
            doc_to_target: "{{{{target}}}}"
            generation_kwargs: {{until: [], max_gen_toks: 64}}
            process_results: !function cf_tasks.lmeval.{process}.process_results
            metric_list: {metric}
            metadata: {{version: 2.0, path: {str(release_dir)!r}, name: {name}}}
        """))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.run(["lm_eval", "--model", "cf_oracle", "--tasks", "frozen_code_while_counterfactual",
                           "frozen_math_gsm_counterfactual", "--include_path", str(tasks), "--output_path",
                           str(tmp_path / "out")], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads(Path(sorted(glob.glob(str(tmp_path / "out" / "**" / "results_*.json"), recursive=True))[-1])
                      .read_text())
    assert data["results"]["frozen_code_while_counterfactual"]["exact_match,none"] == 1.0
    assert data["results"]["frozen_math_gsm_counterfactual"]["acc,none"] == 1.0
    assert data["n-samples"]["frozen_code_while_counterfactual"]["effective"] == N


def test_re_export_at_the_same_path_is_not_served_from_the_datasets_cache(tmp_path):
    """``datasets`` caches a local folder's configs by their YAML; the card's digests make new data load anew."""
    import datasets

    from cf_tasks.cli import main

    out = tmp_path / "again"
    sizes = []
    for n in (2, 3):
        assert main(["export", "-o", str(out), "--n", str(n), "--train-n", "0", "--no-baselines", "-q"]) == 0
        sizes.append(len(datasets.load_dataset(str(out), name="code-while-counterfactual", split="test")))
    assert sizes == [2, 3]
