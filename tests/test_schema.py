"""The experiment file's JSON Schema and configuration reference: generated from the models that
validate the files, committed current, and strict where an editor should flag a mistake.
"""

from __future__ import annotations

import json
import subprocess
import sys

import jsonschema
import pytest
import yaml

from pipeline import paths, schema
from pipeline.config.experiment import Experiment
from tests.test_config import SHIPPED


@pytest.mark.parametrize(
    ("committed", "generate"),
    [(schema.SCHEMA_FILE, schema.schema_text), (schema.REFERENCE_FILE, schema.reference)],
)
def test_the_committed_file_is_what_the_models_generate(committed, generate):
    text = (paths.SOURCE_ROOT / committed).read_text()
    assert text == generate(), (
        f"{committed} is stale: regenerate it with .venv/bin/{schema.COMMANDS[committed]}"
    )


def test_the_command_prints_both_files():
    for flags, expected in (([], schema.schema_text()), (["--markdown"], schema.reference())):
        done = subprocess.run(
            [sys.executable, "-m", "pipeline", "schema", *flags],
            cwd=paths.SOURCE_ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        assert done.stdout == expected


def validator() -> jsonschema.Draft202012Validator:
    document = schema.schema()
    jsonschema.Draft202012Validator.check_schema(document)  # a valid schema of its draft
    return jsonschema.Draft202012Validator(document)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_experiment_meets_the_schema(name):
    settings = yaml.safe_load((paths.experiments_dir() / f"{name}.yaml").read_text())
    errors = [e.message for e in validator().iter_errors(settings)]
    assert errors == []


@pytest.mark.parametrize(
    ("edit", "flagged"),
    [
        (lambda s: s.update(training={"learnin_rate": 0.1}), "'learnin_rate' was unexpected"),
        (lambda s: s["models"][0].update(cell="lstmm"), "'lstmm' is not one of"),
        (lambda s: s["tasks"][0].update(task="recal"), "'recal'"),
        (lambda s: s["tasks"][0].update(n_keys=99), "99 is greater than the maximum of 12"),
        (lambda s: s.update(training={"learning_rate": 0}), "0 is less than or equal to"),
        (lambda s: s["models"][0].update(forget_bias=1000), "1000"),
        (lambda s: s.update(name="other"), "'name' was unexpected"),
        (lambda s: s["tuning"]["grid"].update(max_steps=[10]), "'max_steps'"),
        (lambda s: s["tuning"].update(distances={"recal": 20}), "'recal'"),
    ],
    ids=["misspelt key", "unknown cell", "unknown task", "out of bounds", "a bound a number "
         "validated from text keeps", "a number or a word", "the experiment's name",
         "a setting tuning cannot vary", "no such task"],
)  # fmt: skip
def test_the_schema_flags_what_loading_refuses(edit, flagged):
    settings = yaml.safe_load((paths.experiments_dir() / "default.yaml").read_text())
    assert list(validator().iter_errors(settings)) == []
    edit(settings)
    errors = [e.message for e in validator().iter_errors(settings)]
    assert any(flagged in message for message in errors), errors


def test_the_reference_has_a_row_for_every_field_of_every_section():
    page = schema.reference()
    document = schema.schema()
    sections = [("experiment", document), *((k.lower(), v) for k, v in document["$defs"].items())]
    assert len(sections) >= 12  # the experiment, its sections, three tasks, the claim's parts
    for anchor, section in sections:
        text = page.split(f'<a id="{anchor}"></a>', 1)[1].split("<a id=", 1)[0]
        for field, spec in section["properties"].items():
            row = next(line for line in text.splitlines() if line.startswith(f"| `{field}` |"))
            assert spec["description"] in row
    training = page.split("## `training`", 1)[1].split("\n## ", 1)[0]
    assert (
        "| `learning_rate` | number | `0.003` | > 0, ≤ 1e+06 | the optimizer's learning rate |"
        in training
    )
    assert "| `tasks` | list of [recall](#recallconfig) or [copy](#copyconfig) or [adding]" in page


def test_every_field_is_described():
    document = schema.schema()
    for name, section in [("experiment", document), *document["$defs"].items()]:
        for field, spec in section["properties"].items():
            assert spec.get("description"), f"{name}.{field}"


def test_the_schema_leaves_the_name_out_and_forbids_unknown_keys_everywhere():
    document = schema.schema()
    assert "name" not in document["properties"] and "name" not in document["required"]
    assert document["required"] == ["tasks", "models", "seeds"]
    for section in [document, *document["$defs"].values()]:
        assert section["additionalProperties"] is False
    assert json.loads(schema.schema_text()) == document
    assert set(Experiment.model_fields) - {"name"} == set(document["properties"])
