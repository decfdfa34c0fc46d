"""Golden digests: the bytes generation produces, pinned per family, variant and level.

For every family this distribution registers (its ``setup.cfg`` entry points,
so a new family is covered as soon as it is registered), every variant and
every named level, the SHA-256
of the first :data:`N_ITEMS` items at the shipped seed is pinned together with
the family's ``version`` and the items' ``prompt_version``. The test
``tests/golden/test_golden_digests.py`` regenerates them and fails when

* a digest changed while both versions stayed the same: generation changed
  silently (bump the family's ``version``, or ``PROMPT_VERSION`` for prompt
  text, then regenerate the pins);
* a version changed but the pins were not regenerated;
* a family, variant or level has no pin (a new family: regenerate).

Regenerate the pins (it refuses to overwrite a changed digest whose versions
did not change)::

    python -m cf_tasks.golden --update              # writes tests/golden/digests.json
    python -m cf_tasks.golden                       # check only; exit status 1 on a problem
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping

N_ITEMS = 20
"""Items pinned per family x variant x level (generation has the prefix property, so they are the task's first)."""
DEFAULT_PINS = Path(__file__).resolve().parents[1] / "tests" / "golden" / "digests.json"


def family_pins(name: str, n: int = N_ITEMS, seed: int | None = None, executor=None) -> dict[str, Any]:
    """``{"version", "prompt_version", "digests": {"variant/level": sha256}}`` of one family."""
    from cf_tasks.benchmark import digest_items
    from cf_tasks.lmeval.dataset import TASK_DEFAULTS
    from plugins import FAMILIES

    family = FAMILIES.get(name)
    seed = TASK_DEFAULTS["seed"] if seed is None else seed
    digests: dict[str, str] = {}
    prompt_versions = set()
    for variant in family.variants:
        for level in family.levels:
            result = family.generate_items(variant=variant, n=n, seed=seed, config=family.config(level), level=level,
                                           executor=executor)
            digests[f"{variant}/{level}"] = digest_items(result.items)
            prompt_versions.update(str(item.get("prompt_version")) for item in result.items)
    return {"version": str(family.version), "prompt_version": ",".join(sorted(prompt_versions)),
            "digests": digests}


def shipped_families() -> list[str]:
    """Every family this distribution registers (third-party plugins pin their own)."""
    from cf_tasks.benchmark import BENCHMARK
    from plugins import FAMILIES

    return sorted(name for name, spec in FAMILIES.specs().items() if spec.distribution == BENCHMARK)


def compute_pins(families: Iterable[str] | None = None, n: int = N_ITEMS, seed: int | None = None,
                 executor=None) -> dict[str, Any]:
    from cf_tasks.lmeval.dataset import TASK_DEFAULTS

    names = sorted(shipped_families() if families is None else families)
    return {"n": n, "seed": TASK_DEFAULTS["seed"] if seed is None else seed,
            "families": {name: family_pins(name, n, seed, executor) for name in names}}


def problems(pinned: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Every disagreement between pinned and current digests, each with what to do about it."""
    out = []
    if (pinned.get("n"), pinned.get("seed")) != (current["n"], current["seed"]):
        out.append(f"pins were made with n={pinned.get('n')}, seed={pinned.get('seed')}; regenerate them")
    old_families = pinned.get("families", {})
    for name, now in current["families"].items():
        old = old_families.get(name)
        if old is None:
            out.append(f"family {name!r} has no golden pins: run `python -m cf_tasks.golden --update`")
            continue
        same_versions = (old.get("version"), old.get("prompt_version")) == (now["version"], now["prompt_version"])
        changed = sorted(k for k in set(now["digests"]) | set(old.get("digests", {}))
                         if old.get("digests", {}).get(k) != now["digests"].get(k))
        if not changed and same_versions:
            continue
        if not same_versions:
            out.append(f"family {name!r}: version {old.get('version')}/prompt {old.get('prompt_version')} was pinned, "
                       f"now {now['version']}/prompt {now['prompt_version']}: run `python -m cf_tasks.golden --update`")
        else:
            out.append(f"family {name!r}: generation changed ({', '.join(changed)}) without a version bump: bump "
                       f"the family's `version` (or PROMPT_VERSION for prompt text), then run "
                       "`python -m cf_tasks.golden --update`")
    return out


def silent_changes(pinned: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Families whose digests changed while their versions did not (what ``--update`` refuses to pin)."""
    out = []
    for name, now in current["families"].items():
        old = pinned.get("families", {}).get(name)
        if old is None or (old.get("version"), old.get("prompt_version")) != (now["version"], now["prompt_version"]):
            continue
        if any(old.get("digests", {}).get(k) not in (None, v) for k, v in now["digests"].items()):
            out.append(name)
    return out


def load_pins(path: str | Path = DEFAULT_PINS) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cf_tasks.golden", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pins", default=str(DEFAULT_PINS), help="the pins file (default: tests/golden/digests.json)")
    parser.add_argument("--update", action="store_true", help="write the current digests")
    parser.add_argument("--force", action="store_true", help="with --update: also pin changes without a version bump")
    args = parser.parse_args(argv)
    from cf_tasks.jsonl import write_json

    pinned = load_pins(args.pins)
    current = compute_pins()
    if args.update:
        silent = silent_changes(pinned, current)
        if silent and not args.force:
            print(f"refusing to pin: {', '.join(silent)} changed without a version bump; bump the family's version "
                  "(or PROMPT_VERSION), or pass --force", file=sys.stderr)
            return 1
        write_json(args.pins, current)
        print(f"wrote golden digests of {len(current['families'])} families to {args.pins}")
        return 0
    found = problems(pinned, current)
    for line in found:
        print(line, file=sys.stderr)
    if not found:
        print(f"golden digests match for {len(current['families'])} families")
    return 1 if found else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
