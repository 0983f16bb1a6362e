"""The Makefile's command line: it refuses a variable it does not take; SET runs the stages on
a derived experiment file; clean with EXP removes that experiment's folders only, and plain
clean says that it removes everything, the tracking store included.
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


def outputs(repo, *names: str) -> None:
    """Each experiment's folders, the tracking store and a committed record, as runs leave them."""
    for name in names:
        for folder in ("data", "results", "reports"):
            (repo / folder / name).mkdir(parents=True)
            (repo / folder / name / "file").write_text(name)
    for folder in ("mlruns", "reports"):
        (repo / folder).mkdir(exist_ok=True)
    (repo / "mlruns" / "mlflow.db").write_text("runs")
    (repo / "reports" / "README.md").write_text("a committed record")


def present(repo) -> set[str]:
    """The files of the outputs' folders and experiments/ (not its subfolders) in ``repo``."""
    found = {str(p.relative_to(repo)) for p in (repo / "experiments").glob("*.yaml")}
    for folder in ("data", "results", "reports", "mlruns"):
        found |= {str(p.relative_to(repo)) for p in (repo / folder).rglob("*") if p.is_file()}
    return found


def test_clean_with_exp_removes_that_experiments_folders_and_keeps_the_tracking_store(repo):
    outputs(repo, "quick", "default")
    out = make(repo, "clean", "EXP=quick")
    assert out.returncode == 0, out.stderr
    assert not any(
        p.startswith(("data/quick", "results/quick", "reports/quick")) for p in present(repo)
    )
    assert {"data/default/file", "results/default/file", "reports/default/file"} <= present(repo)
    assert {"mlruns/mlflow.db", "reports/README.md"} <= present(repo)
    assert "its runs stay in the tracking store mlruns/" in out.stdout


def test_clean_with_exp_in_the_environment_is_just_as_narrow(repo):
    outputs(repo, "quick", "default")
    out = make(repo, "clean", env={"EXP": "quick"})
    assert out.returncode == 0, out.stderr
    assert "data/default/file" in present(repo) and "data/quick/file" not in present(repo)
    assert "mlruns/mlflow.db" in present(repo)


def test_clean_with_set_removes_the_derived_experiment_and_its_file(repo):
    name = f"quick-set-{cksum_hex('seeds=[0]')}"
    outputs(repo, name, "quick")
    (repo / "experiments" / f"{name}.yaml").write_text("derived")
    out = make(repo, "clean", "EXP=quick", "SET=seeds=[0]")
    assert out.returncode == 0, out.stderr
    left = present(repo)
    assert f"experiments/{name}.yaml" not in left and f"data/{name}/file" not in left
    assert {"data/quick/file", "experiments/quick.yaml", "mlruns/mlflow.db"} <= left


def test_plain_clean_removes_every_output_and_the_tracking_store_and_says_so(repo):
    shipped = present(repo)  # experiments/*.yaml
    outputs(repo, "quick", "default-set-0123abcd")
    (repo / "experiments" / "default-set-0123abcd.yaml").write_text("derived")
    out = make(repo, "clean")
    assert out.returncode == 0, out.stderr
    assert present(repo) == shipped | {"reports/README.md"}
    assert "the tracking store mlruns/ with all its runs" in out.stdout
    (line,) = [s for s in make(repo, "help").stdout.splitlines() if s.startswith("  clean ")]
    assert "mlruns/" in line and "EXP=name" in line


@pytest.mark.parametrize("exp", ["", "..", "a b"])
def test_clean_refuses_an_exp_that_names_no_experiment(repo, exp):
    outputs(repo, "quick")
    before = present(repo)
    out = make(repo, "clean", f"EXP={exp}")
    assert out.returncode == 2
    assert "names no experiment to clean" in out.stderr
    assert present(repo) == before


def test_clean_never_removes_a_file_of_that_name(repo):
    outputs(repo)
    make(repo, "clean", "EXP=README.md")  # rm of reports/README.md/ fails or does nothing
    assert "reports/README.md" in present(repo)
