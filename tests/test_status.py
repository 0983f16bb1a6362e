"""Where each planned run stands (``pipeline.status``): classified from result files made up for
the test and MLflow attempts made up alike (fast), then ``python -m pipeline status`` and
``make status`` on a real finished sweep, its copy damaged, and a store that is not there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipeline import config, paths, stages, status
from pipeline.config.runs import evaluation_runs, result_path, tuning_runs
from pipeline.tracking import names
from tests.conftest import TINY, synthetic_result, write_experiment
from tests.make import make, sandbox
from tests.test_report import copy_root, mlflow_client

VERSION = "test"  # synthetic_result's code version


def attempt(spec, state: str, start: int, error: str | None = None, params: dict | None = None):
    """An MLflow run of ``spec`` as ``search_runs`` returns one: what ``status`` reads of it."""
    tags = {names.RUN_KEY: spec.key} | ({names.ERROR: error} if error else {})
    return SimpleNamespace(
        info=SimpleNamespace(run_id=f"{spec.key}@{start}", status=state, start_time=start),
        data=SimpleNamespace(tags=tags, params=params or {}),
    )


def write_result(spec, **fields) -> None:
    path = result_path(spec)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(synthetic_result(spec, **fields).model_dump_json())


@pytest.fixture
def tiny(pipeline_root) -> config.Experiment:
    return config.load(write_experiment(pipeline_root / "experiments", "tiny", TINY))


def by_key(found: status.Survey) -> dict[str, status.Standing]:
    return {s.spec.key: s for s in found.runs}


# ---- the classification -------------------------------------------------------------------


def test_each_kind_of_run_gets_its_status_and_reason(tiny, pipeline_root):
    specs = evaluation_runs(tiny)
    done, other_settings, other_code, failed, killed, unreadable, never = specs[:7]
    write_result(done, status="unsolved")
    write_result(other_settings, config_hash="0123456789ab")
    write_result(other_code, code_version="older")
    write_result(failed, config_hash="0123456789ab")  # stale, but retrained since, and failed
    result_path(unreadable).write_text("{not json")
    logged = {k: str(v) for k, v in other_settings.params().items()} | {"max_steps": "30"}
    runs = [
        attempt(other_settings, "FINISHED", 1, params=logged),
        attempt(failed, "FINISHED", 1),
        attempt(failed, "FAILED", 2, error="RuntimeError('out of memory')\nTraceback ..."),
        attempt(killed, "FAILED", 1, error="an older failure"),
        attempt(killed, "KILLED", 2),
    ]
    runs[0].info.run_id = f"id-{other_settings.key}"  # the run that wrote the result file
    found = by_key(status.survey(tiny, runs, VERSION))

    assert found[done.key].status == "unsolved" and found[done.key].result is not None
    assert found[other_settings.key].status == "stale"
    assert found[other_settings.key].note == "settings changed: max_steps 30 -> 60"
    assert found[other_code.key].status == "stale"
    assert found[other_code.key].note == "the outcome code changed (code version older -> test)"
    assert (found[failed.key].status, found[failed.key].note) == (
        "failed", "RuntimeError('out of memory')"
    )  # fmt: skip
    assert found[failed.key].run_id == f"{failed.key}@2"
    assert (found[killed.key].status, found[killed.key].note) == (
        "missing", "last attempt KILLED without a result file"
    )  # fmt: skip
    assert (found[unreadable.key].status, found[unreadable.key].note) == (
        "missing", "unreadable result file"
    )  # fmt: skip
    assert (found[never.key].status, found[never.key].note) == ("planned", "never started")


def test_without_a_code_version_a_result_of_other_code_still_counts_as_finished(tiny):
    spec = evaluation_runs(tiny)[0]
    write_result(spec, code_version="older")
    assert status.stand(spec, [], None).status == "solved"
    assert status.stand(spec, [], "newer").status == "stale"


def test_a_changed_configuration_without_its_mlflow_run_names_the_hashes(tiny):
    spec = evaluation_runs(tiny)[0]
    write_result(spec, config_hash="0123456789ab")
    standing = status.stand(spec, None, VERSION)
    assert standing.status == "stale"
    assert standing.note == (
        f"configuration changed (config hash 0123456789ab -> {spec.config_hash}; MLflow not "
        "read, so which setting is unknown)"
    )
    assert status.stand(spec, [], VERSION).note.endswith("its MLflow run is gone, so which "
                                                         "setting is unknown)")  # fmt: skip


def test_unread_mlflow_leaves_a_run_without_a_result_missing_not_planned(tiny):
    spec = evaluation_runs(tiny)[0]
    assert status.stand(spec, None).status == "missing"
    assert status.stand(spec, []).status == "planned"


def test_evaluation_runs_wait_for_their_variants_tuning(pipeline_root):
    settings = TINY | {"tuning": {"grid": {"learning_rate": [0.003, 0.01]}, "seeds": [7]}}
    exp = config.load(write_experiment(pipeline_root / "experiments", "tuned", settings))
    rnn_tuning = [s for s in tuning_runs(exp) if s.model.name == "rnn"]
    for spec in rnn_tuning:
        write_result(spec, status="solved", steps_to_solve=40)
    found = status.survey(exp, [], VERSION)
    assert [s.status for s in found.tuning] == ["solved", "solved", "planned", "planned"]
    rnn = [s for s in found.evaluation if s.spec.model.name == "rnn"]
    lstm = [s for s in found.evaluation if s.spec.model.name == "lstm"]
    assert {(s.status, s.note) for s in rnn} == {("planned", "never started")}
    assert {s.spec.grid for s in rnn} == {(("learning_rate", 0.003),)}  # the chosen point
    assert {(s.status, s.note) for s in lstm} == {("planned", status.WAITING)}
    assert [sel.model for sel in found.selections] == ["rnn"]


def test_the_status_text_counts_per_status_and_variant_and_groups_the_reasons(tiny):
    specs = evaluation_runs(tiny)
    for spec in specs[:5]:
        write_result(spec, status="solved" if spec.model.name == "rnn" else "diverged")
    runs = [attempt(spec, "FAILED", 1, error="ValueError('x')") for spec in specs[5:7]]
    text = status.text(status.survey(tiny, runs, VERSION, "the source"), Path("t.yaml"), "test")
    lines = text.splitlines()
    assert lines[:2] == [
        "tiny (t.yaml): 8 planned runs (8 evaluation, 0 tuning), code version test",
        "the source",
    ]
    assert lines[3].split() == ["status", "evaluation", "all"]
    assert lines[4].split() == ["finished", "5", "5", "(3", "solved,", "2", "diverged)"]
    assert [line.split()[:2] for line in lines[5:9]] == [
        ["stale", "0"], ["failed", "2"], ["missing", "0"], ["planned", "1"]
    ]  # fmt: skip
    assert lines[10].split() == ["task", "model", "runs", "finished", "stale", "failed",
                                 "missing", "planned"]  # fmt: skip
    assert lines[11].split() == ["recall", "rnn", "4", "3", "0", "1", "0", "0"]
    assert lines[12].split() == ["recall", "lstm", "4", "2", "0", "1", "0", "1"]
    failed = lines.index("failed (2): ValueError('x')")
    assert lines[failed + 1].strip() == f"{specs[5].key}, {specs[6].key}"
    assert "planned (1): never started" in lines


def test_a_long_list_of_runs_is_cut_short(tiny):
    text = status.text(status.survey(tiny, [], VERSION), Path("t.yaml"), "test", listed=3)
    assert text.endswith(", ... and 5 more")


def test_no_store_means_no_attempt_and_none_is_created(tiny, pipeline_root):
    runs, source = status.attempts(tiny)
    assert runs == [] and source.startswith("no tracking store at sqlite:")
    assert not paths.mlruns_dir().exists()


def test_a_store_that_does_not_answer_is_not_read(tiny, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")  # discard: nothing listens
    runs, source = status.attempts(tiny)
    assert runs is None and source.startswith("tracking store not read (")


# ---- on a real sweep ------------------------------------------------------------------------


def run_status(root: Path, experiment_file: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PIPELINE_ROOT": str(root)}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(
        [sys.executable, "-m", "pipeline", "status", "-e", str(experiment_file)],
        cwd=paths.SOURCE_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_status_of_a_finished_sweep_then_of_a_changed_and_damaged_copy(tiny_sweep, tmp_path):
    source, exp = tiny_sweep
    done = run_status(source, source / "experiments" / "tiny.yaml")
    assert done.returncode == 0, done.stderr
    assert f"code version {stages.code_version()}" in done.stdout.splitlines()[0]
    counts = {line.split()[0]: line.split()[1:3] for line in done.stdout.splitlines()[3:9]}
    assert counts["finished"] == ["8", "8"] and counts["planned"] == ["0", "0"]
    assert "MLflow experiment 'long-gap/tiny' in sqlite:" in done.stdout

    root = copy_root(source, tmp_path / "root")
    first, second = [s.key for s in evaluation_runs(exp)][:2]
    (root / "results" / "tiny" / f"{second}.json").unlink()
    client = mlflow_client(root)
    exp_id = client.get_experiment_by_name(names.mlflow_name("tiny")).experiment_id
    failure = client.create_run(exp_id, tags={names.RUN_KEY: second})
    client.set_tag(failure.info.run_id, names.ERROR, "RuntimeError('disk full')")
    client.set_terminated(failure.info.run_id, "FAILED")
    changed = TINY | {"training": TINY["training"] | {"max_steps": 80}}
    experiment_file = write_experiment(tmp_path / "changed", "tiny", changed)

    done = run_status(root, experiment_file)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    stale = lines.index("stale (7): settings changed: max_steps 60 -> 80")
    assert first in lines[stale + 1] and second not in done.stdout.split("failed (1)")[0]
    assert lines[lines.index("failed (1): RuntimeError('disk full')") + 1].strip() == second
    result = json.loads((root / "results" / "tiny" / f"{first}.json").read_text())
    assert result["config_hash"] != evaluation_runs(config.load(experiment_file))[0].config_hash


def test_make_status_runs_the_command_on_exp(tmp_path):
    repo = sandbox(tmp_path)
    out = make(repo, "-n", "status", "EXP=quick")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines()[-1] == (
        ".venv/bin/python -m pipeline status --experiment experiments/quick.yaml"
    )
    out = make(repo, "status", "EXP=nowhere")
    assert out.returncode == 2 and "no experiment file experiments/nowhere.yaml" in out.stderr
