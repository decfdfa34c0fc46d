"""Reference solvers registered as lm-eval models: ``cf_oracle``, ``cf_one_latent``, ``cf_echo``, ``cf_no_abduction``.

They read the structured item behind each request (``Instance.doc``), never
its ``answer`` field, and answer through :mod:`cf_tasks.reference` (a document's program is never
trusted: it runs in the isolated executor tier). Their
scores bound the benchmark: the oracle must reach 1.0 everywhere; the
no-abduction solver shows how much a task requires abduction (the
counterfactual drop); ``cf_echo`` (answer the observation) and
``cf_one_latent`` (assume one consistent latent) are the shortcuts a model's
exact match must beat before it means anything.

Their ``model_name`` is stable (the registry name); pass
``--model_args model=cf_echo`` to give lm-eval's output folder that name too.
"""

from __future__ import annotations

from typing import Any

from lm_eval.api.model import LM

from cf_tasks.lmeval.docs import decode_doc


class _ReferenceSolverLM(LM):
    solver = "cf_oracle"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__()

    @property
    def model_name(self) -> str:
        return self.solver

    @classmethod
    def create_from_arg_string(cls, arg_string: str, additional_config: dict | None = None):
        return cls()

    @classmethod
    def create_from_arg_obj(cls, arg_dict: dict, additional_config: dict | None = None):
        return cls()

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        from cf_tasks.reference import boxed, reference_answers

        docs = []
        for request in requests:
            if request.doc is None:
                raise ValueError(f"{type(self).__name__} needs the task document of each request")
            docs.append(decode_doc(request.doc))
        answers = reference_answers(self.solver, docs)
        return [f"By execution, the answer is {boxed(doc, answer)}." for doc, answer in zip(docs, answers)]

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError(f"{type(self).__name__} only supports generate_until tasks")

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError(f"{type(self).__name__} only supports generate_until tasks")


class OracleLM(_ReferenceSolverLM):
    """Solves every item by abduction, intervention and prediction through execution."""

    solver = "cf_oracle"


class NoAbductionLM(_ReferenceSolverLM):
    """Ignores the observation: answers with every output the latent domain allows."""

    solver = "cf_no_abduction"


class EchoLM(_ReferenceSolverLM):
    """Answers the observed output ("nothing would have changed")."""

    solver = "cf_echo"


class OneLatentLM(_ReferenceSolverLM):
    """Assumes one consistent latent (the first in domain order) and runs the program with it at ``x'``."""

    solver = "cf_one_latent"
