"""``cf-select pool``: build a GRAPE candidate pool from several response sources.

Sources are pool files (either layout, see ``selection.io``) or lm-eval
``--log_samples`` outputs (``samples_<task>_<date>.jsonl``: one row per doc
and filter with ``doc``, ``arguments``, ``resps``, ``filtered_resps``, ...).
The raw generations in ``resps`` are used, not the filtered ones (a filter
may reduce a response to its extracted answer).

Responses are merged per instruction key (the ``--key-column``, default
``id``, when a row/doc has it; the instruction itself otherwise), exact
duplicates (after trimming whitespace) are dropped keeping the first
occurrence, and for executable_cf problems (rows with a ``family``) only
responses the family's scorer marks correct are kept (set exact match for code,
exact accuracy for math; :mod:`cf_tasks.scoring`), with the gold ``answer`` in
either format (a list, or JSON text as in lm-eval documents); a problem without
a usable answer is an error, never silently unverified (GRAPE selects among
verified-correct responses, as the paper does after UltraInteract's answer
filter). The first source counts as the original dataset: its number of kept
responses is written as ``n_original`` (for ``cf-select grape
--top-k-column n_original``, the paper's UltraInteract top-k_i setting).

The output is a list-layout pool (one row per instruction, ``responses`` plus
``response_sources``), written atomically.
"""

from __future__ import annotations

import argparse
import logging
import os
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from cf_tasks.lmeval.docs import decode_doc, flatten_responses
from selection.io import (PoolColumns, add_pool_arguments, build_pool, columns_from_args, instruction_key,
                          iter_rows, write_rows)

logger = logging.getLogger(__name__)

VERIFY = ("auto", "always", "never")


@dataclass
class Candidates:
    """One instruction of the merged pool."""

    key: str
    instruction: Any
    row: dict[str, Any]
    responses: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)


@dataclass
class PoolStats:
    read: dict[str, int] = field(default_factory=dict)
    duplicates: int = 0
    rejected: int = 0
    unverifiable: int = 0
    dropped_instructions: int = 0


def is_samples_row(row: dict[str, Any]) -> bool:
    return isinstance(row.get("doc"), dict) and "resps" in row


def samples_records(rows: Iterable[tuple[str, dict]], *, instruction_field: str, columns: PoolColumns,
                    key_column: str | None) -> Iterable[Candidates]:
    for origin, row in rows:
        if not is_samples_row(row):
            raise ValueError(f"{origin}: not an lm-eval sample row (needs 'doc' and 'resps')")
        try:
            doc = decode_doc(row["doc"])  # list fields travel as JSON text in lm-eval documents
        except ValueError as exc:
            raise ValueError(f"{origin}: doc {exc}") from None
        instruction = doc.get(instruction_field)
        if not isinstance(instruction, str):
            args = row.get("arguments")
            if isinstance(args, dict):  # the sanitised form written by lm-eval's EvaluationTracker
                instruction = args.get("gen_args_0", {}).get("arg_0")
            elif isinstance(args, list) and args and isinstance(args[0], list):
                instruction = args[0][0]
        if not isinstance(instruction, str):
            raise ValueError(f"{origin}: no instruction: doc field {instruction_field!r} missing and no context in "
                             "'arguments'")
        doc.setdefault(columns.instruction, instruction)
        key = str(doc[key_column]) if key_column and key_column in doc else instruction_key(instruction)
        yield Candidates(key, instruction, doc, flatten_responses(row["resps"]))


def file_records(path: str | os.PathLike, *, columns: PoolColumns, key_column: str | None,
                 instruction_field: str) -> list[Candidates]:
    rows = list(iter_rows(path))
    if rows and is_samples_row(rows[0][1]):
        return list(samples_records(rows, instruction_field=instruction_field, columns=columns,
                                    key_column=key_column))
    pool = build_pool(rows, columns, source=str(path))
    out = []
    for e in pool.entries:
        key = str(e.row[key_column]) if key_column and key_column in e.row else e.key
        out.append(Candidates(key, e.instruction, dict(e.row), list(e.responses)))
    return out


def needs_verification(row: dict[str, Any]) -> bool:
    """An executable_cf problem: it names its family (its gold ``answer`` must then be usable)."""
    return isinstance(row.get("family"), str) and bool(row["family"])


def gold_of(entry: "Candidates") -> Any:
    """The gold answer of an instruction in either format (list, or JSON text from lm-eval documents).

    An executable_cf problem whose answer is missing or unreadable is an error: verifying nothing would keep
    every response, right or wrong, without anyone noticing.
    """
    from cf_tasks.scoring import decode_gold

    raw = entry.row.get("answer")
    gold = decode_gold(raw) if raw is not None else None
    if gold is None or gold == "" or (isinstance(gold, (list, tuple)) and not gold) or isinstance(gold, dict):
        raise ValueError(f"instruction {entry.key[:60]!r} (family {entry.row.get('family')!r}) has no usable "
                         f"'answer' (got {raw!r:.80}), so its responses cannot be verified; give the gold answer "
                         "or pass --verify never to keep unverified responses")
    return gold


def merge_sources(sources: Sequence[tuple[str, Sequence[Candidates]]], *, verify: str = "auto",
                  min_responses: int = 1) -> tuple[list[Candidates], PoolStats]:
    """Merge per key in first-seen order; dedup; verify; drop instructions with too few responses."""
    if verify not in VERIFY:
        raise ValueError(f"verify must be one of {', '.join(VERIFY)}, got {verify!r}")
    stats = PoolStats()
    merged: dict[str, Candidates] = {}
    seen: dict[str, set[str]] = {}
    for name, records in sources:
        stats.read[name] = 0
        for rec in records:
            entry = merged.get(rec.key)
            if entry is None:
                entry = merged[rec.key] = Candidates(rec.key, rec.instruction, rec.row)
                seen[rec.key] = set()
            for response in rec.responses:
                stats.read[name] += 1
                norm = response.strip()
                if not norm:
                    continue
                if norm in seen[rec.key]:
                    stats.duplicates += 1
                    continue
                seen[rec.key].add(norm)
                entry.responses.append(response)
                entry.sources.append(name)
    from cf_tasks.scoring import scorer_for

    out: list[Candidates] = []
    for entry in merged.values():
        check = verify == "always" or (verify == "auto" and needs_verification(entry.row))
        if check:
            gold, score = gold_of(entry), scorer_for(entry.row.get("family"))
            keep = [score(r, gold)["exact_match"] == 1 for r in entry.responses]
            stats.rejected += keep.count(False)
            entry.responses = [r for r, k in zip(entry.responses, keep) if k]
            entry.sources = [s for s, k in zip(entry.sources, keep) if k]
        elif verify == "auto":
            stats.unverifiable += len(entry.responses)
        if len(entry.responses) < min_responses:
            stats.dropped_instructions += 1
            continue
        out.append(entry)
    return out, stats


def output_rows(entries: Iterable[Candidates], *, columns: PoolColumns, original: str | None) -> Iterable[dict]:
    for e in entries:
        row = dict(e.row)
        if columns.instruction not in row and columns.messages not in row:
            row[columns.instruction] = e.instruction
        row[columns.responses] = list(e.responses)
        row["response_sources"] = list(e.sources)
        row["n_original"] = sum(1 for s in e.sources if s == original)
        yield row


class PoolCommand:
    help = "merge candidate responses from several sources per instruction, dedup, keep verified-correct ones"

    def add_cli_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--source", action="append", required=True, metavar="FILE",
                            help="a pool file (list or pair layout) or an lm-eval samples_*.jsonl; repeat for "
                                 "several; the first counts as the original dataset (n_original)")
        parser.add_argument("-o", "--output", required=True, help="merged pool, list layout JSONL")
        parser.add_argument("--key-column", default="id",
                            help="merge key when present in a row/doc; the instruction text otherwise "
                                 "(default: %(default)s)")
        parser.add_argument("--samples-instruction-field", default="prompt",
                            help="doc field used as the instruction of lm-eval samples; falls back to the "
                                 "model context in 'arguments' (default: %(default)s)")
        parser.add_argument("--verify", choices=VERIFY, default="auto",
                            help="keep only responses our metric scores correct: auto = for executable_cf problems "
                                 "(rows with 'family' and an 'answer' list) (default: %(default)s)")
        parser.add_argument("--min-responses", type=int, default=1,
                            help="drop instructions with fewer distinct kept responses (the paper's Tulu pool "
                                 "uses 2) (default: %(default)s)")
        add_pool_arguments(parser)

    def run_cli(self, args: argparse.Namespace) -> int:
        columns = columns_from_args(args)
        if args.min_responses < 0:
            raise ValueError("--min-responses must be >= 0")
        sources = [(path, file_records(path, columns=columns, key_column=args.key_column,
                                       instruction_field=args.samples_instruction_field)) for path in args.source]
        entries, stats = merge_sources(sources, verify=args.verify, min_responses=args.min_responses)
        out_columns = PoolColumns(instruction=columns.instruction, responses=columns.responses,
                                  messages=columns.messages)
        n = write_rows(args.output, output_rows(entries, columns=out_columns, original=args.source[0]))
        logger.info("read %s; removed %d duplicate(s), %d incorrect response(s); dropped %d instruction(s); "
                    "wrote %d instruction(s), %d response(s) to %s", stats.read, stats.duplicates, stats.rejected,
                    stats.dropped_instructions, n, sum(len(e.responses) for e in entries), args.output)
        if stats.unverifiable:
            logger.warning("%d response(s) of instructions that are not executable_cf problems (no 'family') were "
                           "kept unverified; pass --verify always to require a gold answer for every instruction",
                           stats.unverifiable)
        return 0


COMMAND = PoolCommand()
