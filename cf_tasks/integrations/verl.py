"""verl: RL parquet files in verl's data layout and the matching ``compute_score``.

verl (and any trainer that takes a parquet file plus a score function) reads
one row per prompt::

    data_source   "executable_cf_while"           the lm-eval task name; verl groups metrics by it
    prompt        [{"role": "user", "content": ...}]   chat messages (optional system message first)
    ability       "code" | "math"
    reward_model  {"style": "rule", "ground_truth": "[3, 7]"}   the gold answers as JSON text
    extra_info    {"split", "index", "id", "family", "variant", "level", "seed", "item_index", "item"}

``ground_truth`` is JSON text so that families with different answer types
share one Arrow column (the same convention as the GRPO datasets); ``item``
is the whole generated item as JSON text. :func:`compute_score` is verl's
``custom_reward_function``: it parses ``solution_str`` with our parser and
returns our metric (set exact match by default; ``reward_kwargs.metric=f1``
for set F1; exact accuracy for math), never a second scorer.

Splits: ``test.parquet`` holds the items of the lm-eval tasks for the same
knobs (default: the shipped tasks, ``n=400, seed=1234``), so verl's validation
numbers are the benchmark's; ``train.parquet`` holds items of another seed,
minus every problem (program and query, shared by both variants) that is also
in the test split or in the shipped evaluation tasks. Those drops are counted
in ``export_report.json``, and the train split is topped up to its size from
later indices of the same seed, so the output stays deterministic.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from cf_tasks.integrations import common
from cf_tasks.lmeval.dataset import TASK_DEFAULTS
from cf_tasks.progress import progress_bar

log = logging.getLogger(__name__)

TRAIN_FILE, TEST_FILE = "train.parquet", "test.parquet"
REWARD_FILE = "executable_cf_reward.py"
REPORT_FILE = "export_report.json"
REWARD_METRICS = common.SET_METRICS
MAX_TRAIN_DRAWS = 2
"""Train items drawn per requested one before the seed counts as overlapping the test split."""

_REWARD_SHIM = '''"""verl custom_reward_function of this export: executable-cf's own parser and metric.

custom_reward_function.path={path}
custom_reward_function.name=compute_score
"""
from cf_tasks.integrations.verl import compute_score  # noqa: F401
'''


@dataclass
class VerlExportConfig:
    """What ``cf-tasks export --format verl`` writes."""

    families: Sequence[str] | None = field(default=None, metadata={"help": "Families; None: every installed one."})
    variants: Sequence[str] | None = field(default=None, metadata={"help": "Variants; None: each family's all."})
    level: str | None = field(default=None, metadata={"help": "Named level; None: each family's default."})
    config: Mapping[str, Any] | None = field(default=None, metadata={"help": "Family knob overrides."})
    n_train: int = field(default=1000, metadata={"help": "Train prompts per family and variant."})
    n_test: int = field(default=TASK_DEFAULTS["n"], metadata={"help": "Test prompts per family and variant "
                                                                       "(default: the lm-eval tasks' n)."})
    seed: int = field(default=0, metadata={"help": "Seed of the train split."})
    test_seed: int = field(default=TASK_DEFAULTS["seed"], metadata={"help": "Seed of the test split "
                                                                            "(default: the lm-eval tasks' seed)."})
    system_prompt: str | None = field(default=None, metadata={"help": "Optional system message before the prompt."})
    decontaminate: bool = field(default=True, metadata={"help": "Drop train problems that are test or shipped "
                                                                 "evaluation problems."})

    def validate(self) -> None:
        for name in ("n_train", "n_test"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if self.decontaminate and self.seed == self.test_seed:
            raise ValueError(f"seed (--train-seed) and test_seed (--test-seed) are both {self.seed}: the train "
                             "split would repeat the test split")


# -- rows ------------------------------------------------------------------------------------------------------


def verl_row(item: Mapping[str, Any], *, split: str, index: int, system_prompt: str | None = None) -> dict:
    """One verl RL row of a generated item (``index``: the row's position in its split)."""
    from cf_tasks.jsonl import dumps
    from training.data import as_messages

    task = common.TaskRef(item["family"], item["variant"])
    return {
        "data_source": task.name,
        "prompt": as_messages(item["prompt"], system_prompt),
        "ability": "code" if "program" in item else "math",
        "reward_model": {"style": "rule", "ground_truth": dumps(common.gold(item))},
        "extra_info": {
            "split": split,
            "index": index,
            "id": str(item.get("id", "")),
            "family": task.family,
            "variant": task.variant,
            "level": str(item.get("level") or ""),
            "seed": int(item["seed"]),
            "item_index": int(item["index"]),
            "item": dumps(dict(item)),
        },
    }


# -- reward ----------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _families_by_source() -> dict[str, str]:
    return {task.name: task.family for task in common.task_refs()}


def _family(data_source: str, extra_info: Mapping[str, Any] | None) -> str:
    family = (extra_info or {}).get("family")
    if isinstance(family, str) and family:
        return family
    try:
        return _families_by_source()[data_source]
    except KeyError:
        raise ValueError(f"data_source {data_source!r} is not an executable-cf task and extra_info names no "
                         f"family; known data sources: {', '.join(sorted(_families_by_source()))}") from None


def compute_score(data_source: str, solution_str: str, ground_truth: Any, extra_info: Mapping[str, Any] | None = None,
                  *, metric: str = "exact_match", **_verl_kwargs: Any) -> dict[str, float]:
    """verl's ``custom_reward_function``: ``{"score": ..., "exact_match": ..., "f1": ...}`` for one response.

    ``score`` is ``metric`` (``exact_match``, the paper's reward, or ``f1``;
    verl passes ``custom_reward_function.reward_kwargs`` as keywords). The
    other keys are logged by verl as reward extras. Keywords verl adds for
    reward-model routing are accepted and ignored. The response text is only
    parsed, never evaluated.
    """
    from cf_tasks.scoring import decode_gold

    if metric not in REWARD_METRICS:
        raise ValueError(f"metric must be one of {', '.join(REWARD_METRICS)}, got {metric!r}")
    gold = decode_gold(ground_truth)
    if gold is None:
        raise ValueError(f"data_source {data_source!r}: reward_model.ground_truth is empty")
    scores = common.score(_family(data_source, extra_info), solution_str, gold)
    return {"score": scores[metric], **scores}


# -- export ----------------------------------------------------------------------------------------------------


def _selected_tasks(config: VerlExportConfig) -> list[common.TaskRef]:
    from cf_tasks.records import VARIANTS
    from plugins import FAMILIES

    tasks = []
    for name in config.families or [t.family for t in common.task_refs()]:
        family = FAMILIES.get(name)
        for variant in config.variants or family.variants:
            if variant not in VARIANTS or variant not in family.variants:
                raise ValueError(f"family {name!r} has no variant {variant!r}; variants: {', '.join(family.variants)}")
            task = common.TaskRef(name, variant)
            if task not in tasks:
                tasks.append(task)
    if not tasks:
        raise ValueError("no families to export")
    return tasks


def _evaluation_keys(family: str) -> frozenset[str]:
    """Problems of the shipped lm-eval tasks of ``family`` (all variants share programs and queries)."""
    from plugins import FAMILIES
    from training.data import evaluation_keys

    return frozenset().union(*(evaluation_keys(family, v) for v in FAMILIES.get(family).variants))


def _banned(task: common.TaskRef, test_items: Mapping[common.TaskRef, list[dict]]) -> frozenset[str]:
    """Problems the train split of ``task`` must not contain: the family's test items and shipped evaluation tasks."""
    from training.data import problem_key

    test = (problem_key(item) for other, items in test_items.items() if other.family == task.family for item in items)
    return frozenset(test) | _evaluation_keys(task.family)


def _train_items(task: common.TaskRef, config: VerlExportConfig, banned: frozenset[str]) -> tuple[list[dict], int]:
    """``n_train`` items of the train seed that are not ``banned``, and how many were dropped.

    The generator's prefix property (item ``i`` does not depend on ``n``) lets
    the split be topped up from later indices without changing earlier items.
    """
    from training.data import problem_key

    want, draw = config.n_train, config.n_train
    while True:
        items = common.generate(task, level=config.level, n=draw, seed=config.seed, config=config.config)
        kept, dropped = [], 0
        for item in items:
            if problem_key(item) in banned:
                dropped += 1
                continue
            kept.append(item)
            if len(kept) == want:
                return kept, dropped
        if draw >= MAX_TRAIN_DRAWS * want:
            raise ValueError(f"{task.name}: {dropped} of the first {draw} train items (seed {config.seed}) are test "
                             f"or evaluation problems; choose another --seed")
        draw = min(MAX_TRAIN_DRAWS * want, draw + want - len(kept))


def _write_parquet(path: Path, rows: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from cf_tasks.jsonl import atomic_write

    with atomic_write(path, "wb") as handle:
        pq.write_table(pa.Table.from_pylist(rows), handle)


def _card(config: VerlExportConfig, report: Mapping[str, Any], out: Path) -> str:
    import yaml

    front = {"configs": [{"config_name": "default", "data_files": [
        {"split": "train", "path": TRAIN_FILE}, {"split": "test", "path": TEST_FILE}]}],
        "license": "mit", "tags": ["executable-cf", "counterfactual-reasoning", "verl", "rl"]}
    return "\n".join([
        "---", yaml.safe_dump(front, sort_keys=False).rstrip(), "---",
        "# executable-cf: verl RL data", "",
        f"{report['train_rows']} train and {report['test_rows']} test prompts in verl's RL layout, written by "
        "`cf-tasks export --format verl`. Gold answers come from executing the programs; the reward is "
        "executable-cf's own metric.", "",
        "```bash",
        "python3 -m verl.trainer.main_ppo \\",
        f"    data.train_files={out / TRAIN_FILE} data.val_files={out / TEST_FILE} \\",
        f"    custom_reward_function.path={out / REWARD_FILE} custom_reward_function.name=compute_score ...",
        "```", "",
        "## Export config", "", "```yaml", yaml.safe_dump(_plain(asdict(config)), sort_keys=True).rstrip(), "```", "",
        "## Export report", "", "```yaml", yaml.safe_dump(_plain(dict(report)), sort_keys=True).rstrip(), "```", "",
    ])


def _plain(value: Any) -> Any:
    """Tuples and mappings as YAML-safe lists and dicts."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def export_verl(out_dir: str | Path, config: VerlExportConfig | None = None, *, progress: bool = False) -> dict:
    """Write ``train.parquet``, ``test.parquet``, the reward module, a card and a report; returns the report."""
    from cf_tasks.jsonl import atomic_write, write_json

    config = config or VerlExportConfig()
    config.validate()
    tasks = _selected_tasks(config)
    out = Path(out_dir).expanduser().resolve()
    bar = progress_bar(progress, total=2 * len(tasks), desc="export verl", unit="split")
    test_items: dict[common.TaskRef, list[dict]] = {}
    train_rows: list[dict] = []
    per_task: dict[str, dict] = {}
    try:
        for task in tasks:
            test_items[task] = common.generate(task, level=config.level, n=config.n_test, seed=config.test_seed,
                                               config=config.config)
            bar.update(1)
        for task in tasks:
            items, dropped = _train_items(task, config, _banned(task, test_items) if config.decontaminate
                                          else frozenset())
            train_rows += [verl_row(item, split="train", index=len(train_rows) + k, system_prompt=config.system_prompt)
                           for k, item in enumerate(items)]
            per_task[task.name] = {"train": len(items), "test": len(test_items[task]),
                                   "train_dropped_as_test_or_evaluation": dropped}
            bar.update(1)
    finally:
        bar.close()
    test_rows = [verl_row(item, split="test", index=k, system_prompt=config.system_prompt)
                 for k, item in enumerate(item for task in tasks for item in test_items[task])]
    report = {"format": "verl", "train_rows": len(train_rows), "test_rows": len(test_rows), "tasks": per_task,
              "train_dropped_as_test_or_evaluation": sum(t["train_dropped_as_test_or_evaluation"]
                                                        for t in per_task.values())}
    _write_parquet(out / TRAIN_FILE, train_rows)
    _write_parquet(out / TEST_FILE, test_rows)
    with atomic_write(out / REWARD_FILE) as handle:
        handle.write(_REWARD_SHIM.format(path=out / REWARD_FILE))
    write_json(out / REPORT_FILE, {**report, "config": _plain(asdict(config))})
    with atomic_write(out / "README.md") as handle:
        handle.write(_card(config, report, out))
    log.info("verl export: %d train, %d test rows -> %s", len(train_rows), len(test_rows), out)
    return report


def verl_config_lines(out_dir: str | Path) -> list[str]:
    """The verl overrides that train on an export (printed by the CLI, shown in docs/integrations.md)."""
    out = Path(out_dir).expanduser().resolve()
    return [f"data.train_files={out / TRAIN_FILE}", f"data.val_files={out / TEST_FILE}",
            "data.prompt_key=prompt", f"custom_reward_function.path={out / REWARD_FILE}",
            "custom_reward_function.name=compute_score"]

