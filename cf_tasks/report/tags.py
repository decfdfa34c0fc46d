"""Cheap failure-mode tags from the response text, without a judge.

The paper names three failure modes of counterfactual reasoning traces
(brute-force enumeration of the latent domain, an arbitrary latent value
assumed, over-complication) and the headline error of answering the
*interventional* question (ignoring the observation). A judge is expensive
and noisy; these tags are deterministic regular-expression and set checks
that run over thousands of samples in seconds. They are heuristics: read the
tag rates as trends across models, and use the judge or read traces for
individual verdicts. Each tag records its evidence so a reader can check it.

Tags (all computed by :func:`tag_sample`):

``interventional_answer``
    Counterfactual item; the parsed answer equals the doc's ``prior_answer``
    (the outputs over the whole latent domain, ignoring the observation) while
    the gold answer differs. Exact, not heuristic.
``brute_force``
    The response assigns at least ``brute_force_min_values`` distinct values
    to one latent (``r = 3``, ``if r is 4``, ``r == 5`` ...) and more than
    ``n_consistent + brute_force_excess`` of them, i.e. it walked the domain
    instead of narrowing it by abduction.
``arbitrary_assumption``
    The response assumes a latent value ("let's assume r = 5", "suppose r is
    3", "for simplicity, take r = 2"), or, on an item where several latent
    values fit the observation, commits to one latent value and answers a
    single value where the gold set has several.
``over_complication``
    At least ``overcomplication_min_markers`` case-split or backtracking
    markers ("Case 3", "wait", "let me re-check", "on second thought" ...),
    or a response ``overcomplication_length_factor`` times longer than the
    median of its (run, family, variant) with some such markers.
``no_answer``
    No parseable final answer.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from statistics import median
from typing import Any, Iterable, Mapping, Sequence

TAGS = ("interventional_answer", "brute_force", "arbitrary_assumption", "over_complication", "no_answer")
_NUM = r"-?\d+(?:\.\d+)?"
_ASSIGN = r"\s*(?:=|==|:|\bis\b|\bwas\b|\bequals?\b|\bbe\b)\s*"
_CASE_RE = re.compile(r"\b(?:sub-?)?case\s*(?:\d+|[a-h]\b|[ivx]+\b)", re.I)
_BACKTRACK_RE = re.compile(
    r"\bwait\b|\bhmm+\b|\bon second thought\b|\bre-?(?:check|consider|examine|evaluate|think|visit|compute)\w*"
    r"|\blet me (?:start over|double[- ]check|go back|try again)|\bgoing back\b|\bI made (?:a|an) (?:mistake|error)"
    r"|\bactually,",
    re.I,
)
_ASSUME_VERBS = r"(?:assum\w*|suppos\w*|let'?s say|let us say|say|pick\w*|choos\w*|take|guess\w*|set)"
_GENERIC_ASSUME_RE = re.compile(
    r"\b(?:for (?:simplicity|example|instance|the sake of \w+)|arbitrar\w*|without loss of generality)\b", re.I
)


@dataclass(frozen=True)
class TagConfig:
    """Thresholds of the heuristic tags."""

    brute_force_min_values: int = field(
        default=5, metadata={"help": "distinct values of one latent a response must try to count as brute force"}
    )
    brute_force_excess: int = field(
        default=2, metadata={"help": "tried values must exceed n_consistent by more than this"}
    )
    overcomplication_min_markers: int = field(
        default=6, metadata={"help": "case-split/backtracking markers that alone mark over-complication"}
    )
    overcomplication_length_factor: float = field(
        default=3.0, metadata={"help": "length vs the group median that, with 2+ markers, marks over-complication"}
    )
    min_group_for_length: int = field(
        default=5, metadata={"help": "smallest (run, family, variant) group whose median length is trusted"}
    )

    def __post_init__(self) -> None:
        if self.brute_force_min_values < 2:
            raise ValueError("brute_force_min_values: must be >= 2")
        if self.brute_force_excess < 0:
            raise ValueError("brute_force_excess: must be >= 0")
        if self.overcomplication_min_markers < 1:
            raise ValueError("overcomplication_min_markers: must be >= 1")
        if self.overcomplication_length_factor <= 1:
            raise ValueError("overcomplication_length_factor: must be > 1")
        if self.min_group_for_length < 1:
            raise ValueError("min_group_for_length: must be >= 1")


@dataclass(frozen=True)
class TagResult:
    tags: tuple[str, ...]
    evidence: dict[str, str]
    parsed_answer: list | None


def _latent_names(doc: Mapping[str, Any]) -> list[str]:
    latents = doc.get("latents")
    if isinstance(latents, Mapping):
        return sorted(str(k) for k in latents)
    return []


def _domain(doc: Mapping[str, Any], name: str) -> set[float] | None:
    spec = (doc.get("latents") or {}).get(name)
    if isinstance(spec, list):
        try:
            return {float(v) for v in spec}
        except (TypeError, ValueError):
            return None
    if isinstance(spec, Mapping) and "low" in spec and "high" in spec:
        try:
            lo, hi = int(spec["low"]), int(spec["high"])
        except (TypeError, ValueError):
            return None
        if hi - lo <= 100_000:
            return {float(v) for v in range(lo, hi + 1)}
    return None


def latent_values_mentioned(text: str, doc: Mapping[str, Any]) -> dict[str, list[str]]:
    """Distinct values each latent is given in the text (restricted to its domain when known)."""
    out: dict[str, list[str]] = {}
    for name in _latent_names(doc):
        pattern = re.compile(rf"(?<![\w.]){re.escape(name)}{_ASSIGN}({_NUM})(?![\d.]*\w)")
        domain = _domain(doc, name)
        seen: dict[str, None] = {}
        for match in pattern.finditer(text):
            value = match.group(1)
            if domain is not None and float(value) not in domain:
                continue
            seen.setdefault(value, None)
        out[name] = list(seen)
    return out


# Substrings every match of the assumption patterns contains: a cheap pre-check (same results).
_ASSUME_STEMS = ("assum", "suppos", "say", "pick", "choos", "take", "guess", "set")
_GENERIC_STEMS = ("simplicity", "example", "instance", "the sake of", "arbitrar", "without loss of generality")


def _assumption_evidence(text: str, doc: Mapping[str, Any]) -> str | None:
    lower = text.casefold()  # casefold, like re.I: "ſet" matches "set"
    verbs = any(stem in lower for stem in _ASSUME_STEMS)
    generic_words = any(stem in lower for stem in _GENERIC_STEMS)
    for name in _latent_names(doc) if verbs or generic_words else ():
        pattern = re.compile(
            rf"\b{_ASSUME_VERBS}\s+(?:that\s+)?(?:the\s+(?:random|latent|unknown)\s+\w+\s+)?"
            rf"(?<![\w.]){re.escape(name)}{_ASSIGN}{_NUM}",
            re.I,
        )
        match = pattern.search(text) if verbs else None
        if match:
            return match.group(0)
        generic = _GENERIC_ASSUME_RE.search(text) if generic_words else None
        if generic:
            window = text[generic.end(): generic.end() + 80]
            m2 = re.search(rf"(?<![\w.]){re.escape(name)}{_ASSIGN}{_NUM}", window)
            if m2:
                return (generic.group(0) + window[: m2.end()]).strip()
    return None


def _json_value(value: tuple) -> Any:
    kind, payload = value
    if kind == "num":
        from fractions import Fraction

        frac = Fraction(payload)
        return frac.numerator if frac.denominator == 1 else float(frac)
    if kind in ("str", "bool"):
        return payload
    if kind == "none":
        return None
    return f"<{kind}>"


def parsed_answer_json(parsed: frozenset | None) -> list | None:
    """A JSON-friendly, deterministically ordered rendering of a parsed answer set."""
    if parsed is None:
        return None
    from cf_tasks.records import canonical_set as sorted_set

    return sorted_set(_json_value(v) for v in parsed)


_NUMERIC_STR_RE = re.compile(r"^\s*-?\d+(?:\.\d+)?(?:\s*/\s*[1-9]\d*)?\s*$")


def _numeric_strings_as_numbers(values: frozenset) -> frozenset:
    """``("str", "65")`` -> ``("num", 65)``: math items store answers as text, models box bare numbers."""
    from fractions import Fraction

    out = set()
    for kind, payload in values:
        if kind == "str" and _NUMERIC_STR_RE.match(payload) and len(payload) <= 64:
            num = Fraction(payload.replace(" ", ""))
            out.add(("num", num.numerator if num.denominator == 1 else num))
        else:
            out.add((kind, payload))
    return frozenset(out)


def _canonical(values: Any) -> frozenset | None:
    from cf_tasks.answers import canonical_set
    from cf_tasks.scoring import decode_gold

    values = decode_gold(values)  # a list, or JSON text as in lm-eval documents
    if values is None:
        return None
    if not isinstance(values, (list, tuple, set, frozenset)):
        values = [values]
    return _numeric_strings_as_numbers(canonical_set(values))


def count_markers(text: str) -> int:
    """Case-split plus backtracking markers (distinct case labels count once)."""
    cases = {m.group(0).lower().replace(" ", "") for m in _CASE_RE.finditer(text)}
    return len(cases) + len(_BACKTRACK_RE.findall(text))


SCAN_CHARS = 16_384  # the heuristics read the head and the tail of a response, never megabytes


def _bounded(text: str) -> str:
    """Head and tail of a long response: the tags stay fast on hostile, megabyte-long outputs."""
    if len(text) <= 2 * SCAN_CHARS:
        return text
    return text[:SCAN_CHARS] + "\n...\n" + text[-SCAN_CHARS:]


def tag_sample(
    response: str,
    doc: Mapping[str, Any],
    config: TagConfig = TagConfig(),
    median_words: float | None = None,
) -> TagResult:
    """Tags of one response to one doc (see the module docstring for the rules)."""
    from cf_tasks.answers import parse_answer_set

    full = response if isinstance(response, str) else ""
    text = _bounded(full)
    tags: list[str] = []
    evidence: dict[str, str] = {}
    parsed = parse_answer_set(full)
    if parsed is not None:
        parsed = _numeric_strings_as_numbers(parsed)
    gold = _canonical(doc.get("answer"))
    prior = _canonical(doc.get("prior_answer"))
    variant = doc.get("variant", "counterfactual")
    n_consistent = doc.get("n_consistent")
    n_cons = int(n_consistent) if isinstance(n_consistent, (int, float)) and not isinstance(n_consistent, bool) else 1

    if parsed is None:
        tags.append("no_answer")
    elif variant == "counterfactual" and prior is not None and gold is not None and parsed == prior and gold != prior:
        tags.append("interventional_answer")
        evidence["interventional_answer"] = f"answer = prior_answer {doc.get('prior_answer')} != gold {doc.get('answer')}"

    mentioned = latent_values_mentioned(text, doc)
    for name, values in mentioned.items():
        if len(values) >= config.brute_force_min_values and len(values) > n_cons + config.brute_force_excess:
            tags.append("brute_force")
            shown = ", ".join(values[:8]) + (", ..." if len(values) > 8 else "")
            evidence["brute_force"] = f"{name} tried with {len(values)} values ({shown}); n_consistent={n_cons}"
            break

    assumption = _assumption_evidence(text, doc)
    if assumption is None and variant == "counterfactual" and n_cons > 1 and parsed is not None and gold is not None:
        if len(parsed) == 1 and len(gold) > 1 and mentioned and all(len(v) <= 1 for v in mentioned.values()) and any(mentioned.values()):
            committed = ", ".join(f"{k}={v[0]}" for k, v in mentioned.items() if v)
            assumption = f"committed to {committed} although {n_cons} latent assignments fit the observation"
    if assumption is not None:
        tags.append("arbitrary_assumption")
        evidence["arbitrary_assumption"] = assumption[:200]

    markers = count_markers(text)
    words = len(text.split())
    if len(full) > len(text):  # estimated from the scanned part, at the same words per character
        words = round(words * len(full) / len(text))
    if markers >= config.overcomplication_min_markers:
        tags.append("over_complication")
        evidence["over_complication"] = f"{markers} case-split/backtracking markers"
    elif median_words and markers >= 2 and words >= config.overcomplication_length_factor * median_words:
        tags.append("over_complication")
        evidence["over_complication"] = f"{words} words vs group median {median_words:g}, {markers} markers"

    ordered = tuple(t for t in TAGS if t in tags)
    return TagResult(ordered, evidence, parsed_answer_json(parsed))


def tag_samples(samples: Sequence[Any], config: TagConfig = TagConfig(), group_key=None) -> list[TagResult]:
    """Tag many samples; the over-complication length rule compares within ``group_key`` groups.

    ``samples`` need ``.response`` and ``.doc``; ``group_key(sample)`` defaults
    to ``(family, variant)``.
    """
    if group_key is None:
        group_key = lambda s: (s.doc.get("family"), s.doc.get("variant"))  # noqa: E731
    lengths: dict[Any, list[int]] = {}
    for s in samples:
        lengths.setdefault(group_key(s), []).append(len(s.response.split()))
    medians = {k: median(v) for k, v in lengths.items() if len(v) >= config.min_group_for_length}
    return [tag_sample(s.response, s.doc, config, medians.get(group_key(s))) for s in samples]


def tag_rates(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per (run, family, variant): how many samples and the fraction carrying each tag."""
    groups: dict[tuple, list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["run"], row["family"], row["variant"]), []).append(row)
    out = []
    for key, group in groups.items():
        counts = Counter(t for r in group for t in r.get("tags", ()))
        entry: dict[str, Any] = {"run": key[0], "family": key[1], "variant": key[2], "n": len(group)}
        for tag in TAGS:
            entry[tag] = counts[tag] / len(group)
        out.append(entry)
    return out
