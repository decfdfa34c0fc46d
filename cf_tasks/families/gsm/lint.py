"""Text checks for rendered word problems: grammar slips, contradictions, ambiguous interventions.

Why a linter and not only hand-written tests: the story grammar multiplies
templates by slot values (0, 1, many; whole and decimal amounts) and domains, so
a slip in one template surfaces in a few percent of items only. These checks are
cheap, pure functions over the text; the tests run them over every template x
slot value and over generated items, and :func:`audit` counts them over many
generated stories (``python -m cf_tasks.families.gsm.lint``).

Each check returns a list of human-readable problems (empty: clean).
"""

from __future__ import annotations

import functools
import re
from collections import Counter
from typing import Iterable, Mapping, Sequence

SENTENCE_END = re.compile(r"(?<=[.?!])\s+(?=\S)")
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
_NUMBER = r"\d+(?:\.\d+)?"
_CURRENCY = "$€£"
# Verbs whose form shows the number of the subject (singular, plural).
_AGREEING_VERBS = {"is": "are", "was": "were", "has": "have", "breaks": "break", "leaks": "leak",
                   "needs": "need", "lays": "lay", "stays": "stay", "remains": "remain"}
_A_EXCEPTIONS = ("one", "once", "uni", "use", "usu", "eu", "ewe")  # vowel letter, consonant sound: "a one-off"
_AN_EXCEPTIONS = ("hour", "honest", "honour", "heir")  # consonant letter, vowel sound: "an hour"


def sentences(text: str) -> list[str]:
    """Sentences of a story (decimal points and currency amounts are not sentence ends)."""
    return [s for s in SENTENCE_END.split(text.strip()) if s]


def _number_needs_an(token: str) -> bool:
    """Whether a number is spoken with a vowel sound first: 8, 11, 18, 80-89, 800, 8000, 11000, 18500..."""
    match = re.match(r"\d[\d,]*", token.lstrip(_CURRENCY))
    if not match:
        return False
    digits = match.group(0).replace(",", "")
    if digits.startswith("8"):
        return True
    # "eleven", "eighteen" lead only when the leading group of 1-3 digits is 11 or 18 (11, 11,000, 18,500 ...)
    lead = digits[: len(digits) % 3 or 3]
    return lead in ("11", "18")


def _needs_an(word: str) -> bool:
    bare = word.lstrip("\"'(")
    if bare[:1] in _CURRENCY:
        return _number_needs_an(bare[1:])
    if bare[:1].isdigit():
        return _number_needs_an(bare)
    low = bare.lower()
    if low.startswith(_AN_EXCEPTIONS):
        return True
    if low.startswith(_A_EXCEPTIONS):
        return False
    return low[:1] in "aeiou"


def check_articles(text: str) -> list[str]:
    """'a'/'an' agree with the sound of the next word (numbers included: 'an 8-year-old', 'a 1-page')."""
    problems = []
    for match in re.finditer(r"\b(a|an|A|An) (\S+)", text):
        article, word = match.group(1).lower(), match.group(2)
        if (article == "an") != _needs_an(word):
            problems.append(f"article: {match.group(0)!r}")
    return problems


def check_doubled_words(text: str) -> list[str]:
    return [f"doubled word: {m.group(0)!r}" for m in re.finditer(r"\b(\w+)\s+\1\b", text, flags=re.IGNORECASE)
            if not m.group(1).isdigit()]


def _stems(word: str) -> set[str]:
    """Crude stems of a verb form ('waiting' -> wait; 'shipping' -> ship; 'baking' -> bak, bake)."""
    word = word.lower()
    out = {word}
    for suffix in ("ing", "ed", "es", "s"):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            base = word[: -len(suffix)]
            out |= {base, base + "e"}
            if len(base) >= 2 and base[-1] == base[-2]:
                out.add(base[:-1])
    return out


def check_redundancy(text: str) -> list[str]:
    """'waits for 8 minutes of waiting': an 'of <verb>ing' whose verb the sentence already used."""
    problems = []
    for sentence in sentences(text):
        words = [w.lower() for w in _WORD.findall(sentence)]
        for i, word in enumerate(words):
            if i and words[i - 1] == "of" and word.endswith("ing") and len(word) > 5:
                if _stems(word) & set().union(*(_stems(w) for w in words[: i - 1])) - {word}:
                    problems.append(f"redundant 'of {word}' in {sentence!r}")
        trigrams = Counter(zip(words, words[1:], words[2:]))
        problems += [f"repeated phrase {' '.join(t)!r} in {sentence!r}" for t, c in trigrams.items() if c > 1]
    return problems


def check_capitals(text: str) -> list[str]:
    return [f"sentence does not start with a capital letter: {s!r}" for s in sentences(text) if not s[:1].isupper()]


def check_slots(text: str) -> list[str]:
    problems = []
    for bad in ("{", "}", "None", "  ", " ,", " ."):
        if bad in text:
            problems.append(f"unfilled slot or stray spacing {bad!r} in {text!r}")
    return problems


@functools.lru_cache(maxsize=256)
def _noun_pattern(nouns: tuple[tuple[str, str], ...]) -> tuple[re.Pattern | None, dict[str, bool]]:
    """One regex for a number (or 'no'), one of the noun forms, and the next word; form -> is plural."""
    plural = {}
    for singular, plural_form in nouns:
        if singular != plural_form:
            plural[singular], plural[plural_form] = False, True
    if not plural:
        return None, plural
    forms = "|".join(re.escape(f) for f in sorted(plural, key=len, reverse=True))
    return re.compile(rf"(^|[.?!,:;] |\w )(no|{_NUMBER}) ({forms})\b(?: (\w+))?"), plural


def check_number_agreement(text: str, nouns: Iterable[tuple[str, str]]) -> list[str]:
    """'1 trays', '3 tray', '1 egg break', '3 litres of paint is': numbers agree with nouns and verbs.

    ``nouns``: (singular, plural) forms of the story's counted nouns and units.
    """
    pattern, plural = _noun_pattern(tuple(sorted({tuple(n) for n in nouns})))
    if pattern is None:
        return []
    problems = []
    for match in pattern.finditer(text):
        start, number, form, verb = match.groups()
        is_plural = plural[form]
        one = number != "no" and float(number) == 1
        if one == is_plural:  # '1 trays' or '3 tray' ('no tray' is also wrong: 'no trays')
            problems.append(f"number agreement: {match.group(0).strip()!r}")
            continue
        # the verb agrees with the number only where the phrase is the subject: it opens a sentence or a
        # clause ('In total, 1 egg break'), not after 'the' ('the total for the 3 weeks is')
        if start.strip() in ("", ".", "?", "!", ",", ":", ";") and verb and (
                (is_plural and verb in _AGREEING_VERBS) or (not is_plural and verb in _AGREEING_VERBS.values())):
            problems.append(f"verb agreement: {match.group(0).strip()!r}")
    return problems


def check_contradictions(text: str) -> list[str]:
    """Two sentences that say the same thing with different numbers ('Lena is 33 years old. Lena is 8 years
    old.') contradict; with the same numbers they are a duplicate. Both are flagged."""
    seen: dict[str, str] = {}
    problems = []
    for sentence in sentences(text):
        shape = re.sub(rf"[{_CURRENCY}]?{_NUMBER}", "#", sentence)
        if shape in seen:
            kind = "duplicate" if seen[shape] == sentence else "contradiction"
            problems.append(f"{kind}: {seen[shape]!r} / {sentence!r}")
        else:
            seen[shape] = sentence
    return problems


def check_grammar(text: str, nouns: Iterable[tuple[str, str]] = ()) -> list[str]:
    """Slots, capitals, doubled words, articles, redundancy, number agreement."""
    return (check_slots(text) + check_capitals(text) + check_doubled_words(text) + check_articles(text)
            + check_redundancy(text) + check_number_agreement(text, nouns))


def check_text(text: str, nouns: Iterable[tuple[str, str]] = ()) -> list[str]:
    """Every text check at once: grammar and contradictions."""
    return check_grammar(text, nouns) + check_contradictions(text)


def domain_nouns(domain) -> list[tuple[str, str]]:
    """The (singular, plural) noun forms a domain puts after numbers."""
    forms = [domain.item, domain.item2, domain.period, domain.people_noun, domain.unit]
    return [tuple(f) for f in forms if f]


# -- item-level checks ------------------------------------------------------------------------
RATE_SCOPED_BY = ("extra", "fixed")  # components whose presence makes "each ticket had cost X" ambiguous


def intervention_clause(question: str) -> str:
    """The counterfactual clause of the last sentence ('If instead each ticket had cost €17')."""
    last = sentences(question)[-1]
    return last.rsplit(", ", 1)[0] if ", " in last else last


def check_rate_intervention(item: Mapping, labels: Mapping[str, str] | None = None) -> list[str]:
    """An intervention on a per-unit rate must say what the new rate excludes when another per-unit charge or
    a fixed fee is present ('if instead each ticket had cost €17 (excluding the booking fee, ...)').

    ``labels`` (the domain's names of its components) makes the check exact; without them the clause must at
    least say 'excluding'.
    """
    story = item["story"]
    if story["target"] != "rate":
        return []
    present = [c for c in RATE_SCOPED_BY if c in story["components"]]
    if not present:
        return []
    clause = intervention_clause(item["question"])
    if labels is None:
        return [] if "excluding" in clause else [f"ambiguous rate intervention: {clause!r}"]
    missing = [c for c in present if labels[c] not in clause]
    return [f"rate intervention does not exclude {labels[c]!r}: {clause!r}" for c in missing]


def check_twins(counterfactual: Mapping, interventional: Mapping) -> list[str]:
    """The interventional question is the counterfactual one plus one sentence, right before the question."""
    cf, iv = sentences(counterfactual["question"]), sentences(interventional["question"])
    if len(iv) != len(cf) + 1 or iv[:-2] != cf[:-1] or iv[-1] != cf[-1]:
        return [f"twins differ beyond one revealing sentence: {counterfactual['question']!r} / "
                f"{interventional['question']!r}"]
    return []


# -- audit over many generated items ----------------------------------------------------------
def audit_items(pairs: Sequence[tuple[Mapping, Mapping]], domains: Mapping) -> dict[str, int]:
    """Counts of items (counterfactual, interventional twins) with each class of problem."""
    counts: Counter = Counter()
    for cf, iv in pairs:
        domain = domains[cf["domain"]]
        nouns = domain_nouns(domain)
        found = {
            "contradiction": check_contradictions(cf["question"]) + check_contradictions(iv["question"]),
            "grammar": check_grammar(cf["question"], nouns) + check_grammar(iv["question"], nouns),
            "ambiguous_rate": check_rate_intervention(cf, getattr(domain, "labels", None) or None),
            "twin_shape": check_twins(cf, iv),
        }
        counts["items"] += 1
        counts["rate_interventions"] += cf["story"]["target"] == "rate"
        for name, problems in found.items():
            counts[name] += bool(problems)
    return dict(counts)


def level_overlap(family, seed: int, n: int, levels: Sequence[str]) -> dict[str, float]:
    """Share of item positions where two levels at one seed drew the same domain (1/14 when the levels'
    streams are independent), and the same domain and components."""
    items = {level: family.generate_items(variant="counterfactual", n=n, seed=seed, config=family.config(level),
                                          level=level).items for level in levels}
    pairs = [(a, b) for i, a in enumerate(levels) for b in levels[i + 1:]]
    keys = {"domain": lambda item: item["domain"],
            "domain_and_components": lambda item: (item["domain"], tuple(item["story"]["components"]))}
    return {name: sum(key(x) == key(y) for a, b in pairs for x, y in zip(items[a], items[b])) / (len(pairs) * n)
            for name, key in keys.items()}


def audit(n: int = 500, seeds: Sequence[int] = (1, 2, 3), levels: Sequence[str] = ("easy", "medium", "hard")) -> dict:
    """Problem counts per level over ``n`` items at each seed (both variants)."""
    from cf_tasks.families.gsm import FAMILY
    from cf_tasks.families.gsm.templates import DOMAINS

    out = {}
    for level in levels:
        config = FAMILY.config(level)
        total: Counter = Counter()
        for seed in seeds:
            cf, iv = (FAMILY.generate_items(variant=v, n=n, seed=seed, config=config, level=level).items
                      for v in ("counterfactual", "interventional"))
            total.update(audit_items(list(zip(cf, iv)), DOMAINS))
        out[level] = dict(total)
    overlaps = [level_overlap(FAMILY, seed, n, levels) for seed in seeds]
    out["level_overlap"] = {name: sum(o[name] for o in overlaps) / len(seeds) for name in overlaps[0]}
    return out


def main(argv: Sequence[str] | None = None) -> int:
    import argparse
    import json

    parser = argparse.ArgumentParser(description="Count text problems over generated gsm stories.")
    parser.add_argument("--n", type=int, default=500, help="items per level and seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args(argv)
    print(json.dumps(audit(args.n, args.seeds), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
