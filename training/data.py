"""Training datasets: GRPO prompts from families or item files, SFT rows from selections or traces.

SFT rows are tokenized here with the shared joint encoder
(:mod:`selection.tokenization`, the one GRAPE scores with and BIDS takes
gradients with) and handed to TRL already tokenized (``input_ids`` +
``labels``). A row of a GRAPE/BIDS selection carries a ``formatted`` record,
the exact prompt/completion text that was scored and its format, and is trained
on exactly those tokens plus the recorded ``end`` (EOS or the chat turn's end);
other rows are formatted from ``data.chat`` (the model's chat template) or as
plain text. Truncation to ``trl.max_length`` follows TRL's
``truncation_mode``, and every row it empties or cuts is counted
(:class:`SFTTokenStats`).

GRPO rows carry ``prompt`` (text, or one user message when ``chat``), ``answer``
(the gold set as canonical JSON text, so items of different families share one
Arrow column; :func:`training.rewards.decode_gold` reads it back), ``family``
(the reward's scorer dispatch key) and ``id``. Prompt generation is
deterministic: each mix entry gets a seed derived from the run seed, its family,
level and variant, and the number of prompts per entry is a largest-remainder
split of ``n`` by weight.
"""

from __future__ import annotations

import functools
import logging
import random
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from cf_tasks.jsonl import dumps, iter_jsonl
from cf_tasks.seeding import derive_seed

from selection.tokenization import FORMATTED_FIELD, FormattedExample, chat_example, encode_example, text_example
from training.config import FamilySpec, PromptData, SFTData

logger = logging.getLogger(__name__)

# Column pairs recognised in SFT files, in order of preference (GRAPE/BIDS selections use
# instruction/response; TRL-style and collected traces use prompt/completion; Alpaca uses output).
SFT_COLUMN_PAIRS: tuple[tuple[str, str], ...] = (
    ("prompt", "completion"),
    ("instruction", "response"),
    ("instruction", "output"),
    ("question", "response"),
)


def split_counts(n: int, weights: Sequence[float]) -> list[int]:
    """Largest-remainder split of ``n`` by ``weights`` (deterministic; ties go to the earlier entry)."""
    total = float(sum(weights))
    exact = [n * w / total for w in weights]
    counts = [int(x) for x in exact]
    order = sorted(range(len(weights)), key=lambda i: (-(exact[i] - counts[i]), i))
    for i in order[: n - sum(counts)]:
        counts[i] += 1
    return counts


def generate_family_items(spec: FamilySpec, n: int, seed: int, *, executor: Any = None) -> list[dict]:
    """``n`` items of one mix entry, generated with the family plugin."""
    from plugins.registry import FAMILIES

    family = FAMILIES.get(spec.family)
    level = spec.level or getattr(family, "default_level", None)
    config = family.config(level, **spec.overrides)
    entry_seed = derive_seed("training", seed, spec.family, level, spec.variant)
    result = family.generate_items(variant=spec.variant, n=n, seed=entry_seed, config=config, level=level,
                                   executor=executor)
    items = list(result.items)
    if len(items) < n:
        logger.warning("family %s level %s produced %d of %d items (report: %s)", spec.family, level, len(items),
                       n, result.report)
    return items


def item_to_prompt_row(item: Mapping[str, Any], *, chat: bool, system_prompt: str | None,
                       where: str = "item") -> dict:
    """One GRPO row from a generated item (or an item read from JSONL)."""
    for key in ("prompt", "answer"):
        if key not in item:
            raise ValueError(f"{where}: missing field {key!r} (GRPO items need prompt and answer)")
    prompt = item["prompt"]
    if not isinstance(prompt, str):
        raise ValueError(f"{where}: field 'prompt' must be a string")
    return {
        "prompt": as_messages(prompt, system_prompt) if chat else prompt,
        "answer": dumps(item["answer"]),
        "family": str(item.get("family") or ""),
        "id": str(item.get("id", "")),
    }


def as_messages(prompt: str, system_prompt: str | None = None) -> list[dict]:
    messages = [{"role": "system", "content": system_prompt}] if system_prompt else []
    messages.append({"role": "user", "content": prompt})
    return messages


def problem_key(item: Mapping[str, Any]) -> str:
    """Identity of a problem: program and query for code items (shared by both variants), else the prompt."""
    if "program" in item:
        return dumps([item["program"], item.get("observed"), item.get("intervention")])
    return dumps(item.get("prompt"))


@functools.lru_cache(maxsize=32)
def evaluation_keys(family: str, variant: str) -> frozenset[str]:
    """Problems of the shipped evaluation task of a family (the task YAMLs' default knobs)."""
    from cf_tasks.lmeval.dataset import TASK_DEFAULTS, generate_items

    items = generate_items(family, variant, TASK_DEFAULTS["level"], TASK_DEFAULTS["n"], TASK_DEFAULTS["seed"])
    return frozenset(problem_key(item) for item in items)


def is_evaluation_problem(item: Mapping[str, Any]) -> bool:
    from plugins.registry import FAMILIES

    family = item.get("family")
    if not isinstance(family, str) or family not in FAMILIES:
        return False  # not one of our families: nothing to compare with
    return problem_key(item) in evaluation_keys(family, str(item.get("variant", "counterfactual")))


def prompt_rows(config: PromptData, *, executor: Any = None) -> list[dict]:
    """All GRPO rows of a run: the family mix, then the JSONL files, then a seeded shuffle.

    With ``decontaminate`` (the default), items that are also problems of the
    shipped evaluation tasks are dropped, so a run's own before/after evaluation
    never scores prompts it trained on.
    """
    sources: list[tuple[dict, str]] = []
    if config.families:
        counts = split_counts(config.n, [s.weight for s in config.families])
        for spec, count in zip(config.families, counts):
            if count == 0:
                continue
            for item in generate_family_items(spec, count, config.seed, executor=executor):
                sources.append((item, f"family {spec.family} item {item.get('id')}"))
    for path in config.jsonl:
        for lineno, item in iter_jsonl(path):
            sources.append((item, f"{path}:{lineno}"))
    if config.decontaminate:
        kept = [(item, where) for item, where in sources if not is_evaluation_problem(item)]
        if len(kept) < len(sources):
            logger.info("dropped %d training prompts that are also evaluation problems", len(sources) - len(kept))
        sources = kept
    rows = [item_to_prompt_row(item, chat=config.chat, system_prompt=config.system_prompt, where=where)
            for item, where in sources]
    if not rows:
        raise ValueError("no training prompts: the family mix and the JSONL files gave no items")
    if config.shuffle:
        random.Random(derive_seed("training-shuffle", config.seed)).shuffle(rows)
    return rows


def detect_columns(row: Mapping[str, Any], prompt_field: str | None, completion_field: str | None,
                   where: str) -> tuple[str, str]:
    """The prompt and completion columns of an SFT file (explicit, or the first known pair present)."""
    if prompt_field or completion_field:
        if not (prompt_field and completion_field):
            raise ValueError("data.prompt_field and data.completion_field must be given together")
        for key in (prompt_field, completion_field):
            if key not in row:
                raise ValueError(f"{where}: missing column {key!r}")
        return prompt_field, completion_field
    for pair in SFT_COLUMN_PAIRS:
        if all(k in row for k in pair):
            return pair
    known = ", ".join("/".join(p) for p in SFT_COLUMN_PAIRS)
    raise ValueError(f"{where}: no known prompt/completion columns (looked for {known}); "
                     f"columns present: {', '.join(sorted(row))}; set data.prompt_field and data.completion_field")


def _text(value: Any, column: str, where: str) -> str:
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], str):
        return value[0]  # a one-element response list (GRAPE pools keep lists of responses)
    if not isinstance(value, str):
        raise ValueError(f"{where}: column {column!r} must be a string, got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class SFTExample:
    """One SFT row as text: where it came from, and whether its format was recorded by a selector."""

    where: str
    example: FormattedExample
    recorded: bool = False


def sft_examples(config: SFTData, tokenizer: Any) -> list[SFTExample]:
    """Every SFT row as an :class:`SFTExample`: its recorded format, else ``data.chat`` / plain text."""
    out: list[SFTExample] = []
    for path in config.files:
        columns = None
        for lineno, row in iter_jsonl(path):
            where = f"{path}:{lineno}"
            if row.get(FORMATTED_FIELD) is not None:
                out.append(SFTExample(where, FormattedExample.from_record(row[FORMATTED_FIELD], where), True))
                continue
            if columns is None:
                columns = detect_columns(row, config.prompt_field, config.completion_field, where)
            p_col, c_col = columns
            if p_col not in row or c_col not in row:
                raise ValueError(f"{where}: missing column {p_col if p_col not in row else c_col!r}")
            prompt = _text(row[p_col], p_col, where)
            if p_col == "instruction" and isinstance(row.get("input"), str) and row["input"].strip():
                prompt = f"{prompt}\n\n{row['input']}"  # Alpaca-style rows keep their input
            completion = _text(row[c_col], c_col, where)
            if not completion.strip():
                raise ValueError(f"{where}: empty completion in column {c_col!r}")
            if config.chat:
                if getattr(tokenizer, "chat_template", None) is None:
                    raise ValueError(f"{where}: data.chat is true but the model's tokenizer has no chat template; "
                                     "set data.chat: false")
                out.append(SFTExample(where, chat_example(tokenizer, as_messages(prompt, config.system_prompt),
                                                          completion)))
            else:
                out.append(SFTExample(where, text_example(tokenizer, prompt, completion)))
    if not out:
        raise ValueError(f"no SFT rows in {', '.join(map(str, config.files))}")
    if config.shuffle:
        random.Random(derive_seed("sft-shuffle", config.seed)).shuffle(out)
    if config.max_rows is not None:
        out = out[: config.max_rows]
    return out


@dataclass
class SFTTokenStats:
    """What tokenization and truncation did to the SFT rows (logged, and kept in ``run_info.json``)."""

    rows: int = 0
    formatted_rows: int = 0
    dropped: int = 0
    """Rows left with no trained token by truncation (TRL would drop them silently)."""
    completion_cut: int = 0
    """Rows whose trained tokens were partly cut (with ``keep_start``: the end of the trace, its final answer)."""
    longest: int = 0
    max_length: int | None = None
    truncation_mode: str = "keep_start"
    first_dropped: str | None = None
    first_cut: str | None = None

    @property
    def kept(self) -> int:
        return self.rows - self.dropped

    def to_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("rows", "kept", "dropped", "completion_cut", "formatted_rows",
                                              "longest", "max_length", "truncation_mode")}


def tokenize_sft(examples: Sequence[SFTExample], tokenizer: Any, *, max_length: int | None,
                 truncation_mode: str = "keep_start", completion_only_loss: bool = True,
                 ) -> tuple[list[dict], SFTTokenStats]:
    """``input_ids``/``labels`` rows (prompt labels -100 unless ``completion_only_loss`` is off), truncated as TRL
    does; rows left without a trained token are dropped and counted."""
    if truncation_mode not in ("keep_start", "keep_end"):
        raise ValueError(f"trl.truncation_mode must be keep_start or keep_end, got {truncation_mode!r}")
    stats = SFTTokenStats(max_length=max_length, truncation_mode=truncation_mode)
    rows = []
    for item in examples:
        where, example = item.where, item.example
        ids = encode_example(tokenizer, example)
        input_ids = ids.input_ids
        trained = [*ids.completion_ids, *ids.end_ids]
        labels = ([-100] * len(ids.prompt_ids) if completion_only_loss else list(ids.prompt_ids)) + trained
        stats.rows += 1
        stats.formatted_rows += item.recorded
        stats.longest = max(stats.longest, len(input_ids))
        if max_length is not None and len(input_ids) > max_length:
            cut = slice(None, max_length) if truncation_mode == "keep_start" else slice(-max_length, None)
            n_before = sum(x != -100 for x in labels)
            input_ids, labels = input_ids[cut], labels[cut]
            n_after = sum(x != -100 for x in labels)
            if n_after == 0:
                stats.dropped += 1
                stats.first_dropped = stats.first_dropped or where
                continue
            if n_after < n_before:
                stats.completion_cut += 1
                stats.first_cut = stats.first_cut or where
        rows.append({"input_ids": input_ids, "labels": labels})
    return rows, stats


def sft_rows(config: SFTData, tokenizer: Any) -> list[dict]:
    """The text of every SFT row (``prompt``, ``completion``, ``format``), for inspection and tests."""
    return [item.example.to_record() for item in sft_examples(config, tokenizer)]


def to_dataset(rows: Iterable[dict]):
    """A ``datasets.Dataset`` from rows (imported lazily: datasets is heavy)."""
    from datasets import Dataset

    return Dataset.from_list(list(rows))
