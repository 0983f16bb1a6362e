"""``pipeline.results``: an experiment's runs and curves as DataFrames, on a real finished sweep
and on an experiment nothing has run for; its column dictionary, in its docstring and in
docs/results.md, names every column.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import pytest

import pipeline
from pipeline import config, paths
from pipeline.config.runs import evaluation_runs, tuning_runs
from pipeline.report import reading
from pipeline.report.results import PROBE_STATS
from tests.test_report import copy_root


@pytest.fixture
def at_root(monkeypatch):
    def point(root):
        monkeypatch.setenv("PIPELINE_ROOT", str(root))
        monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)

    return point


def test_a_finished_sweep_reads_as_its_result_files_and_probe_artifacts(tiny_sweep, at_root):
    root, exp = tiny_sweep
    at_root(root)
    runs, curves = pipeline.results(root / "experiments" / "tiny.yaml")

    keys = [s.key for s in evaluation_runs(exp)]
    assert list(runs.columns) == reading.RESULT_COLUMNS
    assert list(runs["run_key"]) == keys
    assert set(runs["status"]) <= {"solved", "unsolved", "diverged"}
    for row in runs.itertuples():
        result = json.loads((root / "results" / "tiny" / f"{row.run_key}.json").read_text())
        assert (row.status, row.run_id, row.test_accuracy, row.steps) == (
            result["status"], result["run_id"], result["test_accuracy"], result["steps"]
        )  # fmt: skip

    assert list(curves.columns) == reading.CURVE_COLUMNS
    assert set(curves["run_key"]) == set(runs.loc[runs["probe_data"], "run_key"]) == set(keys)
    first = curves[curves["run_key"] == keys[0]]
    assert set(first["phase"]) >= {"init", "final"}
    steps_back = list(first.loc[first["phase"] == "init", "k"])
    assert steps_back == sorted(set(steps_back)) and set(
        range(first["distance"].iloc[0] + 1)
    ) <= set(steps_back)  # one row per k, the key step among them
    lstm = curves[curves["model"] == "lstm"]
    assert (
        lstm["c_median"].notna().all()
        and curves.loc[curves["model"] == "rnn", "c_median"].isna().all()
    )


def test_without_the_store_the_runs_read_and_the_curves_are_empty_saying_why(
    tiny_sweep, tmp_path, at_root
):
    source, exp = tiny_sweep
    root = copy_root(source, tmp_path / "root")
    shutil.rmtree(root / "mlruns")
    at_root(root)
    with pytest.warns(UserWarning, match="probe curves not read: no tracking store at sqlite:"):
        runs, curves = pipeline.results(root / "experiments" / "tiny.yaml")
    assert runs["status"].isin(["solved", "unsolved", "diverged"]).all() and len(runs) == 8
    assert curves.empty and list(curves.columns) == reading.CURVE_COLUMNS
    assert not (root / "mlruns").exists()


def test_a_name_reads_the_shipped_file_and_an_untrained_experiment_is_all_planned(
    pipeline_root,
):
    runs, curves = pipeline.results("default", curves=False)
    exp = config.load(paths.experiment_file("default"))
    n_tuning = len(tuning_runs(exp))
    assert n_tuning > 0
    assert len(runs) == len(evaluation_runs(exp)) + n_tuning
    assert list(runs["phase"]).count("tuning") == n_tuning
    assert runs["phase"].iloc[0] == "evaluation" and runs["phase"].iloc[-1] == "tuning"
    assert set(zip(runs["status"], runs["note"], strict=True)) == {
        ("planned", "never started"), ("planned", "waits for its variant's tuning to finish")
    }  # fmt: skip
    assert curves.empty
    assert not (pipeline_root / "mlruns").exists()  # no store was created to read it


def test_importing_the_package_loads_neither_pandas_nor_torch():
    code = (
        "import sys, pipeline; from pipeline import results; "
        "assert callable(results) and results is pipeline.results; "
        "assert not {'pandas', 'torch', 'mlflow'} & set(sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], cwd=paths.SOURCE_ROOT, check=True)


def documented(text: str) -> set[str]:
    return set(re.findall(r"`([a-z0-9_<>]+)`", text))


@pytest.mark.parametrize(
    "text",
    [pipeline.results.__doc__, (paths.SOURCE_ROOT / "docs" / "results.md").read_text()],
    ids=["docstring", "docs/results.md"],
)
def test_the_column_dictionary_names_every_column(text):
    names = documented(text)
    for column in reading.RESULT_COLUMNS + reading.CURVE_COLUMNS:
        match = re.fullmatch(r"probe_(init|final)_(h|c)_(.+)", column)
        mech = re.fullmatch(r"mech_(init|final)_(.+)", column)
        extrapolated = re.fullmatch(r"extrapolation_([a-z_]+)_x[0-9.]+", column)
        if match:
            assert "probe_<phase>_<state>_<stat>" in names and match[3] in names, column
        elif mech:
            assert "mech_<phase>_<measure>" in names, column
            assert mech[2] in text or mech[2].split("_", 2)[-1] in text, column
        elif extrapolated:
            assert "extrapolation_<field>_x<factor>" in names and extrapolated[1] in text, column
        elif column.startswith("c_"):
            assert column in names or "c_..." in text, column
        else:
            assert column in names, column
    assert set(PROBE_STATS) | {"init", "final", "h", "c"} <= names
