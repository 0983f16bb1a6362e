"""The Ray executor against a real MLflow tracking server on loopback.

The cluster tests start ``mlflow server`` (SQLite backend, served artifacts) and a local Ray with
2 CPUs; they are slow (about a minute each on 2 cores). The whole module is skipped where Ray,
an optional extra, is not installed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from pipeline import config, data, paths
from pipeline.config.runs import RunResult, RunSpec, evaluation_runs, read_result
from pipeline.errors import DataError, SweepError
from pipeline.sweep import phases, ray_executor, worker
from pipeline.tracking import names, store, sweep_runs
from tests.conftest import TINY, write_experiment
from tests.team import stop

ray = pytest.importorskip("ray")

# what a run's result holds that is not an outcome of training: its identity and its timing
NOT_OUTCOMES = {"run_id", "wall_time", names.CODE_VERSION}


def _quiet(*_) -> None:
    pass


@pytest.fixture
def local_ray(tmp_path, monkeypatch):
    """A local Ray with 2 CPUs whose workers stand for other machines: the pipeline's code is
    shipped to them, and their PIPELINE_ROOT is a folder of their own. Yields that folder.
    """
    worker_root = tmp_path / "worker_root"
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        runtime_env={
            "env_vars": {"PIPELINE_ROOT": str(worker_root)},
            "py_modules": [str(paths.SOURCE_ROOT / "pipeline")],
            "excludes": ["__pycache__"],
        },
    )
    try:
        yield worker_root
    finally:
        ray.shutdown()
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _results(root: Path, experiment: str) -> dict[str, dict]:
    """The result files under the pipeline root ``root``, by run key."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PIPELINE_ROOT", str(root))
        folder = paths.results_dir(experiment)
    return {r.run_key: r.model_dump() for r in map(RunResult.read, folder.glob("*/*.json"))}


def _runs_by_key(uri: str, experiment: str) -> dict[str, list]:
    """The sweep's runs by run key, and its parent runs under the key None."""
    client = store.client(uri)
    runs: dict[str, list] = {}
    for run in store.search(client, sweep_runs.experiment_id(client, experiment)):
        runs.setdefault(run.data.tags.get(names.RUN_KEY), []).append(run)
    return runs


def _nested_under_one_parent(runs: dict[str, list]) -> None:
    """One FINISHED parent run, and every run of the sweep (any attempt) nested under it."""
    (parent,) = runs.pop(None)
    assert parent.info.status == "FINISHED"
    for found in runs.values():
        assert {r.data.tags[names.PARENT_RUN] for r in found} == {parent.info.run_id}


# ---- a local Ray against the tracking server -----------------------------------------------


@pytest.mark.slow
def test_ray_cells_match_a_local_run_one_for_one(
    tiny_sweep, tracking_server, local_ray, tmp_path, monkeypatch
):
    local_root, local_exp = tiny_sweep
    local = _results(local_root, local_exp.name)

    driver_root = tmp_path / "driver_root"
    monkeypatch.setenv("PIPELINE_ROOT", str(driver_root))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    exp = config.load(write_experiment(driver_root / "experiments", "tiny", TINY))
    data.run(exp, log=_quiet)
    phases.run(exp, jobs=2, executor="ray", log=_quiet)

    remote = _results(driver_root, exp.name)
    assert sorted(remote) == sorted(local) == sorted(s.key for s in evaluation_runs(exp))
    for key, result in remote.items():
        outcome = {k: v for k, v in result.items() if k not in NOT_OUTCOMES}
        # same seed, same data, one torch thread each: training is bit for bit the same
        assert outcome == {k: v for k, v in local[key].items() if k not in NOT_OUTCOMES}, key

    # the workers had their own filesystem: they wrote the data they lacked, identical to the
    # driver's, and their own result files; the driver wrote its result files from the results
    worker = _results(local_ray, exp.name)
    assert {k: r["run_id"] for k, r in worker.items()} == {
        k: r["run_id"] for k, r in remote.items()
    }
    for spec in evaluation_runs(exp):
        relative = data.folder(exp.name, spec.task, spec.distance, spec.seed).relative_to(
            driver_root
        )
        assert (local_ray / relative / "manifest.json").read_text() == (
            driver_root / relative / "manifest.json"
        ).read_text()
    assert (paths.results_dir(exp.name) / "sweep.json").exists()

    # the tracking server holds one finished run per cell, the one each result file names,
    # nested under the sweep's parent run (the workers got its id with their tags)
    runs = _runs_by_key(tracking_server, exp.name)
    _nested_under_one_parent(runs)
    assert sorted(runs) == sorted(remote)
    for key, found in runs.items():
        assert [r.info.status for r in found] == ["FINISHED"], key
        assert found[0].info.run_id == remote[key]["run_id"]
        assert found[0].data.metrics["test_accuracy"] == remote[key]["test_accuracy"]
    import mlflow.artifacts

    some = remote[evaluation_runs(exp)[0].key]
    served = mlflow.artifacts.download_artifacts(
        run_id=some["run_id"],
        artifact_path="result.json",
        dst_path=str(tmp_path / "download"),
        tracking_uri=tracking_server,
    )
    assert json.loads(Path(served).read_text()) == some  # artifacts went through the server


@pytest.mark.slow
def test_killed_ray_sweep_resumes_without_duplicate_runs(tracking_server, tmp_path, monkeypatch):
    monkeypatch.setenv("PIPELINE_ROOT", str(tmp_path))
    exp_file = write_experiment(tmp_path / "experiments", "killed", TINY)
    exp = config.load(exp_file)
    data.run(exp, log=_quiet)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # a local Ray
    env |= {
        "PIPELINE_ROOT": str(tmp_path),
        "MLFLOW_TRACKING_URI": tracking_server,
        "RAY_USAGE_STATS_ENABLED": "0",
        # the local Ray's workers import the pipeline from the checkout, installed or not
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(paths.SOURCE_ROOT), env.get("PYTHONPATH")])
        ),
    }
    command = [sys.executable, "-m", "pipeline", "train", "-e", str(exp_file), "--executor", "ray"]
    log = tmp_path / "train.log"
    results = paths.results_dir(exp.name)

    with open(log, "w") as out:
        proc = subprocess.Popen(
            command, cwd=paths.SOURCE_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while not list(results.glob("*/*.json")):
            assert proc.poll() is None, f"the sweep ended early:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"no result in time:\n{log.read_text()}"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)  # the driver dies at once: no cancelling, no cleanup
        proc.wait()
    finally:
        stop(proc)  # the local Ray it started, workers included
    at_kill = len(list(results.glob("*/*.json")))
    assert 1 <= at_kill < len(evaluation_runs(exp))  # killed mid-sweep

    resumed = subprocess.run(
        command, cwd=paths.SOURCE_ROOT, env=env, capture_output=True, text=True, timeout=400
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr

    finished = _results(tmp_path, exp.name)
    assert sorted(finished) == sorted(s.key for s in evaluation_runs(exp))
    runs = _runs_by_key(tracking_server, exp.name)
    _nested_under_one_parent(runs)  # the resumed sweep reopened the killed one's parent
    statuses = {key: Counter(r.info.status for r in found) for key, found in runs.items()}
    for spec in evaluation_runs(exp):
        assert statuses[spec.key]["FINISHED"] == 1, (spec.key, statuses[spec.key])
        assert statuses[spec.key]["RUNNING"] == 0, (spec.key, statuses[spec.key])
        (done,) = [r for r in runs[spec.key] if r.info.status == "FINISHED"]
        assert done.info.run_id == finished[spec.key]["run_id"]
    assert json.loads((results / "sweep.json").read_text())["runs"] == {
        k: r["run_id"] for k, r in finished.items()
    }


# ---- the store check and the data a node lacks (no cluster needed) --------------------------


@pytest.mark.parametrize(
    "uri",
    ["sqlite:////srv/mlruns/mlflow.db", "http://127.0.0.1:5000", "http://localhost:5000"],
)
@pytest.mark.parametrize("address", ["10.1.2.3:6379", "ray://head.example:10001"])
def test_a_remote_cluster_refuses_a_store_only_this_machine_reaches(uri, address):
    with pytest.raises(SweepError) as refused:
        ray_executor.check_store(uri, address)
    message = str(refused.value)
    assert uri in message and address in message
    assert "make mlflow-server" in message and "MLFLOW_TRACKING_URI=http://" in message


@pytest.mark.parametrize(
    ("uri", "address"),
    [
        ("sqlite:////srv/mlruns/mlflow.db", None),  # a local Ray
        ("sqlite:////srv/mlruns/mlflow.db", "local"),
        ("sqlite:////srv/mlruns/mlflow.db", "127.0.0.1:6379"),  # a head on this machine
        ("http://store.example:5000", "10.1.2.3:6379"),
        ("postgresql://mlflow@db.example/mlflow", "ray://head.example:10001"),
    ],
)
def test_a_store_the_cluster_can_share_is_accepted(uri, address, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    ray_executor.check_store(uri, address)


def test_the_store_check_reads_ray_address_and_hides_passwords(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "head.example:6379")
    with pytest.raises(SweepError) as refused:
        ray_executor.check_store("postgresql://mlflow:s3cret@localhost/mlflow")
    assert "s3cret" not in str(refused.value) and "RAY_ADDRESS=head.example:6379" in str(
        refused.value
    )


def _one_cell(root: Path) -> RunSpec:
    exp = config.load(write_experiment(root / "experiments", "tiny", TINY))
    return evaluation_runs(exp)[0]


@pytest.mark.slow
def test_a_node_without_the_data_writes_the_drivers_bytes(tmp_path, monkeypatch):
    monkeypatch.setenv("PIPELINE_ROOT", str(tmp_path / "driver"))
    spec = _one_cell(tmp_path / "driver")
    data.run(config.load(tmp_path / "driver" / "experiments" / "tiny.yaml"), log=_quiet)
    expected = ray_executor._manifest(spec)
    driver_folder = data.folder(spec.experiment, spec.task, spec.distance, spec.seed)

    monkeypatch.setenv("PIPELINE_ROOT", str(tmp_path / "node"))
    node_folder = data.folder(spec.experiment, spec.task, spec.distance, spec.seed)
    assert not node_folder.exists()
    ray_executor._stage_data(spec, expected)
    for name in ("manifest.json", "train.npz", "val.npz", "test.npz"):
        assert (node_folder / name).read_bytes() == (driver_folder / name).read_bytes(), name

    tampered = json.loads(json.dumps(expected))
    tampered["files"]["train"]["sha256"] = "0" * 64
    with pytest.raises(DataError, match="differs from the driver's"):
        ray_executor._stage_data(spec, tampered)


@pytest.mark.slow
def test_a_tuning_sweep_runs_both_phases_on_ray(tracking_server, local_ray, tmp_path, monkeypatch):
    """Grid points are ordinary runs: on Ray too, tuning runs first, then evaluation runs with
    the choice the driver makes from the returned results.
    """
    from pipeline.config import runs, tuning

    driver_root = tmp_path / "driver_root"
    monkeypatch.setenv("PIPELINE_ROOT", str(driver_root))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    settings = {
        **TINY,
        "tasks": [{**TINY["tasks"][0], "distances": [6]}],
        "seeds": [0],
        "training": {**TINY["training"], "max_steps": 40},
        "tuning": {"grid": {"learning_rate": [1e-3, 3e-2]}, "seeds": [5]},
    }
    exp = config.load(write_experiment(driver_root / "experiments", "tuned", settings))
    data.run(exp, log=_quiet)
    progress = phases.run(exp, jobs=2, executor="ray", log=_quiet)
    tuned = runs.tuning_runs(exp)
    assert progress.failed == 0 and progress.done == len(tuned) + len(evaluation_runs(exp))
    results = {s.key: read_result(s) for s in tuned}
    choice, _, missing = tuning.select(exp, results)
    assert not missing
    server = _runs_by_key(tracking_server, exp.name)
    for spec in [*tuned, *runs.evaluation_runs(exp, choice)]:
        result = read_result(spec)
        assert result.config_hash == spec.config_hash, spec.key
        assert [r.info.status for r in server[spec.key]] == ["FINISHED"], spec.key


def test_a_retried_task_adopts_its_finished_run_rather_than_training_it_twice(
    tiny_sweep, monkeypatch
):
    """Ray reruns a task whose node died; if the run had already finished in the store, the
    retry returns that run's result and starts no second MLflow run.
    """
    root, exp = tiny_sweep
    monkeypatch.setenv("PIPELINE_ROOT", str(root))
    uri = f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"
    client = store.client(uri)
    exp_id = client.get_experiment_by_name(names.mlflow_name(exp.name)).experiment_id
    spec = evaluation_runs(exp)[0]
    saved = read_result(spec)
    version = saved.code_version
    before = len(store.search(client, exp_id))
    import torch

    threads = torch.get_num_threads()
    setup = worker.WorkerSetup(uri, exp_id, {names.CODE_VERSION: version}, threads)
    # this process's worker set-up, undone after
    monkeypatch.setattr(worker, "_process", worker._Process())
    result = ray_executor._ray_task(spec, setup, None)  # the task's body, as a retry runs it
    assert result == saved
    assert len(store.search(client, exp_id)) == before  # nothing trained
    from pipeline.sweep import resume

    assert resume.already_finished(client, exp_id, spec, "another version") is None
