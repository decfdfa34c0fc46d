"""Each quality and shortcut filter fires on constructed programs and is counted exactly.

A toy family draws one of a few hand-written programs per attempt; the test
knows what each one computes (plain Python below, not the program text), so a
sequential replay of the item RNGs written here, independent of the pipeline's
batching and of its filter code, predicts the report's counts exactly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from itertools import product

import pytest

from cf_tasks.families.base import CodeFamily, CodePipelineConfig, Program
from cf_tasks.generation import FILTERS, GenerationError, generate_code_items
from cf_tasks.seeding import config_fingerprint, item_rng

MIDRUN = object()  # a run that assigns a value above max_midrun_abs
KINDS = {
    # kind: (body, what it computes or None when every run raises)
    "error": ("return x // (r - r)", None),
    "float": ("return x / 2 + r", None),  # non-integer outputs count as errors
    "unbounded": ("return x * 100000 + r", lambda x, r: x * 100000 + r),
    "midrun": ("big = x * 100000 + r\n    return r + x", lambda x, r: MIDRUN),
    "ignores_r": ("return x + 0 * r", lambda x, r: x),  # the observation says nothing about r
    "echo": ("return r", lambda x, r: r),  # the answer is always the observed output
    "good": ("return x + r", lambda x, r: x + r),  # unique answers
    "multi": ("if x == 1:\n        return r % 2\n    return r + x", lambda x, r: r % 2 if x == 1 else r + x),
}
LATENTS = (1, 2, 3, 4)


@dataclass(frozen=True)
class ToyConfig(CodePipelineConfig):
    weights: tuple = (1, 1, 1, 1, 1, 1, 3, 2)
    max_midrun_abs: int | None = 1000
    multi_gold_prob: float = 0.25
    query_inputs: int = 3
    queries_per_program: int = 4


class ToyFamily(CodeFamily):
    name = "toy_filters"
    version = "1"
    config_cls = ToyConfig
    levels = {"medium": ToyConfig()}

    def generate_program(self, rng: random.Random, config: ToyConfig) -> Program:
        kind = rng.choices(list(KINDS), weights=config.weights)[0]
        body, _ = KINDS[kind]
        return Program(source=f"def f(x, r):\n    {body}\n", display_source=f"# {kind}\n", entry_point="f",
                       inputs={"x": (1, 3)}, latents={"r": LATENTS})


def _verdict(table, i, j, a, need, cfg):
    """The first failing filter of a query, or its gold set (written here from the filters' definitions)."""
    if MIDRUN in table[i] or MIDRUN in table[j]:
        return "midrun_bound"
    if max(map(abs, table[i] + table[j])) > cfg.max_abs_value:
        return "unbounded"
    y = table[i][a]
    consistent = [k for k, v in enumerate(table[i]) if v == y]
    if len(consistent) < cfg.min_consistent:
        return "too_few_consistent"
    gold = sorted({table[j][k] for k in consistent})
    if gold == sorted(set(table[j])):
        return "abduction_unnecessary"
    if cfg.reject_echo and gold == [y]:
        return "echo"
    if len(gold) < need:
        return "gold_too_small"
    return gold


def _replay(fam, cfg, seed, n, level="medium"):
    """Sequential reference of the documented draw order: need, program, rows, then queries."""
    rejected = dict.fromkeys(FILTERS, 0)
    keys, exhausted, gold_sets = set(), 0, []
    for i in range(n):
        rng = item_rng(fam.name, fam.version, seed, i, level=level, config=config_fingerprint(cfg))
        need = 2 if rng.random() < cfg.multi_gold_prob else 1
        for _attempt in range(cfg.max_attempts):
            program = fam.generate_program(rng, cfg)
            kind = program.display_source[2:].strip()
            rows = [row["x"] for row in fam.sample_rows(rng, program, cfg.query_inputs)]
            fn = KINDS[kind][1]
            if fn is None:
                rejected["error"] += 1
                continue
            table = [[fn(x, r) for r in LATENTS] for x in rows]
            pairs = [(a, b) for a in range(len(rows)) for b in range(len(rows)) if a != b]
            splittable = any(len({table[b][k] for k in range(len(LATENTS)) if table[a][k] == y}) >= need
                             for a, b in pairs for y in set(table[a]) if MIDRUN not in table[a] + table[b])
            if need >= 2 and not splittable:
                exhausted += 1
                continue
            accepted = None
            for _ in range(cfg.queries_per_program):
                a, b = pairs[int(rng.random() * len(pairs))]
                r_index = int(rng.random() * len(LATENTS))
                verdict = _verdict(table, a, b, r_index, need, cfg)
                if isinstance(verdict, list):
                    accepted = (rows[a], rows[b], table[a][r_index], verdict)
                    break
                rejected[verdict] += 1
            if accepted is None:
                exhausted += 1
                continue
            key = (kind, *accepted[:3])
            if key in keys:
                rejected["duplicate"] += 1
                continue
            keys.add(key)
            gold_sets.append(accepted[3])
            break
        else:
            raise RuntimeError(f"item {i}: max_attempts")
    return rejected, exhausted, gold_sets


@pytest.mark.parametrize("seed", [9, 12])
def test_each_filter_is_triggered_and_counted_exactly(seed):
    fam = ToyFamily()
    cfg = fam.config("medium")
    res = generate_code_items(fam, variant="counterfactual", n=12, seed=seed, config=cfg, level="medium", window=5,
                              programs_per_job=4)
    expected, exhausted, gold_sets = _replay(fam, cfg, seed, 12)
    assert res.report["rejected"] == expected
    assert res.report["exhausted_programs"] == exhausted
    assert [item["answer"] for item in res.items] == gold_sets
    for name in ("error", "unbounded", "midrun_bound", "abduction_unnecessary", "echo", "gold_too_small", "duplicate"):
        assert expected[name] > 0, name
    # the guard can only fire if an observation were not a real run; it never does here
    assert res.report["rejected"]["no_consistent"] == 0
    programs = 12 + expected["error"] + expected["duplicate"] + exhausted
    assert res.report["attempts"] == programs
    query_level = sum(v for k, v in expected.items() if k != "error")
    assert res.report["queries"] == 12 + query_level  # each accepted query (duplicates included) counts once
    for item in res.items:
        x, x2, y = item["observed"]["inputs"]["x"], item["intervention"]["x"], item["observed"]["output"]
        assert item["answer"] != [y] and item["answer"] != item["prior_answer"]
        if item["program"] == "def f(x, r):\n    return x + r\n":
            assert item["answer"] == [x2 + y - x]
    assert any(len(item["answer"]) == 2 for item in res.items)
    keys = {(it["program"], it["observed"]["inputs"]["x"], it["intervention"]["x"], it["observed"]["output"])
            for it in res.items}
    assert len(keys) == 12  # no duplicates survived


def test_shortcut_knobs_hold_on_every_item_and_are_counted():
    """min_consistent / min_gold_size / reject_echo on a real family: every item obeys them, rejections counted."""
    from plugins.registry import FAMILIES

    fam = FAMILIES.get("if_else")
    cfg = fam.config("medium", min_consistent=2, min_gold_size=2, reject_echo=True)
    res = generate_code_items(fam, variant="counterfactual", n=30, seed=2, config=cfg, level="medium")
    assert all(item["n_consistent"] >= 2 and len(item["answer"]) >= 2 for item in res.items)
    assert all(item["answer"] != [item["observed"]["output"]] for item in res.items)
    rejected = res.report["rejected"]
    assert rejected["too_few_consistent"] > 0 and rejected["gold_too_small"] > 0
    off = generate_code_items(fam, variant="counterfactual", n=60, seed=2, level="medium",
                              config=fam.config("medium", reject_echo=False, multi_gold_prob=0.0))
    assert off.report["rejected"]["echo"] == 0
    assert any(item["answer"] == [item["observed"]["output"]] for item in off.items)  # echo items come back


def test_multi_gold_prob_sets_the_share_of_multi_valued_items():
    from plugins.registry import FAMILIES

    fam = FAMILIES.get("while")
    share = {}
    for p in (0.0, 1.0):
        items = generate_code_items(fam, variant="counterfactual", n=40, seed=3, level="medium",
                                    config=fam.config("medium", multi_gold_prob=p)).items
        share[p] = sum(len(item["answer"]) > 1 for item in items) / len(items)
    assert share[1.0] == 1.0 and share[0.0] < 0.5


def test_counts_do_not_depend_on_batching():
    fam = ToyFamily()
    cfg = fam.config("medium")
    a = generate_code_items(fam, variant="counterfactual", n=10, seed=8, config=cfg)
    b = generate_code_items(fam, variant="counterfactual", n=10, seed=8, config=cfg, window=1, programs_per_job=1)
    assert a.items == b.items and a.report["rejected"] == b.report["rejected"]
    assert a.report["exhausted_programs"] == b.report["exhausted_programs"]


def test_a_family_with_a_plain_family_config_gets_the_pipeline_defaults():
    """Third-party families (like the demo plugin) subclass FamilyConfig only: defaults apply, no midrun check."""
    from cf_tasks.families.base import FamilyConfig

    @dataclass(frozen=True)
    class PlainConfig(FamilyConfig):
        pass

    class Plain(ToyFamily):
        name = "toy_plain"
        config_cls = PlainConfig
        levels = {"medium": PlainConfig()}

        def generate_program(self, rng, config):
            return Program(source="def f(x, r):\n    y = x * 100000\n    return (y + r) % 7\n", display_source="",
                           entry_point="f", inputs={"x": (0, 20)}, latents={"r": tuple(range(10))})

    res = generate_code_items(Plain(), variant="counterfactual", n=5, seed=0, config=PlainConfig())
    assert len(res.items) == 5 and res.report["rejected"]["midrun_bound"] == 0


def test_max_attempts_gives_a_clear_error():
    fam = ToyFamily()
    cfg = ToyConfig(weights=(1, 0, 0, 0, 0, 0, 0, 0), max_attempts=3)  # every program errors
    with pytest.raises(GenerationError, match="max_attempts"):
        generate_code_items(fam, variant="counterfactual", n=2, seed=0, config=cfg)


def test_bad_pipeline_knobs_name_the_field():
    for field_name, value in [("min_gold_size", 0), ("min_consistent", 0), ("multi_gold_prob", 1.5),
                              ("query_inputs", 1), ("queries_per_program", 0), ("max_midrun_abs", 0),
                              ("reject_echo", "yes")]:
        with pytest.raises(ValueError, match=field_name):
            ToyConfig(**{field_name: value}).validate()


def test_assignment_product_order_matches_the_latents():
    """The table's assignment order is itertools.product over the domains, as the worker enumerates it."""
    from cf_tasks.generation import propose

    fam = ToyFamily()
    cand = propose(fam, random.Random(0), fam.config("medium"), 3)
    assert cand.assignments == list(product(LATENTS))
