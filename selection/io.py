"""Candidate-pool I/O shared by the selectors (GRAPE, BIDS, ``cf-select pool``).

A *pool* is a set of instructions, each with one or more candidate responses.
Files come in two layouts, both loadable with ``datasets.load_dataset``:

- ``list``: one row per instruction, the candidates in a list column
  (default ``responses``);
- ``pair``: one row per (instruction, response) pair (default column
  ``response``), grouped by a key column or, without one, by the instruction
  itself. Rows with chat ``messages`` ending in an assistant turn are pairs
  whose response is that turn.

The instruction is either a text column (default ``instruction``) or a chat
``messages`` list (the conversation before the response). Everything else in a
row is carried through to the output untouched, so selected rows keep their
ids, answers and metadata. JSONL is read line by line here (errors name the
line); other formats (Parquet, JSON arrays) go through ``datasets``.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from cf_tasks.jsonl import dumps, iter_jsonl, write_jsonl

logger = logging.getLogger(__name__)

LAYOUTS = ("auto", "list", "pair")


@dataclass(frozen=True)
class PoolColumns:
    """Which columns hold what; every name is configurable from the command line."""

    instruction: str = "instruction"
    responses: str = "responses"
    response: str = "response"
    messages: str = "messages"
    group: str | None = None
    layout: str = "auto"

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {self.layout!r}")
        for name in ("instruction", "responses", "response", "messages"):
            if not getattr(self, name):
                raise ValueError(f"column name {name!r} must not be empty")


@dataclass
class PoolEntry:
    """One instruction with its candidates.

    ``row`` holds the instruction-level columns (the list column / response
    column removed); ``pair_rows`` (pair layout only) the full source row of each
    candidate, so a selected pair is written back exactly as it came in.
    """

    key: str
    instruction: str | list[dict[str, Any]]
    row: dict[str, Any]
    responses: list[str]
    origins: list[str]
    pair_rows: list[dict[str, Any]] | None = None
    from_messages: bool = False


@dataclass
class Pool:
    entries: list[PoolEntry]
    layout: str
    columns: PoolColumns = field(default_factory=PoolColumns)
    source: str = "<memory>"

    @property
    def n_candidates(self) -> int:
        return sum(len(e.responses) for e in self.entries)

    def flat_index(self) -> list[tuple[int, int]]:
        """``(entry, candidate)`` for every candidate, in pool order (the indices of a ``Selection``)."""
        return [(i, j) for i, e in enumerate(self.entries) for j in range(len(e.responses))]


# -- reading rows -------------------------------------------------------------------------------

def iter_rows(path: str | os.PathLike) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``(origin, row)`` where origin is ``file:line`` (JSONL) or ``file:row N`` (other formats)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"pool file not found: {path}")
    suffixes = "".join(path.suffixes[-2:]).lower()
    if suffixes.endswith((".jsonl", ".jsonl.gz")) or path.suffix.lower() == ".jsonl":
        for lineno, row in iter_jsonl(path):
            yield f"{path}:{lineno}", row
        return
    import datasets  # heavy; only for Parquet/JSON/CSV

    builder = {".parquet": "parquet", ".json": "json", ".csv": "csv"}.get(path.suffix.lower())
    if builder is None:
        raise ValueError(f"{path}: unsupported pool file type {path.suffix!r} (use .jsonl, .json, .parquet or .csv)")
    ds = datasets.load_dataset(builder, data_files=str(path), split="train")
    for i, row in enumerate(ds):
        yield f"{path}:row {i}", dict(row)


def _messages(value: Any, origin: str, column: str) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{origin}: field {column!r}: expected a non-empty list of chat messages")
    for k, m in enumerate(value):
        if not isinstance(m, dict) or not isinstance(m.get("role"), str) or not isinstance(m.get("content"), str):
            raise ValueError(f"{origin}: field {column!r}[{k}]: expected {{'role': str, 'content': str}}")
    return [{"role": m["role"], "content": m["content"]} for m in value]


def _instruction(row: dict, origin: str, cols: PoolColumns, *, pair: bool) -> tuple[Any, str | None, bool]:
    """(instruction, response-from-messages or None, came-from-messages)."""
    if cols.instruction in row and row[cols.instruction] is not None:
        value = row[cols.instruction]
        if isinstance(value, str):
            return value, None, False
        return _messages(value, origin, cols.instruction), None, True
    if cols.messages in row and row[cols.messages] is not None:
        msgs = _messages(row[cols.messages], origin, cols.messages)
        if msgs[-1]["role"] == "assistant":
            if not pair or cols.response in row:
                raise ValueError(
                    f"{origin}: field {cols.messages!r}: ends with an assistant turn; in the list layout the "
                    "messages must stop before the response"
                )
            if len(msgs) < 2:
                raise ValueError(f"{origin}: field {cols.messages!r}: no turn before the assistant response")
            return msgs[:-1], msgs[-1]["content"], True
        return msgs, None, True
    raise ValueError(
        f"{origin}: missing instruction: neither field {cols.instruction!r} nor {cols.messages!r} is present "
        "(set --instruction-column / --messages-column)"
    )


def instruction_key(instruction: Any) -> str:
    """A stable grouping key for an instruction (text or messages)."""
    return instruction if isinstance(instruction, str) else dumps(instruction)


def detect_layout(row: dict, cols: PoolColumns) -> str:
    if cols.layout != "auto":
        return cols.layout
    if cols.responses in row:
        return "list"
    return "pair"


def build_pool(rows: Iterable[tuple[str, dict[str, Any]]], columns: PoolColumns | None = None, *,
               source: str = "<memory>", drop_empty: bool = True) -> Pool:
    """Group rows into a :class:`Pool`; validation errors name the row's origin and field."""
    cols = columns or PoolColumns()
    entries: list[PoolEntry] = []
    by_key: dict[str, PoolEntry] = {}
    layout: str | None = None
    dropped = 0
    for origin, row in rows:
        if layout is None:
            layout = detect_layout(row, cols)
        pair = layout == "pair"
        instruction, msg_response, from_messages = _instruction(row, origin, cols, pair=pair)
        if cols.group is not None:
            if cols.group not in row:
                raise ValueError(f"{origin}: missing group-key field {cols.group!r}")
            key = instruction_key(row[cols.group]) if not isinstance(row[cols.group], str) else row[cols.group]
        else:
            key = instruction_key(instruction)
        if not pair:
            responses = row.get(cols.responses)
            if not isinstance(responses, list) or not all(isinstance(r, str) for r in responses):
                raise ValueError(f"{origin}: field {cols.responses!r}: expected a list of strings")
            kept = [r for r in responses if r.strip()] if drop_empty else list(responses)
            dropped += len(responses) - len(kept)
            base = {k: v for k, v in row.items() if k != cols.responses}
            if key in by_key:
                raise ValueError(f"{origin}: instruction repeats an earlier row (key {key[:60]!r}); in the list "
                                 "layout each instruction has one row (merge them with `cf-select pool`)")
            entry = PoolEntry(key, instruction, base, kept, [origin] * len(kept), None, from_messages)
            by_key[key] = entry
            entries.append(entry)
            continue
        response = msg_response if msg_response is not None else row.get(cols.response)
        if not isinstance(response, str):
            raise ValueError(f"{origin}: field {cols.response!r}: expected a string response")
        if drop_empty and not response.strip():
            dropped += 1
            continue
        entry = by_key.get(key)
        if entry is None:
            base = {k: v for k, v in row.items() if k != cols.response}
            entry = PoolEntry(key, instruction, base, [], [], [], from_messages)
            by_key[key] = entry
            entries.append(entry)
        entry.responses.append(response)
        entry.origins.append(origin)
        assert entry.pair_rows is not None
        entry.pair_rows.append(dict(row))
    if dropped:
        logger.warning("%s: dropped %d empty response(s)", source, dropped)
    empty = [e for e in entries if not e.responses]
    if empty:
        logger.warning("%s: %d instruction(s) have no candidate response and are skipped", source, len(empty))
        entries = [e for e in entries if e.responses]
    return Pool(entries, layout or "list", cols, source)


def load_pool(path: str | os.PathLike, columns: PoolColumns | None = None, *, drop_empty: bool = True) -> Pool:
    pool = build_pool(iter_rows(path), columns, source=str(path), drop_empty=drop_empty)
    if not pool.entries:
        raise ValueError(f"{path}: the pool has no instruction with a candidate response")
    return pool


# -- writing rows -------------------------------------------------------------------------------

def candidate_row(pool: Pool, entry: PoolEntry, j: int, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The output row of candidate ``j``: the instruction's columns, ``response`` and ``extra`` fields.

    Pair layout returns the candidate's own source row; an instruction given as
    chat messages also gets ``messages`` = conversation + the assistant response,
    ready for SFT on a chat template.
    """
    if entry.pair_rows is not None:
        row = dict(entry.pair_rows[j])
    else:
        row = dict(entry.row)
    row["response"] = entry.responses[j]
    if entry.from_messages and isinstance(entry.instruction, list):
        row[pool.columns.messages] = list(entry.instruction) + [{"role": "assistant", "content": entry.responses[j]}]
    if extra:
        row.update(extra)
    return row


def list_row(entry: PoolEntry, responses: Sequence[str], responses_column: str = "responses",
             extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """An instruction row of the list layout (what ``cf-select pool`` writes)."""
    row = dict(entry.row)
    row[responses_column] = list(responses)
    if extra:
        row.update(extra)
    return row


def write_rows(path: str | os.PathLike, rows: Iterable[dict[str, Any]]) -> int:
    """Atomic JSONL (loadable with ``datasets.load_dataset("json", ...)``)."""
    return write_jsonl(path, rows)


def add_pool_arguments(parser, *, layout: bool = True) -> None:
    """The column options shared by every command that reads a pool."""
    g = parser.add_argument_group("pool columns")
    d = PoolColumns()
    g.add_argument("--instruction-column", default=d.instruction,
                   help="instruction text, or a list of chat messages (default: %(default)s)")
    g.add_argument("--responses-column", default=d.responses,
                   help="list of candidate responses, list layout (default: %(default)s)")
    g.add_argument("--response-column", default=d.response,
                   help="one candidate response per row, pair layout (default: %(default)s)")
    g.add_argument("--messages-column", default=d.messages,
                   help="chat messages used when the instruction column is absent (default: %(default)s)")
    g.add_argument("--group-column", default=None,
                   help="pair layout: column grouping rows of one instruction (default: the instruction itself)")
    if layout:
        g.add_argument("--layout", choices=LAYOUTS, default="auto",
                       help="list: one row per instruction; pair: one row per response; auto: list when the "
                            "responses column exists (default: %(default)s)")


def columns_from_args(args) -> PoolColumns:
    return PoolColumns(
        instruction=args.instruction_column, responses=args.responses_column, response=args.response_column,
        messages=args.messages_column, group=args.group_column, layout=getattr(args, "layout", "auto"),
    )


# -- model paths ----------------------------------------------------------------------------------

_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")
_TRUE = ("1", "true", "yes", "on")


def _hub_offline() -> bool:
    return any(os.environ.get(k, "").strip().lower() in _TRUE for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def check_model_path(model: str, *, what: str = "model") -> None:
    """Fail before any other work with "model path not found: P" when ``model`` is a missing local folder.

    Why: transformers treats every name that is not an existing directory as a
    hub repo id, so a mistyped local path surfaces minutes later as a confusing
    hub error. A name counts as local when it is absolute, starts with ``.`` or
    ``~``, has more than one ``/``, a backslash, or a first component that is an
    existing folder (``runs/tiny-lm`` with a ``runs/`` here); anything else is a
    possible hub id, which in offline mode (``HF_HUB_OFFLINE``) must be in the
    local hub cache.
    """
    path = Path(model).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ValueError(f"{what} path is a file, not a model directory: {model}")
        return
    first = model.split("/", 1)[0]
    looks_local = (model.startswith(("/", ".", "~")) or "\\" in model or model.count("/") > 1
                   or model.endswith("/") or ("/" in model and Path(first).expanduser().is_dir()))
    if looks_local or not _HUB_ID.fullmatch(model):
        raise ValueError(f"{what} path not found: {model}")
    if _hub_offline():
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(model, "config.json"), str):
            raise ValueError(f"{what} path not found: {model} (no such local directory, and as a hub id it is not "
                             "in the local cache while HF_HUB_OFFLINE is set)")
