"""A derived experiment file (``make run-all SET=...``): a real experiment file with settings
changed, validated as any experiment file, naming its base and each setting; a bad setting stops
with one line naming it and writes nothing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline import config
from pipeline.config import derive
from pipeline.errors import ConfigError

BASE_SETTINGS = """\
# a base experiment: the tests change its settings
tasks:
  - task: recall
    distances: [10, 20, 40]
models:
  - {name: rnn, cell: rnn}
  - {name: lstm, cell: lstm}
seeds: [0, 1, 2]
hidden_size: 32
tuning:
  grid: {learning_rate: [1.0e-3, 3.0e-3]}
  seeds: [100]
"""


@pytest.fixture
def base(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("base") / "default.yaml"
    path.write_text(BASE_SETTINGS)
    return path


def test_settings_are_applied_to_a_real_experiment_file(tmp_path, base):
    output = tmp_path / "default-set-test.yaml"
    text = "training.max_steps=500 seeds=[0] tasks[0].distances=[10, 20] training.optimizer=sgd"
    exp = derive.derive(base, text, output)
    base = config.load(base)
    assert exp == config.load(output)  # what was validated is what was written
    assert exp.name == "default-set-test"
    assert exp.training.max_steps == 500 and exp.training.optimizer == "sgd"
    assert exp.seeds == [0] and base.seeds == [0, 1, 2]
    assert exp.tasks[0].distances == [10, 20] and exp.tasks[0].n_keys == base.tasks[0].n_keys
    assert exp.models == base.models and exp.tuning == base.tuning
    assert exp.training.learning_rate == base.training.learning_rate  # the defaults stay


def test_the_derived_file_names_its_base_and_each_setting(tmp_path, base):
    output = tmp_path / "d.yaml"
    derive.derive(base, "training.max_steps=500  seeds=[0, 1]", output)
    header = [line for line in output.read_text().splitlines() if line.startswith("#")]
    assert f"# Derived from {base} with these settings" in header[0]
    assert header[1:3] == ["#   training.max_steps=500", "#   seeds=[0, 1]"]
    assert yaml.safe_load(output.read_text())["training"] == {"max_steps": 500}


@pytest.mark.parametrize(
    ("text", "named", "problem"),
    [
        ("training.max_steps=-5", "training.max_steps=-5", "greater than or equal to 1 (got -5)"),
        ("training.optimizer=adamw", "training.optimizer=adamw", "(got 'adamw')"),
        ("training.max_stepz=500", "training.max_stepz=500", "did you mean max_steps?"),
        ("trainin.max_steps=500", "trainin.max_steps=500", "trainin: not a setting; did you"),
        ("tasks[3].distances=[10]", "tasks[3].distances=[10]", "tasks has 1 item in the base"),
        ("hidden_size.x=1", "hidden_size.x=1", "hidden_size is 32 in the base file, not a mapping"),
        ("models.name=x", "models.name=x", "models is [{"),
        ("tuning[0]=1", "tuning[0]=1", "tuning is not a list"),
        (
            "training[0]=1",
            "training[0]=1",
            "training is not in the base file, so it has no item [0]",
        ),
        ("seeds=[0", "seeds=[0", "the value is not YAML"),
        ("seeds", "seeds", "not a setting; write path=value"),
        ("seeds=", "seeds=", "no value (write null for none)"),
        ("seeds=[0] seeds=[1]", "seeds=[1]", "seeds is set twice"),
        ("name=other", "name=other", "the experiment is named by its file"),
        # a check across fields names the setting it mentions, not the others
        ("seeds=[0] training.max_steps=50", "with training.max_steps=50:", "eval_every"),
    ],
)
def test_a_bad_setting_is_refused_in_one_line_naming_it_and_writes_nothing(
    tmp_path, base, text, named, problem
):
    output = tmp_path / "d.yaml"
    with pytest.raises(ConfigError) as raised:
        derive.derive(base, text, output)
    message = str(raised.value)
    assert message.startswith(f"{base} with ")
    assert named in message and problem in message
    assert "\n" not in message
    assert list(tmp_path.iterdir()) == []


def test_a_check_across_fields_names_only_the_setting_it_concerns(tmp_path, base):
    with pytest.raises(ConfigError) as raised:
        derive.derive(base, "seeds=[0] training.max_steps=50", tmp_path / "d.yaml")
    assert "seeds=[0]" not in str(raised.value)


def test_a_refused_setting_leaves_an_earlier_derived_file_as_it_was(tmp_path, base):
    output = tmp_path / "d.yaml"
    derive.derive(base, "seeds=[0]", output)
    before = output.read_text()
    with pytest.raises(ConfigError):
        derive.derive(base, "seeds=[-1]", output)
    assert output.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["d.yaml"]


def test_white_space_separates_settings_outside_brackets_and_quotes():
    text = "a=[1, 2] b={x: 1, y: 2}  c='two words' d=it's e.f[0]=[[1, 2], [3]]"
    assert derive.split(text) == [
        "a=[1, 2]",
        "b={x: 1, y: 2}",
        "c='two words'",
        "d=it's",
        "e.f[0]=[[1, 2], [3]]",
    ]
    assert derive.parse("e.f[0]=[[1, 2], [3]]").path == ("e", "f", 0)
    assert derive.parse("c='two words'").value == "two words"


def test_the_command_writes_the_file_or_refuses_with_code_2_and_no_traceback(tmp_path, base):
    def run(text: str):
        command = ["-m", "pipeline", "derive", "-e", str(base), "--set", text, "-o"]
        return subprocess.run(
            [sys.executable, *command, str(tmp_path / "d.yaml")],
            capture_output=True,
            text=True,
            timeout=120,
        )

    bad = run("training.max_steps=-5")
    assert bad.returncode == 2
    assert bad.stderr.startswith("error: ") and len(bad.stderr.strip().splitlines()) == 1
    assert "training.max_steps=-5" in bad.stderr and "Traceback" not in bad.stderr
    assert not (tmp_path / "d.yaml").exists()
    good = run("training.max_steps=500")
    assert good.returncode == 0, good.stderr
    assert config.load(tmp_path / "d.yaml").training.max_steps == 500
