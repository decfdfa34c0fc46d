"""Provenance decides the tier: no route lets a document's program run in the trusted pool (issue 13, class 1).

Every route by which a program from a file, a task document or a dataset reaches an executor
is driven with a probe program that tries to create a marker file outside any sandbox: the
route must still answer (the program ran, isolated), and the marker must not exist. Before,
the reference solvers, the families' reference answers and the default executor ran such
programs in the trusted pool, as the evaluating user.
"""

from __future__ import annotations

import ast
import copy
import json
import pickle
from pathlib import Path

import pytest
from sandbox_probes import cli, marker_program, record, write_records

from cf_tasks.executor import Executor, GeneratedSource, Job, generated_source, shared_executor
from cf_tasks.executor.pool import TrustedPool
from cf_tasks.executor.types import Limits

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def probe(tmp_path):
    marker = tmp_path / "ran-outside-the-sandbox"
    yield record(marker_program(marker))
    assert not marker.exists(), "a document's program ran outside the sandbox"


# --- the type ---------------------------------------------------------------------------------

def test_generated_source_cannot_be_made_by_hand():
    with pytest.raises(TypeError, match="generated_source"):
        GeneratedSource("def f():\n    return 1\n")
    with pytest.raises(TypeError):
        generated_source(b"def f(): pass")
    assert type(generated_source("x = 1")) is GeneratedSource


@pytest.mark.parametrize("how", ["deepcopy", "copy", "pickle", "json", "concat", "slice", "format", "join", "str"])
def test_trust_does_not_survive_copies_files_or_edits(how):
    src = generated_source("def f():\n    return 1\n")
    out = {"deepcopy": lambda: copy.deepcopy({"p": src})["p"], "copy": lambda: copy.copy(src),
           "pickle": lambda: pickle.loads(pickle.dumps(src)), "json": lambda: json.loads(json.dumps(src)),
           "concat": lambda: src + "", "slice": lambda: src[:], "format": lambda: f"{src}",
           "join": lambda: "".join([src]), "str": lambda: str(src)}[how]()
    assert out == src and type(out) is str
    assert not Job(out, "f", ({},)).trusted and Job(src, "f", ({},)).trusted


def test_trusted_pool_refuses_a_plain_program():
    pool = TrustedPool(1, Limits())
    try:
        with pytest.raises(TypeError, match="trusted pool runs only programs generated"):
            pool.run([Job("def f():\n    return 1\n", "f", ({},))])
        assert pool.run([Job(generated_source("def f():\n    return 1\n"), "f", ({},))])[0][0].value == 1
    finally:
        pool.close()


def test_only_the_generation_pipeline_mints_trusted_sources():
    """No module of the installed packages but cf_tasks/generation.py names generated_source."""
    users = []
    for package in ("cf_tasks", "plugins", "selection", "training"):
        for path in sorted((REPO / package).rglob("*.py")):
            if path.parent.name == "executor" and path.parent.parent.name == "cf_tasks":
                continue  # where it is defined and exported
            tree = ast.parse(path.read_text(encoding="utf-8"))
            names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
            names |= {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
            names |= {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
            if names & {"generated_source", "GeneratedSource", "_MINT"}:
                users.append(str(path.relative_to(REPO)))
    assert users == ["cf_tasks/generation.py"]


# --- every route of a document's program ---------------------------------------------------------

def test_default_executor_isolates_plain_programs(probe):
    with Executor(workers=1) as ex:
        [[res]] = ex.run([Job(probe["program"], "f", ({"x": 1, "r": 2},))])
    assert res.value == 3


def test_shared_executor_isolates_plain_programs(probe):
    [[res]] = shared_executor().run([Job(probe["program"], "f", ({"x": 1, "r": 2},))])
    assert res.value == 3


def test_run_grids_isolates_plain_programs(probe):
    from cf_tasks.abduction import Grid, run_grids

    [res] = run_grids([Grid(probe["program"], "f", {"r": [1, 2]}, {"x": 1}, {"x": 5})])
    assert [c.value for c in res.observed] == [2, 3]


@pytest.mark.parametrize("route", ["solve_doc", "solve_records", "solve_documents", "oracle_answer",
                                   "no_abduction_answer"])
def test_solvers_isolate_document_programs(probe, route):
    from cf_tasks import abduction
    from plugins import FAMILIES

    family = FAMILIES.get("if_else")
    answer = {"solve_doc": lambda: abduction.solve_doc(probe).answer,
              "solve_records": lambda: abduction.solve_records([probe])[0].answer,
              "solve_documents": lambda: abduction.solve_documents([probe])[0].answer,
              "oracle_answer": lambda: family.oracle_answer(probe),
              "no_abduction_answer": lambda: family.no_abduction_answer(probe)}[route]()
    assert answer == ([6, 7, 8] if route == "no_abduction_answer" else [7])


@pytest.mark.parametrize("model", ["cf_oracle", "cf_no_abduction"])
def test_reference_models_isolate_document_programs(probe, model):
    from lm_eval.api.instance import Instance

    from cf_tasks.lmeval.models import NoAbductionLM, OracleLM

    lm = {"cf_oracle": OracleLM, "cf_no_abduction": NoAbductionLM}[model]()
    request = Instance(request_type="generate_until", doc=probe, arguments=("prompt", {}), idx=0)
    [text] = lm.generate_until([request])
    assert text.endswith("\\boxed{7}.") if model == "cf_oracle" else text.endswith("\\boxed{6, 7, 8}.")


def test_lm_eval_records_loader_isolates_programs(probe, tmp_path):
    from cf_tasks.lmeval.dataset import load_records

    path = write_records(tmp_path / "hostile.jsonl", [probe])
    data = load_records(records=str(path), config_source="hostile.yaml")
    assert json.loads(data["test"][0]["answer"]) == [7]  # lm-eval docs carry the answer as JSON text


def test_cf_tasks_solve_isolates_programs(probe, tmp_path):
    path = write_records(tmp_path / "hostile.jsonl", [probe])
    code, out, err = cli("solve", str(path), "-o", str(tmp_path / "solved.jsonl"))
    assert code == 0, err
    assert json.loads((tmp_path / "solved.jsonl").read_text())["answer"] == [7]


def test_generated_items_become_untrusted_documents(tmp_path):
    """The task loader's items (cached, then copied) carry plain-str programs: their reference
    answers are computed in the isolated tier, while generation itself ran in the trusted pool."""
    from cf_tasks.abduction import solve_documents
    from cf_tasks.lmeval.dataset import generate_items

    items = generate_items("if_else", n=3, seed=5)
    assert all(type(item["program"]) is str for item in items)
    seen: list[bool] = []
    real = shared_executor()

    class Spy:
        def run_jobs(self, jobs):
            seen.extend(job.trusted for job in jobs)
            return real.run_jobs(jobs)

    solutions = solve_documents(items, executor=Spy())
    assert [s.answer for s in solutions] == [item["answer"] for item in items]
    assert seen and not any(seen)


def test_the_generator_runs_in_the_trusted_pool():
    from cf_tasks.generation import generate_code_items
    from plugins import FAMILIES

    family = FAMILIES.get("if_else")
    seen: list[bool] = []
    real = shared_executor()

    class Spy:
        def run(self, jobs):
            seen.extend(job.trusted for job in jobs)
            return real.run(jobs)

    for programs_per_job in (1, 32):
        result = generate_code_items(family, variant="counterfactual", n=4, seed=3, config=family.config(None),
                                     executor=Spy(), programs_per_job=programs_per_job)
        assert len(result.items) == 4
    assert seen and all(seen)
