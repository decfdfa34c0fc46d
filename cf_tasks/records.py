"""The program-record format: one counterfactual (or interventional) problem.

A record is what users write by hand, what ``cf-tasks solve`` fills in and
what the generators emit (generated items carry extra provenance fields).
Validation errors name the source, line and field, because records come from
user files.

Schema (JSON object, one per line)::

    id            str
    program       str   Python source defining ``entry_point``; inputs and latents
                        are keyword parameters
    entry_point   str
    latents       {name: [v, ...]} or {name: {"low": a, "high": b}} (inclusive ints)
    observed      {"inputs": {name: v}, "output": v}
    intervention  {name: v}       new values for some inputs
    variant       "counterfactual" | "interventional"
    latent_values {name: v}       interventional only: the revealed latents
    answer        [v, ...]        optional; sorted set of outputs (filled by ``solve``)

``cf-tasks solve`` adds ``prior_answer``, ``n_consistent``, ``n_assignments`` and, when the
program raised at the observed inputs for some assignments (which therefore cannot have
produced the observation and are excluded), ``n_raised``.

Outputs and answers are *answer values*: JSON scalars (int with ``|v| <= MAX_ANSWER_INT``,
finite float, str, bool, null). A program returning anything else (a list, a huge int) makes
its record an error; see :func:`answer_value_problem`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

VARIANTS = ("counterfactual", "interventional")
MAX_DOMAIN_SIZE = 100_000  # product of latent domain sizes; keeps abduction bounded
MAX_ANSWER_INT = 2**63 - 1
"""Largest magnitude of an int answer: what Arrow's int64 (and so ``datasets``) stores exactly."""
MAX_LINE_BYTES = 8 << 20
"""Longest record line read; a longer line is an error (the JSON parser's cost bound)."""
_IDENT_OK = str.isidentifier


class RecordError(ValueError):
    """A malformed (or unsolvable) program record. ``str()`` names the source, line and field."""

    def __init__(self, message: str, *, source: str = "<record>", line: int | None = None, field: str | None = None):
        self.source, self.line, self.field = source, line, field
        where = source if line is None else f"{source}:{line}"
        what = f" field {field!r}" if field else ""
        super().__init__(f"{where}:{what} {message}")


class RecordErrors(RecordError):
    """Every bad record of one file, reported together; ``errors`` holds each one."""

    MAX_SHOWN = 50

    def __init__(self, source: str, errors: list[RecordError]):
        self.errors = list(errors)
        first = self.errors[0]
        shown = "\n".join(f"  {e}" for e in self.errors[:self.MAX_SHOWN])
        more = len(self.errors) - self.MAX_SHOWN
        tail = f"\n  ... and {more} more" if more > 0 else ""
        noun = "bad record" if len(self.errors) == 1 else "bad records"
        ValueError.__init__(self, f"{len(self.errors)} {noun} in {source}:\n{shown}{tail}")
        self.source, self.line, self.field = first.source, first.line, first.field


def _is_scalar(value: Any) -> bool:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return True
    if isinstance(value, int):
        return True
    return isinstance(value, float) and math.isfinite(value)


def answer_value_problem(value: Any) -> str | None:
    """Why ``value`` cannot be an answer (``None`` if it can): only JSON scalars with a bounded int."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return None
    if isinstance(value, int):
        return None if abs(value) <= MAX_ANSWER_INT else f"an int beyond +-(2**63 - 1) ({len(str(abs(value)))} digits)"
    if isinstance(value, float):
        return None if math.isfinite(value) else f"a non-finite float ({value!r})"
    kind = {list: "a list", dict: "an object"}.get(type(value), f"a {type(value).__name__}")
    text = repr(value)
    return f"{kind} ({text if len(text) <= 60 else text[:57] + '...'})"


def sort_key(value: Any) -> tuple:
    """Total order over JSON scalars so that answer sets sort the same everywhere."""
    if isinstance(value, bool):
        return (0, int(value), "")
    if isinstance(value, (int, float)):
        return (1, value, "")
    if value is None:
        return (2, 0, "")
    return (3, 0, str(value))


def canonical_set(values) -> list:
    """Sorted, de-duplicated list (``1`` and ``1.0`` count once)."""
    out: dict[Any, Any] = {}
    for v in values:
        key = (type(v) is bool, v)
        out.setdefault(key, v)
    return sorted(out.values(), key=sort_key)


@dataclass(frozen=True)
class ProgramRecord:
    id: str
    program: str
    entry_point: str
    latents: dict[str, tuple]
    observed_inputs: dict[str, Any]
    observed_output: Any
    intervention: dict[str, Any]
    variant: str = "counterfactual"
    latent_values: dict[str, Any] | None = None
    answer: list | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    # -- derived ---------------------------------------------------------------
    @property
    def intervened_inputs(self) -> dict[str, Any]:
        """The observed inputs with the intervention applied."""
        return {**self.observed_inputs, **self.intervention}

    @property
    def domain_size(self) -> int:
        return math.prod(len(v) for v in self.latents.values())

    # -- JSON ------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        row: dict[str, Any] = dict(self.extra)
        row.update(
            id=self.id,
            program=self.program,
            entry_point=self.entry_point,
            latents={k: list(v) for k, v in self.latents.items()},
            observed={"inputs": dict(self.observed_inputs), "output": self.observed_output},
            intervention=dict(self.intervention),
            variant=self.variant,
        )
        if self.latent_values is not None:
            row["latent_values"] = dict(self.latent_values)
        if self.answer is not None:
            row["answer"] = list(self.answer)
        return row

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], *, source: str = "<record>", line: int | None = None) -> "ProgramRecord":
        def fail(fld: str, msg: str) -> RecordError:
            return RecordError(msg, source=source, line=line, field=fld)

        if not isinstance(obj, Mapping):
            raise fail("", f"expected a JSON object, got {type(obj).__name__}")
        for key in ("id", "program", "entry_point", "latents", "observed", "intervention"):
            if key not in obj:
                raise fail(key, "is required")
        rid = obj["id"]
        if not isinstance(rid, (str, int)) or isinstance(rid, bool):
            raise fail("id", "must be a string or integer")
        program = obj["program"]
        if not isinstance(program, str) or not program.strip():
            raise fail("program", "must be non-empty Python source")
        entry = obj["entry_point"]
        if not isinstance(entry, str) or not _IDENT_OK(entry):
            raise fail("entry_point", "must be a Python identifier")
        if f"def {entry}" not in program:
            raise fail("entry_point", f"no 'def {entry}' in program")
        latents = _parse_latents(obj["latents"], fail)
        observed = obj["observed"]
        if not isinstance(observed, Mapping) or "inputs" not in observed or "output" not in observed:
            raise fail("observed", 'must be {"inputs": {...}, "output": value}')
        inputs = _parse_assignment(observed["inputs"], "observed.inputs", fail)
        problem = answer_value_problem(observed["output"])
        if problem:
            raise fail("observed.output", f"must be a JSON scalar (number, string, bool or null), got {problem}")
        overlap = set(inputs) & set(latents)
        if overlap:
            raise fail("observed.inputs", f"names {sorted(overlap)} are also latents")
        intervention = _parse_assignment(obj["intervention"], "intervention", fail)
        unknown = set(intervention) - set(inputs)
        if unknown:
            raise fail("intervention", f"names {sorted(unknown)} are not observed inputs")
        if not intervention:
            raise fail("intervention", "must set at least one input")
        variant = obj.get("variant", "counterfactual")
        if variant not in VARIANTS:
            raise fail("variant", f"must be one of {', '.join(VARIANTS)}, got {variant!r}")
        latent_values = obj.get("latent_values")
        if variant == "interventional":
            if latent_values is None:
                raise fail("latent_values", "is required for interventional records")
            latent_values = _parse_assignment(latent_values, "latent_values", fail)
            if set(latent_values) != set(latents):
                raise fail("latent_values", f"must assign exactly the latents {sorted(latents)}")
            for name, value in latent_values.items():
                if value not in latents[name]:
                    raise fail(f"latent_values.{name}", f"value {value!r} is outside the latent's domain")
        elif latent_values is not None:
            raise fail("latent_values", "is only allowed for interventional records")
        answer = obj.get("answer")
        if answer is not None:
            if not isinstance(answer, list) or any(answer_value_problem(v) for v in answer):
                raise fail("answer", "must be a list of JSON scalars")
            answer = canonical_set(answer)
        known = {"id", "program", "entry_point", "latents", "observed", "intervention", "variant",
                 "latent_values", "answer"}
        extra = {k: v for k, v in obj.items() if k not in known}
        return cls(
            id=str(rid), program=program, entry_point=entry, latents=latents, observed_inputs=inputs,
            observed_output=observed["output"], intervention=intervention, variant=variant,
            latent_values=latent_values, answer=answer, extra=extra,
        )


def _parse_assignment(value: Any, fld: str, fail) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise fail(fld, "must be an object mapping names to values")
    out = {}
    for name, v in value.items():
        if not isinstance(name, str) or not _IDENT_OK(name):
            raise fail(fld, f"name {name!r} is not a Python identifier")
        if not _is_scalar(v):
            raise fail(f"{fld}.{name}", "must be a JSON scalar")
        out[name] = v
    return out


def _parse_latents(value: Any, fail) -> dict[str, tuple]:
    if not isinstance(value, Mapping) or not value:
        raise fail("latents", "must be a non-empty object mapping names to domains")
    latents: dict[str, tuple] = {}
    for name, dom in value.items():
        fld = f"latents.{name}"
        if not isinstance(name, str) or not _IDENT_OK(name):
            raise fail("latents", f"name {name!r} is not a Python identifier")
        if isinstance(dom, Mapping):
            if set(dom) != {"low", "high"}:
                raise fail(fld, 'a range must be {"low": a, "high": b}')
            lo, hi = dom["low"], dom["high"]
            if not all(isinstance(b, int) and not isinstance(b, bool) for b in (lo, hi)):
                raise fail(fld, "low and high must be integers")
            if hi < lo:
                raise fail(fld, f"high ({hi}) is below low ({lo})")
            if hi - lo + 1 > MAX_DOMAIN_SIZE:
                raise fail(fld, f"range has {hi - lo + 1} values; at most {MAX_DOMAIN_SIZE}")
            latents[name] = tuple(range(lo, hi + 1))
        elif isinstance(dom, list):
            if not dom:
                raise fail(fld, "domain must not be empty")
            if not all(_is_scalar(v) for v in dom):
                raise fail(fld, "domain values must be JSON scalars")
            latents[name] = tuple(canonical_set(dom))
        else:
            raise fail(fld, 'must be a list of values or {"low": a, "high": b}')
    size = math.prod(len(d) for d in latents.values())
    if size > MAX_DOMAIN_SIZE:
        raise fail("latents", f"joint domain has {size} assignments; at most {MAX_DOMAIN_SIZE}")
    return latents


def read_record_lines(path) -> Iterator[tuple[int, dict | RecordError]]:
    """``(line, object)`` per non-blank line, or ``(line, RecordError)`` for a line that is not a
    JSON object; reading goes on after a bad line, so one pass finds every bad line."""
    source = str(path)
    with open(path, "rb") as handle:
        lineno = 0
        while True:
            raw = handle.readline(MAX_LINE_BYTES + 1)
            if not raw:
                return
            lineno += 1
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                while raw and not raw.endswith(b"\n"):  # skip the rest of the line
                    raw = handle.readline(1 << 20)
                yield lineno, RecordError(f"line is longer than {MAX_LINE_BYTES} bytes", source=source, line=lineno)
                continue
            obj = _parse_line(raw, source, lineno)
            if obj is not None:
                yield lineno, obj


def _parse_line(raw: bytes, source: str, lineno: int) -> dict | RecordError | None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return RecordError(f"not UTF-8 text ({exc.reason})", source=source, line=lineno)
    if not text.strip():
        return None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        return RecordError(f"invalid JSON: {exc.msg} (column {exc.colno})", source=source, line=lineno)
    except (ValueError, RecursionError) as exc:  # 4300-digit ints, nesting too deep
        return RecordError(f"invalid JSON: {type(exc).__name__}: {str(exc)[:200]}", source=source, line=lineno)
    if not isinstance(obj, dict):
        return RecordError(f"expected a JSON object, got {type(obj).__name__}", source=source, line=lineno)
    return obj


def iter_records(path) -> Iterator[tuple[int, ProgramRecord | RecordError]]:
    """Validated records of a JSONL file, streamed: ``(line, record)`` or ``(line, RecordError)``
    for each bad line (malformed JSON, a field error, a duplicate id); never stops early."""
    seen: dict[str, int] = {}
    for lineno, obj in read_record_lines(path):
        if isinstance(obj, RecordError):
            yield lineno, obj
            continue
        try:
            rec = ProgramRecord.from_json(obj, source=str(path), line=lineno)
        except RecordError as exc:
            yield lineno, exc
            continue
        if rec.id in seen:
            yield lineno, RecordError(f"duplicate id {rec.id!r} (first on line {seen[rec.id]})",
                                      source=str(path), line=lineno, field="id")
            continue
        seen[rec.id] = lineno
        yield lineno, rec


def load_records(path) -> list[ProgramRecord]:
    """Read and validate a program-record JSONL file; every bad line is reported in one
    :class:`RecordErrors` (each error names file, line and field)."""
    records, errors = [], []
    for _, rec in iter_records(path):
        (errors if isinstance(rec, RecordError) else records).append(rec)
    if errors:
        raise RecordErrors(str(path), errors)
    return records
