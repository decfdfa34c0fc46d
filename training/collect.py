"""Rejection sampling: keep only correct reasoning traces as SFT rows (``cf-train collect``).

The paper's SFT arm distils a teacher's traces (*Executable Counterfactuals*, ICLR 2026); whether
it filtered them is unknown, we keep a trace only when the benchmark's own
scorer says its final answer is right (set exact match by default, or set F1 at
least ``min_f1``). Two sources:

* lm-eval ``--log_samples`` files (``samples_<task>_<date>.jsonl``: ``doc``,
  ``resps``, ``filtered_resps``) -- the scalable route: run the teacher with
  ``lm_eval --model vllm ... --log_samples`` (``repeats`` for several traces per
  prompt), then collect;
* a model's generations on a family (or an item file), sampled here with
  transformers -- fine for small teachers and for tests.

Output rows: ``prompt`` (the item's user prompt, no chat template), ``completion``
(the raw response), ``answer``, ``id``, ``family``, ``level``, ``source``; a
``<out>.summary.json`` next to it gives the counts.

``answer`` comes in two formats: a list in ``data.jsonl`` item files, JSON text
in lm-eval sample documents (Arrow needs one column type across families).
Both are read, and the output always holds the decoded value (a list for the
code families).
"""

from __future__ import annotations

import glob
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from cf_tasks.jsonl import iter_jsonl, write_json, write_jsonl

from training.rewards import decode_gold, scorer_for

logger = logging.getLogger(__name__)


@dataclass
class CollectStats:
    prompts: int = 0
    responses: int = 0
    correct: int = 0
    kept: int = 0
    duplicates: int = 0
    over_cap: int = 0
    per_family: dict[str, dict[str, int]] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"prompts": self.prompts, "responses": self.responses, "correct": self.correct, "kept": self.kept,
                "duplicates_dropped": self.duplicates, "over_cap_dropped": self.over_cap,
                "accept_rate": self.correct / self.responses if self.responses else 0.0,
                "per_family": self.per_family}


@dataclass(frozen=True)
class Candidate:
    """One response to one item, before filtering."""

    prompt: str
    response: str
    doc: Mapping[str, Any]
    source: str


def is_correct(response: str, doc: Mapping[str, Any], min_f1: float | None = None) -> bool:
    """Exact match of the answer set (or F1 >= ``min_f1``), with the family's own scorer."""
    scores = scorer_for(doc.get("family"))(response, decode_gold(doc["answer"]))
    if min_f1 is None:
        return scores["exact_match"] >= 1.0
    return scores["f1"] >= min_f1


def filter_traces(candidates: Iterable[Candidate], *, min_f1: float | None = None,
                  max_per_prompt: int | None = None, stats: CollectStats | None = None) -> list[dict]:
    """The training rows of the correct, distinct candidates (at most ``max_per_prompt`` per prompt)."""
    stats = stats if stats is not None else CollectStats()
    seen: set[tuple[str, str]] = set()
    per_prompt: dict[str, int] = {}
    rows = []
    for cand in candidates:
        stats.responses += 1
        fam = str(cand.doc.get("family") or "")
        fam_stats = stats.per_family.setdefault(fam, {"responses": 0, "kept": 0})
        fam_stats["responses"] += 1
        if cand.prompt not in per_prompt:
            per_prompt[cand.prompt] = 0
            stats.prompts += 1
        if not is_correct(cand.response, cand.doc, min_f1):
            continue
        stats.correct += 1
        key = (cand.prompt, cand.response)
        if key in seen:
            stats.duplicates += 1
            continue
        if max_per_prompt is not None and per_prompt[cand.prompt] >= max_per_prompt:
            stats.over_cap += 1
            continue
        seen.add(key)
        per_prompt[cand.prompt] += 1
        stats.kept += 1
        fam_stats["kept"] += 1
        rows.append({"prompt": cand.prompt, "completion": cand.response, "answer": cand.doc["answer"],
                     "id": str(cand.doc.get("id", "")), "family": fam, "level": cand.doc.get("level"),
                     "source": cand.source})
    return rows


def with_decoded_answer(doc: Mapping[str, Any]) -> dict[str, Any]:
    """``doc`` with ``answer`` decoded from JSON text when it is (lm-eval documents), as is otherwise."""
    return {**doc, "answer": decode_gold(doc["answer"])}


def expand_paths(patterns: Iterable[str], option: str = "--samples") -> list[str]:
    """Files named or matched by glob patterns (quoted patterns reach us unexpanded); no match is an error."""
    out: list[str] = []
    for pattern in patterns:
        if Path(pattern).exists():
            out.append(pattern)
            continue
        if not any(ch in pattern for ch in "*?["):
            raise FileNotFoundError(f"{option} {pattern}: no such file")
        matches = sorted(glob.glob(pattern, recursive=True))
        if not matches:
            raise FileNotFoundError(f"{option} {pattern}: the pattern matches no file")
        out.extend(matches)
    return out


# -- source 1: lm-eval --log_samples files ---------------------------------------------------------------------


def candidates_from_samples(paths: Iterable[str | Path], *, field_name: str = "resps",
                            prompt_field: str = "prompt") -> Iterator[Candidate]:
    """Candidates from lm-eval sample logs; ``field_name`` is ``resps`` (raw) or ``filtered_resps``."""
    from cf_tasks.lmeval.docs import decode_doc, flatten_responses

    for path in paths:
        for lineno, record in iter_jsonl(path):
            where = f"{path}:{lineno}"
            doc = record.get("doc")
            if not isinstance(doc, Mapping):
                raise ValueError(f"{where}: no 'doc' object (is this an lm-eval --log_samples file?)")
            try:
                doc = decode_doc(doc)  # list fields travel as JSON text in lm-eval documents
            except ValueError as exc:
                raise ValueError(f"{where}: undecodable doc field: {exc}") from None
            if "answer" not in doc:
                raise ValueError(f"{where}: doc has no 'answer' field (not an executable_cf task?)")
            doc = with_decoded_answer(doc)
            prompt = doc.get(prompt_field)
            if not isinstance(prompt, str):
                raise ValueError(f"{where}: doc has no string field {prompt_field!r} for the prompt")
            if field_name not in record:
                raise ValueError(f"{where}: no {field_name!r} field")
            for response in flatten_responses(record[field_name]):
                yield Candidate(prompt, response, doc, f"{Path(path).name}:{lineno}")


# -- source 2: sampling a model here ---------------------------------------------------------------------------


@dataclass
class GenerationSpec:
    """Sampling settings for collecting traces from a (teacher) model with transformers."""

    samples_per_prompt: int = field(default=4, metadata={"help": "Responses sampled per prompt."})
    temperature: float = field(default=0.7, metadata={"help": "Sampling temperature (0 = greedy)."})
    top_p: float = field(default=0.95, metadata={"help": "Nucleus sampling mass."})
    max_new_tokens: int = field(default=1024, metadata={"help": "Tokens generated per response at most."})
    batch_size: int = field(default=4, metadata={"help": "Prompts per generate() call."})
    chat: bool = field(default=True, metadata={"help": "Apply the model's chat template to the prompt."})
    seed: int = field(default=0, metadata={"help": "torch seed for sampling."})

    def validate(self) -> None:
        if self.samples_per_prompt <= 0:
            raise ValueError("samples_per_prompt must be positive")
        if self.temperature < 0:
            raise ValueError("temperature must be >= 0")
        if self.temperature == 0 and self.samples_per_prompt > 1:
            raise ValueError("greedy decoding (temperature 0) gives one response per prompt; set samples_per_prompt 1")
        if self.max_new_tokens <= 0 or self.batch_size <= 0:
            raise ValueError("max_new_tokens and batch_size must be positive")


def candidates_from_model(model_path: str, items: list[dict], spec: GenerationSpec) -> Iterator[Candidate]:
    """Sample ``spec.samples_per_prompt`` responses per item from a transformers causal LM."""
    import torch
    from tqdm.auto import tqdm
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec.validate()
    tokenizer = AutoTokenizer.from_pretrained(model_path)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_path)
    model.eval()
    torch.manual_seed(spec.seed)
    source = f"model:{model_path}"
    for start in tqdm(range(0, len(items), spec.batch_size), desc="collect", unit="batch"):
        batch = items[start:start + spec.batch_size]
        if spec.chat:
            texts = [tokenizer.apply_chat_template([{"role": "user", "content": it["prompt"]}], tokenize=False,
                                                   add_generation_prompt=True) for it in batch]
        else:
            texts = [it["prompt"] for it in batch]
        enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=not spec.chat)
        enc = enc.to(model.device)
        sampling = {"do_sample": True, "temperature": spec.temperature, "top_p": spec.top_p} if spec.temperature > 0 \
            else {"do_sample": False}
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=spec.max_new_tokens, num_return_sequences=spec.samples_per_prompt,
                                 pad_token_id=tokenizer.pad_token_id, **sampling)
        texts_out = tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
        for i, text in enumerate(texts_out):
            item = batch[i // spec.samples_per_prompt]
            yield Candidate(item["prompt"], text, item, source)


def family_items(family: str, level: str | None, n: int, seed: int, variant: str = "counterfactual") -> list[dict]:
    from training.config import FamilySpec
    from training.data import generate_family_items

    return generate_family_items(FamilySpec(family=family, level=level, variant=variant), n, seed)


def item_file(path: str | Path) -> list[dict]:
    items = []
    for lineno, item in iter_jsonl(path):
        for key in ("prompt", "answer"):
            if key not in item:
                raise ValueError(f"{path}:{lineno}: missing field {key!r}")
        items.append(with_decoded_answer(item))
    return items


def write_collection(rows: list[dict], out: str | Path, stats: CollectStats) -> Path:
    out = Path(out)
    write_jsonl(out, rows)
    write_json(out.with_name(out.name + ".summary.json"), stats.to_json())
    logger.info("kept %d of %d responses (%d prompts) -> %s", stats.kept, stats.responses, stats.prompts, out)
    return out
