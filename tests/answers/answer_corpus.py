"""The labelled answer corpus: realistic final answers and what a careful human grader reads in them.

Each YAML file in ``corpus/`` is a list of entries::

    - id: qwen-box-list-1          # unique across files
      kind: set                    # set (code tasks, set exact match) or math (one exact number)
      style: qwen                  # model family / writing style the response imitates
      case: box_list               # the extraction rule the entry exercises (docs/answers.md)
      gold: [4, 10, 16]            # set: the gold values; math: the gold number (string)
      expect: [4, 10, 16]          # what the grader reads: values, a number string, "refused" or "none"
      score: 1                     # exact match (set) / accuracy (math) the grader gives
      why: one box per value       # the grader's reason
      response: |
        ...

``refused`` means an answer is there but cannot be read as one (a range, an
ellipsis, arithmetic); ``none`` means there is no final answer. Both parse to
``None`` and score 0.

Run as a script (``python tests/answers/answer_corpus.py``), it prints every
disagreement between the parser and the labels, and a count;
``--against REVISION`` scores the corpus with the parser of an older commit
(``--against 4f79a70``: the parser before this policy).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import yaml

HERE = Path(__file__).parent
CORPUS_DIR = HERE / "corpus"
KINDS = ("set", "math")
NO_ANSWER = ("refused", "none")
FIELDS = ("id", "kind", "style", "case", "gold", "expect", "score", "why", "response")


@dataclass(frozen=True)
class Entry:
    id: str
    kind: str
    style: str
    case: str
    gold: Any
    expect: Any
    score: float
    why: str
    response: str
    source: str  # file:index, for messages

    @property
    def answered(self) -> bool:
        return self.expect not in NO_ANSWER


class CorpusError(ValueError):
    pass


def _entry(raw: Any, where: str) -> Entry:
    if not isinstance(raw, dict):
        raise CorpusError(f"{where}: an entry must be a mapping, got {type(raw).__name__}")
    missing = [f for f in FIELDS if f not in raw]
    extra = sorted(set(raw) - set(FIELDS))
    if missing or extra:
        raise CorpusError(f"{where} ({raw.get('id', '?')}): missing fields {missing}, unknown fields {extra}")
    if raw["kind"] not in KINDS:
        raise CorpusError(f"{where} ({raw['id']}): field 'kind' must be one of {KINDS}, got {raw['kind']!r}")
    if raw["kind"] == "set" and not (isinstance(raw["gold"], list) and raw["gold"]):
        raise CorpusError(f"{where} ({raw['id']}): field 'gold' of a set entry must be a non-empty list")
    if raw["kind"] == "set" and not (isinstance(raw["expect"], list) or raw["expect"] in NO_ANSWER):
        raise CorpusError(f"{where} ({raw['id']}): field 'expect' must be a list, 'refused' or 'none'")
    if raw["kind"] == "math" and not isinstance(raw["gold"], str):
        raise CorpusError(f"{where} ({raw['id']}): field 'gold' of a math entry must be a number string")
    if raw["kind"] == "math" and not isinstance(raw["expect"], str):
        raise CorpusError(f"{where} ({raw['id']}): field 'expect' of a math entry must be a number string, "
                          "'refused' or 'none'")
    if raw["score"] not in (0, 1):
        raise CorpusError(f"{where} ({raw['id']}): field 'score' must be 0 or 1")
    if not isinstance(raw["response"], str) or not raw["why"]:
        raise CorpusError(f"{where} ({raw['id']}): fields 'response' (text) and 'why' are required")
    return Entry(**{f: raw[f] for f in FIELDS}, source=where)


def load(directory: Path = CORPUS_DIR) -> list[Entry]:
    entries: list[Entry] = []
    for path in sorted(directory.glob("*.yaml")):
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        if not isinstance(data, list):
            raise CorpusError(f"{path.name}: expected a list of entries")
        entries.extend(_entry(raw, f"{path.name}:{i}") for i, raw in enumerate(data))
    ids = [e.id for e in entries]
    duplicates = sorted({i for i in ids if ids.count(i) > 1})
    if duplicates:
        raise CorpusError(f"duplicate ids: {duplicates}")
    return entries


# -- comparing a parser with the labels ----------------------------------------------------------

def expected_set(entry: Entry) -> frozenset | None:
    from cf_tasks.answers import canonical_set

    return canonical_set(entry.expect) if entry.answered else None


def expected_number(entry: Entry) -> Fraction | None:
    return Fraction(entry.expect) if entry.answered else None


def label_score(entry: Entry) -> float:
    """The score the labels imply (must equal the entry's ``score``: a check on the corpus itself)."""
    if not entry.answered:
        return 0.0
    if entry.kind == "math":
        return float(Fraction(entry.expect) == Fraction(entry.gold))
    return float(expected_set(entry) == _gold_set(entry))


def _gold_set(entry: Entry) -> frozenset:
    from cf_tasks.answers import canonical_set

    return canonical_set(entry.gold)


def disagreements(entries: list[Entry], parse_set: Callable[[str], Any], parse_number: Callable[[str], Any],
                  score_set: Callable[[str, list], dict] | None = None,
                  score_number: Callable[[str, Fraction], float] | None = None) -> list[str]:
    """One line per entry whose parse or score differs from its label."""
    out = []
    for e in entries:
        if e.kind == "set":
            got = parse_set(e.response)
            want = expected_set(e)
            score = score_set(e.response, list(e.gold))["exact_match"] if score_set else None
        else:
            got = parse_number(e.response)
            want = expected_number(e)
            score = score_number(e.response, Fraction(e.gold)) if score_number else None
        if got != want or (score is not None and score != e.score):
            out.append(f"{e.id} ({e.source}, {e.case}): parsed {_show(got)}, labelled {_show(want)}"
                       + (f"; score {score}, labelled {e.score}" if score is not None and score != e.score else ""))
    return out


def _show(value: Any) -> str:
    if value is None:
        return "None"
    if isinstance(value, frozenset):
        from cf_tasks.report.tags import parsed_answer_json

        return str(parsed_answer_json(value))
    return str(value)


def _parsers_at(revision: str, workdir: Path) -> tuple[Callable, Callable, Callable, Callable]:
    """The set and number parsers of an older commit (``git show``), loaded under private names.

    Only for commits whose parser is the two self-contained modules ``cf_tasks/answers.py`` and
    ``cf_tasks/math_answer.py`` (before this policy); used to show what the corpus catches.
    """
    import importlib.util
    import subprocess

    root = Path(subprocess.run(["git", "rev-parse", "--show-toplevel"], capture_output=True, text=True,
                               check=True, cwd=HERE).stdout.strip())
    sources = {}
    for name in ("answers", "math_answer"):
        sources[name] = subprocess.run(["git", "show", f"{revision}:cf_tasks/{name}.py"], capture_output=True,
                                       text=True, check=True, cwd=root).stdout
    sources["math_answer"] = sources["math_answer"].replace("from cf_tasks.answers import", "from old_answers import")
    modules = {}
    for name in ("answers", "math_answer"):
        path = workdir / f"old_{name}.py"
        path.write_text(sources[name], encoding="utf-8")
        spec = importlib.util.spec_from_file_location(f"old_{name}", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[f"old_{name}"] = module
        spec.loader.exec_module(module)
        modules[name] = module
    old_set, old_number = modules["answers"].parse_answer_set, modules["math_answer"].parse_final_number

    def old_score_set(text: str, gold: list) -> dict:
        predicted = old_set(text)
        return {"exact_match": float(bool(predicted) and predicted == modules["answers"].canonical_set(gold))}

    def old_score_number(text: str, gold: Fraction) -> float:
        value = old_number(text)
        return 1.0 if value is not None and value == gold else 0.0

    return old_set, old_number, old_score_set, old_score_number


def main(argv: list[str] | None = None) -> int:
    import argparse
    import tempfile

    parser = argparse.ArgumentParser(description="Score the labelled answer corpus; print every disagreement.")
    parser.add_argument("--against", metavar="REVISION", help="use the parser of an older git revision instead")
    parser.add_argument("-q", "--quiet", action="store_true", help="print only the counts")
    args = parser.parse_args(argv)
    entries = load()
    with tempfile.TemporaryDirectory() as workdir:
        if args.against:
            parsers = _parsers_at(args.against, Path(workdir))
        else:
            from cf_tasks.answers import parse_answer_set
            from cf_tasks.lmeval.math_scoring import score_number
            from cf_tasks.math_answer import parse_final_number
            from cf_tasks.metrics import score_set

            parsers = (parse_answer_set, parse_final_number, score_set, score_number)
        lines = disagreements(entries, *parsers)
        scored = {e.id: (parsers[2](e.response, list(e.gold))["exact_match"] if e.kind == "set"
                         else parsers[3](e.response, Fraction(e.gold))) for e in entries}
    wrong_score = [e for e in entries if scored[e.id] != e.score]
    if not args.quiet and lines:
        print("\n".join(lines))
    print(f"{len(lines)} disagreements in {len(entries)} entries ({args.against or 'this checkout'}); "
          f"scores differ on {len(wrong_score)}: {sum(e.score == 1 for e in wrong_score)} correct answers scored 0, "
          f"{sum(e.score == 0 for e in wrong_score)} wrong or unreadable answers scored 1")
    return 1 if lines else 0


if __name__ == "__main__":
    sys.exit(main())
