"""Interruption and resume, bad input, parallel writers: nothing lost, nothing doubled."""

from __future__ import annotations

import errno
import json
import os
import random
import re
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
import torch

from pipeline import config, data, paths
from pipeline.config.runs import evaluation_runs
from pipeline.errors import ConfigError, DataError, SweepError, TrackingError, WeightsError
from pipeline.sweep import phases
from pipeline.tracking import names, store, sweep_runs
from pipeline.train import saved
from tests.conftest import TINY, pipeline_cli, write_experiment
from tests.team import LostReplies, free_port

QUIET = {"log": lambda *_: None}


def _small(**training) -> dict:
    return {**TINY, "seeds": [0], "training": {**TINY["training"], **training}}


def _runs(exp_name: str, status: str | None = None, parents: bool = False) -> list:
    """The sweep's runs (with ``parents``: its parent runs instead) with ``status``."""
    client = store.client()
    exp_id = sweep_runs.experiment_id(client, exp_name)
    found = store.search(client, exp_id, f"attributes.status = '{status}'" if status else "")
    return [r for r in found if sweep_runs.is_parent(r) == parents]


# ---- interruption and resume ------------------------------------------------------------------


def _check_invariants(exp: config.Experiment, complete: bool) -> None:
    """At most one FINISHED run per run key; every result file names a FINISHED run of its key;
    no result file without one. With ``complete``: exactly one each, and nothing RUNNING.
    """
    finished = _runs(exp.name, "FINISHED")
    per_key = Counter(r.data.tags[names.RUN_KEY] for r in finished)
    assert all(n == 1 for n in per_key.values()), per_key
    by_id = {r.info.run_id: r.data.tags[names.RUN_KEY] for r in finished}
    for spec in evaluation_runs(exp):
        path = paths.result_file(exp.name, spec.key)
        if path.exists():
            result = json.loads(path.read_text())  # complete JSON: written atomically
            assert by_id.get(result["run_id"]) == spec.key
        elif complete:
            pytest.fail(f"no result file for {spec.key}")
    if complete:
        assert set(per_key) == {s.key for s in evaluation_runs(exp)}
        assert not _runs(exp.name, "RUNNING") and not _runs(exp.name, "RUNNING", parents=True)
        (parent,) = _runs(exp.name, parents=True)  # one, reused by every sweep of this code
        assert parent.info.status == "FINISHED"
        assert {r.data.tags.get(names.PARENT_RUN) for r in finished} == {parent.info.run_id}


def _group_ended(group: int, within: float = 10.0) -> bool:
    """Whether every process of the sweep's session (its workers, the fork server) has ended;
    waits up to ``within`` seconds (a hang detector, not a speed claim).
    """
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


@pytest.mark.slow
def test_killed_sweeps_resume_with_nothing_lost_or_doubled(pipeline_root):
    settings = {**TINY, "training": {**TINY["training"], "max_steps": 200, "solved_accuracy": 1.0}}
    path = write_experiment(pipeline_root / "experiments", "killme", settings)
    exp = config.load(path)
    data.run(exp, **QUIET)
    rng = random.Random(7)
    for how in ("SIGINT", "SIGKILL"):  # each signal once, at a random moment
        proc = pipeline_cli(
            "train", "-e", str(path), "--jobs", "2", root=pipeline_root, start_new_session=True
        )
        time.sleep(rng.uniform(6, 14))  # imports take ~5 s: land in start-up or mid-training
        if how == "SIGINT":  # Ctrl-C reaches the whole foreground process group
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.kill()  # the sweep's own process only; its workers must die with it
        try:
            _, err = proc.communicate(timeout=60)  # a hang detector, not a speed claim
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            pytest.fail(f"the sweep did not stop after {how}")
        if how == "SIGINT" and proc.returncode == 130:
            assert "resume" in err
            # interrupted: the parent run ends KILLED (a SIGKILL leaves it to the next sweep)
            for parent in _runs(exp.name, parents=True):
                assert parent.info.status == "KILLED"
                assert "Stopped: interrupted" in parent.data.tags[names.NOTE]
        assert _group_ended(proc.pid), f"a worker outlived the sweep after {how}"
        _check_invariants(exp, complete=False)
        assert len(_runs(exp.name, parents=True)) <= 1
    final = pipeline_cli("train", "-e", str(path), "--jobs", "2", root=pipeline_root)
    _, err = final.communicate(timeout=600)
    assert final.returncode == 0, err
    _check_invariants(exp, complete=True)
    stale = [r for r in _runs(exp.name) if r.info.status in ("KILLED", "FAILED")]
    assert all(names.RUN_KEY in r.data.tags for r in stale)  # closed, not left RUNNING
    (parent,) = _runs(exp.name, parents=True)  # every attempt nests under the one parent
    assert {r.data.tags[names.PARENT_RUN] for r in stale} <= {parent.info.run_id}


@pytest.mark.slow
def test_stale_running_runs_are_closed_and_retrained(pipeline_root):
    exp = config.load(write_experiment(pipeline_root / "experiments", "stale", _small()))
    data.run(exp, **QUIET)
    client = store.connect()
    exp_id = sweep_runs.experiment_id(client, exp.name)
    spec = evaluation_runs(exp)[0]
    ghost = client.create_run(exp_id, tags={names.RUN_KEY: spec.key})  # as if killed mid-run
    phases.run(exp, jobs=1, **QUIET)
    assert client.get_run(ghost.info.run_id).info.status == "KILLED"
    _check_invariants(exp, complete=True)


@pytest.mark.slow
def test_finished_run_without_result_file_is_adopted_not_retrained(pipeline_root):
    exp = config.load(write_experiment(pipeline_root / "experiments", "adopt", _small()))
    data.run(exp, **QUIET)
    phases.run(exp, jobs=1, **QUIET)
    lost = paths.result_file(exp.name, evaluation_runs(exp)[0].key)
    run_id = json.loads(lost.read_text())["run_id"]
    lost.unlink()  # killed after FINISHED, before the rename
    phases.run(exp, jobs=1, **QUIET)
    assert json.loads(lost.read_text())["run_id"] == run_id
    _check_invariants(exp, complete=True)


def test_every_write_that_arrives_twice_is_recorded_once(
    pipeline_root, tracking_server, monkeypatch
):
    """A server that carried out a request but died before it answered: the client sends the
    request again. Every write a sweep makes arriving twice leaves what one arrival leaves: one
    FINISHED run per run key, one parent, one logged model per run, one input per dataset split,
    one value per metric and step, nothing RUNNING; the duplicate runs are ended and deleted.
    """
    from mlflow.entities import LoggedModelStatus, ViewType

    settings = {**_small(), "tasks": [{**TINY["tasks"][0], "distances": [6]}]}
    exp = config.load(write_experiment(pipeline_root / "experiments", "twice", settings))
    data.run(exp, **QUIET)
    proxy = LostReplies(tracking_server)
    try:
        monkeypatch.setenv("MLFLOW_TRACKING_URI", proxy.uri)
        phases.run(exp, jobs=1, **QUIET)
    finally:
        proxy.close()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", tracking_server)
    # the fault met every kind of write that adds something
    for endpoint in ["runs/create", "runs/log-batch", "runs/log-inputs", "runs/outputs",
                     "logged-models", "artifacts"]:  # fmt: skip
        assert any(k.endswith(endpoint) for k in proxy.lost), (endpoint, proxy.lost)
    _check_invariants(exp, complete=True)
    client = store.client()
    exp_id = sweep_runs.experiment_id(client, exp.name)
    deleted = client.search_runs([exp_id], run_view_type=ViewType.DELETED_ONLY)
    assert (
        len(deleted)
        == proxy.lost["POST /api/2.0/mlflow/runs/create"]
        == len(evaluation_runs(exp)) + 1
    )
    assert {r.info.status for r in deleted} == {"KILLED"}
    for run in _runs(exp.name, "FINISHED"):
        key = run.data.tags[names.RUN_KEY]
        models = client.search_logged_models([exp_id], f"source_run_id = '{run.info.run_id}'")
        assert [m.status for m in models] == [LoggedModelStatus.READY], key
        assert [o.model_id for o in run.outputs.model_outputs] == [models[0].model_id], key
        splits = sorted(i.tags[0].value for i in run.inputs.dataset_inputs)
        assert splits == ["testing", "training", "validation"], (key, splits)
        for metric in ("val_accuracy", "train_loss"):
            steps = [m.step for m in client.get_metric_history(run.info.run_id, metric)]
            assert steps and len(steps) == len(set(steps)), (key, metric, steps)


def test_partial_data_folder_is_not_taken_for_finished(pipeline_root):
    exp = config.load(write_experiment(pipeline_root / "experiments", "partial", _small()))
    task = exp.tasks[0]
    target = data.folder(exp.name, task, 6, 0)
    partial = target.with_name(f".{target.name}.tmp999")
    partial.mkdir(parents=True)
    (partial / "train.npz").write_bytes(b"half")
    with pytest.raises(DataError, match="manifest.json"):
        data.verify(exp)
    data.run(exp, **QUIET)
    assert not partial.exists()
    data.verify(exp)


# ---- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("section", "field", "value"),
    [
        ("training", "diverge_loss_factor", 0.5),
        ("training", "log_every", 0),
        ("training", "optimizer", "adamw"),
        ("probe", "every_evals", -1),
        ("probe", "batch_size", 10_000),
        ("data", "n_train", 0),
    ],
)
def test_later_fields_are_validated(tmp_path, section, field, value):
    settings = _small()
    settings[section] = {**settings.get(section, {}), field: value}
    path = write_experiment(tmp_path, "bad", settings)
    with pytest.raises(ConfigError) as info:
        config.load(path)
    assert str(path) in str(info.value) and f"{section}.{field}" in str(info.value)


@pytest.mark.parametrize("damage", ["truncate", "alter", "delete"])
@pytest.mark.slow
def test_bad_data_file_stops_the_sweep_before_any_run(pipeline_root, damage):
    exp = config.load(write_experiment(pipeline_root / "experiments", "baddata", _small()))
    data.run(exp, **QUIET)
    victim = data.folder(exp.name, exp.tasks[0], 8, 0) / "val.npz"
    blob = victim.read_bytes()
    if damage == "truncate":
        victim.write_bytes(blob[: len(blob) // 2])
    elif damage == "alter":
        victim.write_bytes(blob[:-1] + bytes([blob[-1] ^ 1]))
    else:
        victim.unlink()
    with pytest.raises(DataError, match=re.escape(str(victim))):
        phases.run(exp, jobs=1, **QUIET)
    assert not _runs(exp.name) and not _runs(exp.name, parents=True)  # nothing was started
    assert not paths.results_dir(exp.name).joinpath("sweep.json").exists()


@pytest.mark.parametrize("uri", ["http://127.0.0.1:{port}", "no-scheme-here", "file:///tmp/x"])
@pytest.mark.slow
def test_bad_tracking_uri_fails_fast_before_training(pipeline_root, monkeypatch, uri):
    uri = uri.format(port=free_port())
    path = write_experiment(pipeline_root / "experiments", "nouri", _small())
    data.run(config.load(path), **QUIET)
    proc = pipeline_cli(
        "train",
        "-e",
        str(path),
        "--jobs",
        "1",
        root=pipeline_root,
        env={"MLFLOW_TRACKING_URI": uri},
    )
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert uri in err and "error:" in err
    assert not paths.results_dir("nouri").exists()
    with pytest.raises(TrackingError, match="MLFLOW_TRACKING_URI|unreachable"):
        store.connect(uri)


@pytest.mark.slow
def test_disk_full_result_is_not_recorded_as_finished(pipeline_root, monkeypatch):
    exp = config.load(write_experiment(pipeline_root / "experiments", "full", _small()))
    data.run(exp, **QUIET)

    def no_room(path, text):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

    monkeypatch.setattr(paths, "stage_text", no_room)
    with pytest.raises(SweepError, match="No space left"):
        phases.run(exp, jobs=1, **QUIET)
    assert not _runs(exp.name, "FINISHED")
    assert {r.info.status for r in _runs(exp.name)} == {"FAILED"}
    (parent,) = _runs(exp.name, parents=True)
    assert parent.info.status == "FAILED" and "runs failed" in parent.data.tags[names.NOTE]
    assert not any(paths.result_file(exp.name, s.key).exists() for s in evaluation_runs(exp))


class _Payload:
    """Unpickling this would run code: it must never be unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_weights_that_are_not_a_state_dict_are_refused(tmp_path):
    marker = tmp_path / "code-ran"
    evil = tmp_path / "evil.pt"
    torch.save({"w": _Payload(marker)}, evil)
    with pytest.raises(WeightsError, match=re.escape(str(evil))):
        saved.load_weights(evil)
    assert not marker.exists()
    plain = tmp_path / "list.pt"
    torch.save([torch.zeros(2)], plain)
    with pytest.raises(WeightsError, match="not a state dict"):
        saved.load_weights(plain)
    good = tmp_path / "good.pt"
    torch.save({"w": torch.ones(3)}, good)
    assert torch.equal(saved.load_weights(good)["w"], torch.ones(3))


# ---- concurrency ------------------------------------------------------------------------------


@pytest.mark.slow
def test_four_workers_on_one_sqlite_store_lose_nothing(pipeline_root):
    settings = {**TINY, "training": {**TINY["training"], "max_steps": 40, "solved_accuracy": 1.0}}
    exp = config.load(write_experiment(pipeline_root / "experiments", "crowd", settings))
    data.run(exp, **QUIET)
    progress = phases.run(exp, jobs=4, **QUIET)  # 4 writers on 2 cores: contention on purpose
    assert progress.failed == 0
    _check_invariants(exp, complete=True)
    client = store.client()
    for run in _runs(exp.name, "FINISHED"):
        spec = next(s for s in evaluation_runs(exp) if s.key == run.data.tags[names.RUN_KEY])
        assert len(run.data.params) == len(spec.params())
        steps = json.loads(paths.result_file(exp.name, spec.key).read_text())["steps"]
        val = client.get_metric_history(run.info.run_id, "val_accuracy")
        assert len(val) == steps // spec.training.eval_every
        losses = client.get_metric_history(run.info.run_id, "train_loss")
        assert len(losses) == steps // spec.training.log_every
