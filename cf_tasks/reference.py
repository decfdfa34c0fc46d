"""Reference solvers: the bounds and the shortcuts a benchmark score is read against.

Each solver answers an item from its structured fields, never from its
``answer`` field:

``cf_oracle``
    abduction, intervention and prediction by execution (must score 100%).
``cf_one_latent``
    the "arbitrary latent assumed" failure: ``f(x', r)`` for the first
    assignment ``r`` (in ``itertools.product`` order of the domains) that
    reproduces the observation. Right exactly when the gold set is a singleton.
``cf_echo``
    "nothing changes": the observed output.
``cf_no_abduction``
    ignores the observation: every output the latent domain allows at ``x'``
    (0% on counterfactual code items, which are filtered so abduction is necessary).

Code documents of one call are solved with one batched executor call
(:func:`solve_code_docs`, the only place these solvers run programs); other
families answer through their plugin (``Family.oracle_answer`` and friends).
Used by the lm-eval models (:mod:`cf_tasks.lmeval.models`), the export's
dataset card and ``benchmarks/bench_baselines.py``.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

SOLVERS = ("cf_oracle", "cf_one_latent", "cf_echo", "cf_no_abduction")
"""The reference solvers, strongest first (the order of tables and figures)."""

_FAMILY_METHODS = {"cf_oracle": "oracle_answer", "cf_one_latent": "one_latent_answer", "cf_echo": "echo_answer",
                   "cf_no_abduction": "no_abduction_answer"}


def _check(solver: str) -> None:
    if solver not in SOLVERS:
        raise ValueError(f"unknown reference solver {solver!r}; solvers: {', '.join(SOLVERS)}")


def solve_code_docs(docs: Sequence[Mapping[str, Any]], solver: str, executor=None) -> list[list]:
    """Answers (value lists) of code items or documents, with one batched executor call."""
    _check(solver)
    from cf_tasks.lmeval.docs import decode_doc
    from cf_tasks.records import ProgramRecord

    records = [ProgramRecord.from_json(decode_doc(doc), source=f"doc {doc.get('id')}") for doc in docs]
    if solver == "cf_echo":
        return [[record.observed_output] for record in records]
    from cf_tasks.abduction import solve_records

    # A document's program is untrusted whoever generated it: a plain-str program always runs in the
    # isolated tier (the executor routes by provenance; see cf_tasks.executor.provenance).
    solutions = solve_records(records, executor, ignore_observation=solver == "cf_no_abduction")
    if solver != "cf_one_latent":
        return [list(solution.answer) for solution in solutions]
    out = []
    for record, solution in zip(records, solutions):
        if record.variant == "interventional" or solution.n_consistent == 0:
            out.append(list(solution.answer))  # latents revealed: the one consistent value is given
        else:
            out.append([solution.one_latent_output])
    return out


def reference_answers(solver: str, docs: Sequence[Mapping[str, Any]], executor=None) -> list[list]:
    """Each document's answer (a list of values) under ``solver``; code documents are batched."""
    _check(solver)
    answers: list[list | None] = [None] * len(docs)
    code = [i for i, doc in enumerate(docs) if "program" in doc]
    if code:
        for i, answer in zip(code, solve_code_docs([docs[i] for i in code], solver, executor)):
            answers[i] = answer
    if len(code) < len(docs):
        from cf_tasks.lmeval.docs import decode_doc
        from plugins import FAMILIES

        for i, doc in enumerate(docs):
            if answers[i] is None:
                family = FAMILIES.get(doc["family"])
                answers[i] = list(getattr(family, _FAMILY_METHODS[solver])(decode_doc(doc)))
    return answers  # type: ignore[return-value]


def boxed(doc: Mapping[str, Any], answer: Sequence[Any]) -> str:
    """The final answer as a model would write it: a typed set for code, a plain number otherwise."""
    if "program" in doc:
        from cf_tasks.answers import format_answer

        return format_answer(list(answer))  # typed values: '5' and 5 differ
    return "\\boxed{" + ", ".join(str(v) for v in answer) + "}"


def score(doc: Mapping[str, Any], response: str) -> dict[str, float]:
    """The task metric of one response, exactly as the lm-eval tasks compute it."""
    if "program" in doc:
        from cf_tasks.lmeval.scoring import process_results
    else:
        from cf_tasks.lmeval.math_scoring import process_results
    return process_results(doc, [response])


def reference_scores(items: Sequence[Mapping[str, Any]], solvers: Sequence[str] = SOLVERS,
                     executor=None) -> dict[str, dict[str, float]]:
    """Mean metrics (``exact_match``/``f1`` or ``acc``) of each solver over ``items``."""
    out: dict[str, dict[str, float]] = {}
    for solver in solvers:
        totals: dict[str, float] = {}
        for doc, answer in zip(items, reference_answers(solver, items, executor)):
            for name, value in score(doc, boxed(doc, answer)).items():
                totals[name] = totals.get(name, 0.0) + value
        out[solver] = {name: total / len(items) for name, total in totals.items()} if items else {}
    return out
