"""Program-record validation: errors name the file, line and field."""

import json

import pytest

from cf_tasks.records import ProgramRecord, RecordError, load_records

GOOD = {
    "id": "r1",
    "program": "def f(x, r):\n    return (x + r) % 3\n",
    "entry_point": "f",
    "latents": {"r": {"low": 0, "high": 5}},
    "observed": {"inputs": {"x": 1}, "output": 2},
    "intervention": {"x": 4},
    "variant": "counterfactual",
}


def test_round_trip_and_range_expansion():
    rec = ProgramRecord.from_json(GOOD)
    assert rec.latents == {"r": (0, 1, 2, 3, 4, 5)}
    assert rec.intervened_inputs == {"x": 4}
    again = ProgramRecord.from_json(rec.to_json())
    assert again == rec


@pytest.mark.parametrize(
    "patch, field, fragment",
    [
        ({"id": None}, "id", "string or integer"),
        ({"program": ""}, "program", "non-empty"),
        ({"entry_point": "g"}, "entry_point", "no 'def g'"),
        ({"entry_point": "1f"}, "entry_point", "identifier"),
        ({"latents": {"r": {"low": 3, "high": 1}}}, "latents.r", "below low"),
        ({"latents": {"r": []}}, "latents.r", "empty"),
        ({"latents": {"r": "abc"}}, "latents.r", "list of values"),
        ({"latents": {"r": {"low": 0, "high": 10**9}}}, "latents.r", "at most"),
        ({"observed": {"inputs": {"x": 1}}}, "observed", "output"),
        ({"observed": {"inputs": {"x": [1]}, "output": 2}}, "observed.inputs.x", "scalar"),
        ({"intervention": {"y": 3}}, "intervention", "not observed inputs"),
        ({"intervention": {}}, "intervention", "at least one"),
        ({"variant": "causal"}, "variant", "counterfactual, interventional"),
        ({"variant": "interventional"}, "latent_values", "required"),
        ({"latent_values": {"r": 1}}, "latent_values", "only allowed"),
        ({"variant": "interventional", "latent_values": {"r": 99}}, "latent_values.r", "outside"),
        ({"answer": "3"}, "answer", "list"),
    ],
)
def test_errors_name_the_field(patch, field, fragment):
    obj = {**GOOD, **patch}
    with pytest.raises(RecordError) as err:
        ProgramRecord.from_json(obj, source="progs.jsonl", line=7)
    assert err.value.field == field
    assert str(err.value).startswith("progs.jsonl:7:")
    assert fragment in str(err.value)


def test_load_records_names_line(tmp_path):
    path = tmp_path / "recs.jsonl"
    bad = {**GOOD, "id": "r2", "observed": {"inputs": {"x": 1}}}
    path.write_text(json.dumps(GOOD) + "\n\n" + json.dumps(bad) + "\n")
    with pytest.raises(RecordError, match=r"recs.jsonl:3: field 'observed'"):
        load_records(path)
    path.write_text(json.dumps(GOOD) + "\n" + json.dumps(GOOD) + "\n")
    with pytest.raises(RecordError, match="duplicate id 'r1'"):
        load_records(path)
    path.write_text(json.dumps(GOOD) + "\n{not json\n")
    with pytest.raises(ValueError, match=r"recs.jsonl:2: invalid JSON"):
        load_records(path)
