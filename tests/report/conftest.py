"""Fixtures of the report tests (helpers live in ``report_fixtures``)."""

import pytest
from report_fixtures import rows_with_em, write_lmeval_run


@pytest.fixture
def two_model_dir(tmp_path):
    """Two models, two families; known EMs.

    model A: if_else CF 1/4, Int 3/4; while CF 0/2, Int 2/2
    model B: if_else CF 2/4, Int 4/4; while only CF 1/2 (partial run)
    """
    out = tmp_path / "lm_out"
    write_lmeval_run(out, "hf", {
        "executable_cf_if_else": rows_with_em("if_else", "counterfactual", [1, 0, 0, 0]),
        "executable_cf_if_else_interventional": rows_with_em("if_else", "interventional", [1, 1, 1, 0]),
        "executable_cf_while": rows_with_em("while", "counterfactual", [0, 0]),
        "executable_cf_while_interventional": rows_with_em("while", "interventional", [1, 1]),
    }, model_args={"pretrained": "/ckpt/model-a", "dtype": "float32"}, sanitized="__ckpt__model-a")
    write_lmeval_run(out, "hf", {
        "executable_cf_if_else": rows_with_em("if_else", "counterfactual", [1, 1, 0, 0]),
        "executable_cf_if_else_interventional": rows_with_em("if_else", "interventional", [1, 1, 1, 1]),
        "executable_cf_while": rows_with_em("while", "counterfactual", [1, 0]),
    }, model_args="pretrained=/ckpt/model-b,dtype=float32", limit=4, sanitized="__ckpt__model-b")
    return out
