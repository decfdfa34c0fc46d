"""Reference solvers registered as lm-eval models (``--model cf_oracle`` / ``cf_no_abduction``).

They read the structured item behind each request (``Instance.doc``), never
its ``answer`` field: ``cf_oracle`` solves by abduction through execution (a
document's program is never trusted: it runs in the isolated executor tier),
``cf_no_abduction`` ignores the observation and answers from the prior over the
whole latent domain. Their scores bound the
benchmark: the oracle must reach 1.0 everywhere, and the no-abduction solver
shows how much a task requires abduction (the counterfactual drop).
Non-code families (e.g. ``gsm``) solve through their family plugin.
"""

from __future__ import annotations

from typing import Any

from lm_eval.api.model import LM

from cf_tasks.answers import format_answer
from cf_tasks.lmeval.docs import decode_doc


class _ReferenceSolverLM(LM):
    ignore_observation = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()

    @classmethod
    def create_from_arg_string(cls, arg_string: str, additional_config: dict | None = None):
        return cls()

    @classmethod
    def create_from_arg_obj(cls, arg_dict: dict, additional_config: dict | None = None):
        return cls()

    def _answers(self, docs: list[dict]) -> list[str]:
        """The boxed final answer for each document."""
        from cf_tasks.abduction import solve_documents
        from plugins import FAMILIES

        answers: list[str | None] = [None] * len(docs)
        code_idx = [i for i, d in enumerate(docs) if "program" in d]
        if code_idx:  # a document's program is untrusted: solve_documents runs it isolated
            solutions = solve_documents([docs[i] for i in code_idx], ignore_observation=self.ignore_observation)
            for i, solution in zip(code_idx, solutions):
                answers[i] = format_answer(solution.answer)  # typed values: '5' and 5 differ
        for i, doc in enumerate(docs):
            if answers[i] is None:
                family = FAMILIES.get(doc["family"])
                solve = family.no_abduction_answer if self.ignore_observation else family.oracle_answer
                answers[i] = "\\boxed{" + ", ".join(str(v) for v in solve(doc)) + "}"
        return answers  # type: ignore[return-value]

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        docs = []
        for request in requests:
            if request.doc is None:
                raise ValueError(f"{type(self).__name__} needs the task document of each request")
            docs.append(decode_doc(request.doc))
        return [f"By execution, the answer is {answer}." for answer in self._answers(docs)]

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError(f"{type(self).__name__} only supports generate_until tasks")

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError(f"{type(self).__name__} only supports generate_until tasks")


class OracleLM(_ReferenceSolverLM):
    """Solves every item by abduction, intervention and prediction through execution."""


class NoAbductionLM(_ReferenceSolverLM):
    """Ignores the observation: answers with every output the latent domain allows."""

    ignore_observation = True
