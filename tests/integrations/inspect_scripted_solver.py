"""A scripted inspect solver for the CLI test (``--solver inspect_scripted_solver.py@alternate``).

It answers without a model: the gold answer for even item indices and the gold
answer plus one wrong element (a hedge) for odd ones, so the expected
``exact_match`` and ``f1`` of a run are known exactly.
"""

from inspect_ai.model import ModelOutput
from inspect_ai.solver import Generate, Solver, TaskState, solver


@solver
def alternate() -> Solver:
    async def solve(state: TaskState, generate: Generate) -> TaskState:
        gold = state.target.text
        text = f"\\boxed{{{gold}}}" if state.metadata["index"] % 2 == 0 else f"\\boxed{{{gold}, 987654}}"
        state.output = ModelOutput.from_content(model="scripted", content=f"Step by step... {text}")
        return state

    return solve
