"""The Makefile's command line: it refuses a variable it does not take."""

from __future__ import annotations

import pytest

from tests.make import defaults, make, sandbox, variables


@pytest.fixture
def repo(tmp_path):
    return sandbox(tmp_path)


@pytest.mark.parametrize(
    ("given", "named"),
    [
        (["training.max_steps=500"], "training.max_steps"),  # a setting meant for an experiment
        (["JOB=3"], "JOB"),  # a misspelt JOBS
        (["EXP=default", "JOB=3", "trainin.seed=1"], "JOB trainin.seed"),
    ],
)
def test_a_variable_make_does_not_take_is_refused_naming_it(repo, given, named):
    out = make(repo, "-n", "run-all", *given)
    assert out.returncode == 2
    assert f"command line: {named};" in out.stderr
    assert "make takes EXP JOBS" in out.stderr  # and lists the ones it takes
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
