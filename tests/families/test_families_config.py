"""Family configs: named levels, help metadata, validation errors that name the field."""

from __future__ import annotations

import dataclasses

import pytest

from cf_tasks.families.base import CodeFamily, FamilyConfig
from plugins.registry import FAMILIES

CODE_FAMILIES = ("if_else", "if_else_long", "while", "multi_r")


@pytest.mark.parametrize("name", CODE_FAMILIES)
def test_family_plugin_shape(name):
    fam = FAMILIES.get(name)
    assert isinstance(fam, CodeFamily) and fam.name == name and fam.version
    assert set(fam.levels) == {"easy", "medium", "hard"}
    assert fam.description
    for level, cfg in fam.levels.items():
        assert isinstance(cfg, fam.config_cls) and issubclass(fam.config_cls, FamilyConfig)
        assert dataclasses.is_dataclass(cfg)
        with pytest.raises(dataclasses.FrozenInstanceError):
            cfg.latent_high = 3  # frozen
        cfg.validate()
        assert fam.config(level) == cfg
    helps = fam.config_cls.field_help()
    assert all(helps.values()), [k for k, v in helps.items() if not v]  # every knob documented
    # levels differ in knobs, not just in name
    assert fam.levels["easy"] != fam.levels["medium"] != fam.levels["hard"]


@pytest.mark.parametrize("name", CODE_FAMILIES)
@pytest.mark.parametrize("field,value", [
    ("latent_high", 0),  # below latent_low
    ("input_high", 1),  # range too narrow
    ("modulus_prob", 1.5),
    ("modulus_low", 1),
    ("const_low", 0),
    ("preprocess_prob", -0.1),
    ("max_abs_value", 0),
    ("max_attempts", 0),
])
def test_shared_knobs_validate_naming_the_field(name, field, value):
    fam = FAMILIES.get(name)
    with pytest.raises(ValueError, match=field):
        fam.config("medium", **{field: value})


@pytest.mark.parametrize("name,field,value", [
    ("if_else", "nesting_depth", 2),  # the ID family allows at most one nesting level
    ("if_else", "nested_prob", 2.0),
    ("if_else", "max_elifs", -1),
    ("if_else", "body_statements", 0),
    ("if_else_long", "nesting_depth", 5),
    ("if_else_long", "n_blocks", 0),
    ("while", "max_iterations", 1),
    ("while", "max_iterations", 10_000),
    ("while", "n_loops", 0),
    ("while", "loop_if_prob", 3.0),
    ("multi_r", "n_latents", 0),
    ("multi_r", "n_latents", 9),
    ("multi_r", "max_iterations", 100),
    ("multi_r", "final_if_prob", -1.0),
])
def test_family_knobs_validate_naming_the_field(name, field, value):
    fam = FAMILIES.get(name)
    with pytest.raises(ValueError, match=field):
        fam.config("medium", **{field: value})


def test_unknown_level_and_field_are_named():
    fam = FAMILIES.get("while")
    with pytest.raises(ValueError, match="extreme"):
        fam.config("extreme")
    with pytest.raises(ValueError, match="loop_count"):
        fam.config("medium", loop_count=3)


def test_overrides_change_the_programs():
    fam = FAMILIES.get("multi_r")
    items = fam.generate_items(variant="counterfactual", n=3, seed=0, config=fam.config("easy", n_latents=2),
                               level="easy").items
    assert all(list(it["latents"]) == ["r1", "r2"] for it in items)
    assert all(it["config"]["n_latents"] == 2 for it in items)
