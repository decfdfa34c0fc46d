"""Each quality filter fires on constructed programs and is counted exactly.

A toy family draws one of a few hand-written programs per attempt; which filter
each one must trip is known in advance, so a plain sequential replay of the
item RNGs (written here, independent of the pipeline's batching) predicts the
report's counts exactly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from cf_tasks.families.base import CodeFamily, FamilyConfig, Program
from cf_tasks.generation import FILTERS, GenerationError, generate_code_items, propose
from cf_tasks.seeding import item_rng

KINDS = {
    # kind: (body, filter it trips or None)
    "error": ("return x // (r - r)", "error"),  # ZeroDivisionError for every r
    "unbounded": ("return x * 100000 + r", "unbounded"),  # x >= 1, so |y| > max_abs_value
    "float": ("return x / 2 + r", "error"),  # non-integer output
    "ignores_r": ("return x + 0 * r", "abduction_unnecessary"),  # observation says nothing about r
    "good": ("return x + r", None),
}


@dataclass(frozen=True)
class ToyConfig(FamilyConfig):
    weights: tuple = (1, 1, 1, 1, 3)


class ToyFamily(CodeFamily):
    name = "toy_filters"
    version = "1"
    config_cls = ToyConfig
    levels = {"medium": ToyConfig()}

    def generate_program(self, rng: random.Random, config: ToyConfig) -> Program:
        kind = rng.choices(list(KINDS), weights=config.weights)[0]
        body, _ = KINDS[kind]
        return Program(source=f"def f(x, r):\n    {body}\n", display_source=f"# {kind}\n", entry_point="f",
                       inputs={"x": (1, 3)}, latents={"r": (1, 2, 3)})


def _replay(fam, config, seed, n):
    """Sequential reference: consume candidates in order, dedup on (kind, query, y)."""
    rejected = dict.fromkeys(FILTERS, 0)
    keys = set()
    for i in range(n):
        rng = item_rng(fam.name, fam.version, seed, i)
        while True:
            cand = propose(fam, rng, config)
            kind = cand.program.display_source[2:].strip()
            filt = KINDS[kind][1]
            if filt:
                rejected[filt] += 1
                continue
            y = cand.inputs["x"] + (cand.true_index + 1)
            key = (cand.program.source, tuple(cand.inputs.items()), tuple(cand.intervention.items()), y)
            if key in keys:
                rejected["duplicate"] += 1
                continue
            keys.add(key)
            break
    return rejected


def test_each_filter_is_triggered_and_counted_exactly():
    fam = ToyFamily()
    cfg = fam.config("medium")
    # x in 1..3 with one intervened value, r in 1..3: only 18 distinct good problems, so
    # 12 items force duplicates as well.
    res = generate_code_items(fam, variant="counterfactual", n=12, seed=4, config=cfg, window=5, programs_per_job=4)
    expected = _replay(fam, cfg, 4, 12)
    assert res.report["rejected"] == expected
    for name in ("error", "unbounded", "abduction_unnecessary", "duplicate"):
        assert expected[name] > 0, name
    # the guard can only fire if an observation were not a real run; it never does here
    assert res.report["rejected"]["no_consistent"] == 0
    assert res.report["attempts"] == 12 + sum(expected.values())
    for item in res.items:
        x, r = item["observed"]["inputs"]["x"], None
        assert item["program"] == "def f(x, r):\n    return x + r\n"
        r = item["observed"]["output"] - x
        assert item["answer"] == [item["intervention"]["x"] + r]
    keys = {(it["observed"]["inputs"]["x"], it["intervention"]["x"], it["observed"]["output"]) for it in res.items}
    assert len(keys) == 12  # no duplicates survived


def test_counts_do_not_depend_on_batching():
    fam = ToyFamily()
    cfg = fam.config("medium")
    a = generate_code_items(fam, variant="counterfactual", n=10, seed=8, config=cfg)
    b = generate_code_items(fam, variant="counterfactual", n=10, seed=8, config=cfg, window=1, programs_per_job=1)
    assert a.items == b.items and a.report["rejected"] == b.report["rejected"]


def test_max_attempts_gives_a_clear_error():
    fam = ToyFamily()
    cfg = ToyConfig(weights=(1, 0, 0, 0, 0), max_attempts=3)  # every program errors
    with pytest.raises(GenerationError, match="max_attempts"):
        generate_code_items(fam, variant="counterfactual", n=2, seed=0, config=cfg)
