"""Golden digests: the shipped seed's first items of every family x variant x level are pinned.

Changing generation (programs, queries, filters, prompts, item fields) changes
a digest; the test then fails unless the family's ``version`` (or the prompt
version) was bumped *and* the pins regenerated with
``python -m cf_tasks.golden --update``, which refuses to pin a change that kept
its versions. Every registered family is covered: a family without pins fails.
"""

from __future__ import annotations

import copy

import pytest

from cf_tasks import golden


@pytest.fixture(scope="module")
def current():
    return golden.compute_pins()


def test_generation_matches_the_pinned_digests(current):
    pinned = golden.load_pins()
    assert pinned, f"no pins at {golden.DEFAULT_PINS}: run `python -m cf_tasks.golden --update`"
    assert golden.problems(pinned, current) == []
    assert set(current["families"]) >= {"if_else", "if_else_long", "while", "multi_r", "gsm"}
    for pins in current["families"].values():
        assert len(pins["digests"]) == 6  # 2 variants x 3 levels


def test_a_change_without_a_version_bump_is_caught_and_not_pinned(current):
    pinned = copy.deepcopy(current)
    pinned["families"]["while"]["digests"]["counterfactual/medium"] = "0" * 64  # as if generation changed
    found = golden.problems(pinned, current)
    assert len(found) == 1 and "'while'" in found[0] and "without a version bump" in found[0]
    assert golden.silent_changes(pinned, current) == ["while"]


def test_a_bumped_version_asks_for_new_pins_and_may_be_pinned(current):
    pinned = copy.deepcopy(current)
    pinned["families"]["if_else"]["version"] = "0"
    pinned["families"]["if_else"]["digests"]["interventional/easy"] = "0" * 64
    found = golden.problems(pinned, current)
    assert len(found) == 1 and "'if_else'" in found[0] and "--update" in found[0]
    assert golden.silent_changes(pinned, current) == []  # --update accepts it


def test_a_new_family_needs_pins(current):
    pinned = copy.deepcopy(current)
    del pinned["families"]["multi_r"]
    assert any("'multi_r' has no golden pins" in line for line in golden.problems(pinned, current))


def test_update_refuses_a_silent_change(tmp_path, current):
    from cf_tasks.jsonl import write_json

    pinned = copy.deepcopy(current)
    pinned["families"]["gsm"]["digests"]["counterfactual/easy"] = "0" * 64
    path = tmp_path / "digests.json"
    write_json(path, pinned)
    assert golden.main(["--pins", str(path), "--update"]) == 1
    assert golden.load_pins(path) == pinned  # untouched
    assert golden.main(["--pins", str(path)]) == 1
