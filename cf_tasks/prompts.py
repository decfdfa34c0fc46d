"""Prompt text for counterfactual and interventional code problems.

The paper does not publish its prompt; this one states the three steps only
implicitly ("reason step by step"), shows the code with latents drawn by
``random.randint`` and asks for a set in ``\\boxed{}``.

The interventional prompt is the counterfactual prompt with the latent
revealed, so the two variants differ in abduction only: the same code, the
same observation sentence, then one sentence revealing the hidden value(s) of
that observed run instead of saying they are unknown, then the same question
in the singular ("what would it have returned?"), asking for a single value.
(The GSM family's prompts follow the same shape.)

``PROMPT_VERSION`` is recorded in every item so that prompt changes are visible.
"""

from __future__ import annotations

from typing import Any, Mapping

PROMPT_VERSION = "2"


def _fmt(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def _assign(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} = {_fmt(v)}" for k, v in values.items())


def _kwargs(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={_fmt(v)}" for k, v in values.items())


def _domain_note(latents: Mapping[str, Any]) -> str:
    parts = []
    for name, dom in latents.items():
        dom = list(dom)
        ints = all(isinstance(v, int) and not isinstance(v, bool) for v in dom)
        if ints and dom == list(range(dom[0], dom[-1] + 1)):
            parts.append(f"`{name}` is an integer between {dom[0]} and {dom[-1]} (inclusive)")
        else:
            parts.append(f"`{name}` takes one of the values {{{', '.join(_fmt(v) for v in dom)}}}")
    return "; ".join(parts)


def build_prompt(record: Mapping[str, Any]) -> str:
    """The user prompt of a record (a ``ProgramRecord.to_json()`` dict, generated or user-written)."""
    code = record.get("display_program") or record["program"]
    entry = record["entry_point"]
    observed = record["observed"]
    inputs = observed["inputs"]
    latents = record["latents"]
    latent_names = ", ".join(f"`{n}`" for n in latents)
    new_inputs = {**inputs, **record["intervention"]}
    lines = [
        "Here is a Python function:",
        "",
        "```python",
        code.rstrip(),
        "```",
        "",
    ]
    if not record.get("display_program"):
        lines += [f"The hidden value(s) {latent_names} are drawn at random: {_domain_note(latents)}.", ""]
    call = f"{entry}({_kwargs(inputs)})"
    new_call = f"{entry}({_kwargs(new_inputs)})"
    observation = f"We observed one run: {call} returned {_fmt(observed['output'])}."
    condition = f"Counterfactually, if we had called {new_call} instead, keeping the same hidden value(s) as in the " \
                "observed run,"
    if record.get("variant", "counterfactual") == "interventional":
        lines += [
            f"{observation} In that run, the hidden value(s) were {_assign(record['latent_values'])}.",
            f"{condition} what would it have returned?",
            "",
            "Reason step by step, then give the final answer as a single value inside \\boxed{}, "
            "for example \\boxed{7}.",
        ]
    else:
        lines += [
            f"{observation} The hidden value(s) {latent_names} of that run are unknown.",
            f"{condition} what could it have returned?",
            "List every possible return value that is consistent with the observation.",
            "",
            "Reason step by step, then give the final answer as a set of values inside \\boxed{}, "
            "for example \\boxed{3, 7}.",
        ]
    return "\n".join(lines)
