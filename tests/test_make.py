"""The Makefile's command line: it refuses a variable it does not take; SET runs the stages on
a derived experiment file.
"""

from __future__ import annotations

import re
import shlex
import subprocess

import pytest

from tests.make import ROOT, defaults, make, sandbox, variables

PY = ".venv/bin/python -m pipeline"


@pytest.fixture
def repo(tmp_path):
    return sandbox(tmp_path)


@pytest.mark.parametrize(
    ("given", "named", "hint"),
    [
        (["training.max_steps=500"], "training.max_steps", 'SET="training.max_steps=500"'),
        (["JOB=3"], "JOB", None),  # a misspelt JOBS
        (["EXP=default", "JOB=3", "seeds=[0]"], "JOB seeds", 'SET="seeds=[0]"'),
    ],
)
def test_a_variable_make_does_not_take_is_refused_naming_it(repo, given, named, hint):
    out = make(repo, "-n", "run-all", *given)
    assert out.returncode == 2
    assert f"command line: {named};" in out.stderr
    assert f"make takes {' '.join(variables())} (" in out.stderr  # and lists those it takes
    assert (hint in out.stderr) if hint else "SET=" not in out.stderr
    assert out.stdout == ""  # before any recipe


def test_every_variable_the_makefile_documents_is_taken(repo):
    values = {"TORCH": "cpu", "PYTHON": "python3", "EXP": "quick"}
    given = [f"{name}={values.get(name, '1')}" for name in variables()]
    out = make(repo, "-n", "help", *given)
    assert out.returncode == 0, out.stderr
    out = make(repo, "-n", "help", "JOBS=3")
    assert out.returncode == 0, out.stderr


def test_every_variable_with_a_default_is_documented_for_the_command_line():
    assert "JOBS" in defaults() and "EXP" in variables()
    assert sorted(set(defaults()) - set(variables())) == []


def test_make_help_lists_every_variable_it_takes(repo):
    out = make(repo, "help")
    assert out.returncode == 0
    listed = out.stdout.split("variables", 1)[1]
    for name in variables():
        assert f"\n  {name}=" in listed, name


def cksum_hex(text: str) -> str:
    """POSIX cksum of ``text``, 8 hex digits: the name Make gives a derived file."""
    out = subprocess.run(["cksum"], input=text, capture_output=True, text=True, check=True)
    return f"{int(out.stdout.split()[0]):08x}"


def test_set_runs_every_stage_on_a_derived_file_named_by_exp_and_set(repo):
    settings = "training.max_steps=500 seeds=[0]"
    out = make(repo, "-n", "run-all", "EXP=default", f"SET={settings}")
    assert out.returncode == 0, out.stderr
    name = f"default-set-{cksum_hex(settings)}"
    derived = f"experiments/{name}.yaml"
    lines = out.stdout.splitlines()
    derive = lines.index(
        f"{PY} derive --experiment experiments/default.yaml --set '{settings}' --output {derived}"
    )
    for stage in ("data", "train", "report"):
        (line,) = [i for i, s in enumerate(lines) if s.startswith(f"{PY} {stage} ")]
        assert f"--experiment {derived}" in lines[line] and line > derive
    assert lines[-1].endswith(f'/reports/{name}/report.html"')


def test_another_set_is_another_file_and_no_set_the_experiment_itself(repo):
    def derived(*args: str) -> list[str]:
        out = make(repo, "-n", "data", *args)
        assert out.returncode == 0, out.stderr
        return re.findall(r"--experiment (\S+)", out.stdout)

    one = derived("EXP=quick", "SET=seeds=[0]")
    assert one == ["experiments/quick.yaml", f"experiments/quick-set-{cksum_hex('seeds=[0]')}.yaml"]
    assert derived("EXP=quick", "SET=seeds=[1]")[1] != one[1]
    assert derived("EXP=quick", "SET=seeds=[0]") == one  # the same settings, the same file
    assert derived("EXP=quick") == ["experiments/quick.yaml"]  # no derive


def test_a_quote_in_set_reaches_the_command_intact(repo):
    settings = "models[0].name='it''s'"  # YAML's doubled quote inside a quoted string
    out = make(repo, "-n", "data", "EXP=quick", f"SET={settings}")
    (line,) = [s for s in out.stdout.splitlines() if " derive " in s]
    argv = shlex.split(line)
    assert argv[argv.index("--set") + 1] == settings


def test_the_derived_files_are_ignored_by_git():
    name = "experiments/default-set-0123abcd.yaml"
    out = subprocess.run(["git", "check-ignore", "-q", name], cwd=ROOT)
    assert out.returncode == 0
    assert (
        subprocess.run(
            ["git", "check-ignore", "-q", "experiments/default.yaml"], cwd=ROOT
        ).returncode
        == 1
    )
