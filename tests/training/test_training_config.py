"""Run configs: YAML loading, errors naming file and field, TRL pass-through, shipped examples."""

from __future__ import annotations

from pathlib import Path

import pytest

from training.config import (ConfigError, GRPORunConfig, LoraSpec, SFTRunConfig, apply_overrides,
                             load_run_config)
from training.grpo import accumulation_for, grpo_arguments

CONFIG_DIR = Path(__file__).resolve().parents[2] / "training" / "configs"

MINIMAL = """
model: some/model
output_dir: {out}
data:
  families:
    - family: if_else
      level: easy
  n: 8
rewards: {{exact_match: 1.0, format: 0.25}}
trl:
  num_generations: 4
  per_device_train_batch_size: 4
  max_steps: 1
"""


def write(tmp_path, text, name="run.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_minimal_grpo_config_loads_with_defaults(tmp_path):
    path = write(tmp_path, MINIMAL.format(out=tmp_path / "run"))
    cfg = load_run_config(GRPORunConfig, path)
    assert cfg.data.families[0].family == "if_else" and cfg.data.families[0].weight == 1.0
    assert cfg.data.families[0].variant == "counterfactual"
    assert cfg.rewards == {"exact_match": 1.0, "format": 0.25}
    assert cfg.lora is None and cfg.evaluate.enabled is False
    args = grpo_arguments(cfg)
    assert args.reward_weights == [1.0, 0.25]
    assert args.num_generations == 4 and args.max_steps == 1
    assert args.report_to in ([], "none", ["none"])


@pytest.mark.parametrize("edit, message", [
    ("data:\n  famlies: []\n", "unknown field(s) data.famlies"),
    ("data:\n  families:\n    - {family: if_else, weight: -1}\n", "data.families[0]: weight must be positive"),
    ("data:\n  n: many\n  families: [{family: if_else}]\n", "data.n: expected int, got str"),
    ("data: {}\n", "data needs families"),
    ("trl: {num_generatons: 4}\n", "trl.num_generatons is not a field of trl.GRPOConfig (did you mean num_generations"),
    ("trl: {output_dir: x}\n", "trl.output_dir is set by our config"),
    ("lora: {r: 0}\n", "lora.r must be positive"),
    ("rewards: {}\n", "rewards must name at least one reward"),
    ("rewards: {nope: 1.0}\n", "rewards.nope: unknown reward; built-in rewards: exact_match, f1, format"),
    ("data:\n  families: [{family: if_elsee}]\n", "data.families[0]: family 'if_elsee' is not installed"),
    ("data:\n  families: [{family: while, variant: causal}]\n", "data.families[0]: variant must be one of"),
    ("resume_from_checkpoint: 3\n", "resume_from_checkpoint: expected bool or str"),
])
def test_errors_name_the_file_and_field(tmp_path, edit, message):
    base = "model: m\noutput_dir: out\ndata:\n  families: [{family: if_else}]\n"
    # later keys override earlier ones in our test text: rebuild the mapping through YAML
    import yaml

    data = yaml.safe_load(base)
    data.update(yaml.safe_load(edit))
    path = write(tmp_path, yaml.safe_dump(data))
    with pytest.raises(ConfigError) as info:
        load_run_config(GRPORunConfig, path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_missing_required_field_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="missing required field 'model'"):
        load_run_config(GRPORunConfig, write(tmp_path, "output_dir: x\ndata: {jsonl: [a]}\n"))
    bad = write(tmp_path, "model: [unclosed\n", "bad.yaml")
    with pytest.raises(ConfigError, match=r"bad\.yaml:\d+: invalid YAML"):
        load_run_config(GRPORunConfig, bad)
    with pytest.raises(ConfigError, match="cannot read config"):
        load_run_config(GRPORunConfig, tmp_path / "absent.yaml")


def test_overrides_are_dotted_and_yaml_typed(tmp_path):
    path = write(tmp_path, MINIMAL.format(out=tmp_path / "run"))
    cfg = load_run_config(GRPORunConfig, path, ["trl.max_steps=7", "data.n=3", "lora={r: 4}", "model=other"])
    assert cfg.trl["max_steps"] == 7 and cfg.data.n == 3 and cfg.model == "other"
    assert isinstance(cfg.lora, LoraSpec) and cfg.lora.r == 4 and cfg.lora.alpha == 32
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        apply_overrides({}, ["novalue"])


def test_errors_in_values_from_set_name_the_override_not_only_the_file(tmp_path):
    """The file is still named (it holds everything else), but a bad --set value is blamed on the --set."""
    path = write(tmp_path, MINIMAL.format(out=tmp_path / "run"))
    cases = {"nope=1": "unknown field(s) nope", "trl.max_stepz=1": "trl.max_stepz is not a field",
             "data.n=many": "data.n: expected"}
    for override, problem in cases.items():
        with pytest.raises(ConfigError) as err:
            load_run_config(GRPORunConfig, path, ["model=other", override])
        assert problem in str(err.value) and str(err.value).endswith(f"(set on the command line: --set {override})")
    with pytest.raises(ConfigError) as err:  # the file's own error: no --set is blamed
        load_run_config(GRPORunConfig, write(tmp_path, "model: m\n"), ["trl.max_steps=1"])
    assert "set on the command line" not in str(err.value)


def test_prompt_batch_size_sets_accumulation(tmp_path):
    assert accumulation_for(16, 24, 12, 8) == 4      # the paper's 16 x 24 on 8 GPUs
    assert accumulation_for(16, 24, 12, 1) == 32
    with pytest.raises(ConfigError, match="not a multiple"):
        accumulation_for(16, 24, 7, 1)
    path = write(tmp_path, MINIMAL.format(out=tmp_path / "run") + "prompt_batch_size: 2\n")
    args = grpo_arguments(load_run_config(GRPORunConfig, path))
    assert args.gradient_accumulation_steps == 2  # 2 prompts x 4 generations / (4 per device x 1 process)
    assert args.per_device_train_batch_size * args.gradient_accumulation_steps == 2 * args.num_generations
    path = write(tmp_path, MINIMAL.format(out=tmp_path / "run") + "prompt_batch_size: 2\n"
                 "trl: {gradient_accumulation_steps: 3}\n")
    with pytest.raises(ConfigError, match="not both"):
        grpo_arguments(load_run_config(GRPORunConfig, path))


@pytest.mark.parametrize("path", sorted(CONFIG_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_load(path):
    cls = GRPORunConfig if path.name.startswith("grpo") else SFTRunConfig
    cfg = load_run_config(cls, path)
    assert cfg.model and cfg.output_dir


def test_paper_recipe_is_16_prompts_by_24_rollouts_with_exact_match():
    cfg = load_run_config(GRPORunConfig, CONFIG_DIR / "grpo_paper_qwen2.5_7b.yaml")
    assert cfg.prompt_batch_size == 16 and cfg.trl["num_generations"] == 24
    assert cfg.rewards == {"exact_match": 1.0}
    assert cfg.model == "Qwen/Qwen2.5-7B-Instruct"
    assert [s.family for s in cfg.data.families] == ["if_else"]
    per_device = cfg.trl["per_device_train_batch_size"]
    assert accumulation_for(16, 24, per_device, 8) * per_device * 8 == 16 * 24


def test_accelerate_configs_are_yaml():
    import yaml

    files = sorted((CONFIG_DIR / "accelerate").glob("*.yaml"))
    assert len(files) >= 2
    for f in files:
        data = yaml.safe_load(f.read_text())
        assert data["num_processes"] >= 1 and data["distributed_type"] in {"MULTI_GPU", "DEEPSPEED"}
