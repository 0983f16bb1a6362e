"""Shared fixtures: temporary pipeline roots (data, results, reports and a real SQLite MLflow
store under a temporary folder), one small real sweep that several test modules read, and a real
tracking server on loopback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline import config
from tests.team import free_port, stop, wait_healthy

TINY = {
    # distance 6 is the shortest whose 2048 sequences leave enough unseen by 512 for validation
    # and test (config: data.held_out_problem)
    "tasks": [{"task": "recall", "distances": [6, 8], "n_keys": 4, "n_filler": 8}],
    "models": [
        {"name": "rnn", "cell": "rnn"},
        {"name": "lstm", "cell": "lstm", "forget_bias": 2.0},
    ],
    "seeds": [0, 1],
    "hidden_size": 16,
    "training": {"max_steps": 60, "eval_every": 20, "log_every": 10, "solved_accuracy": 0.99},
    "data": {"n_train": 512, "n_val": 128, "n_test": 128},
    "probe": {"batch_size": 32, "every_evals": 1},
}


def write_experiment(folder: Path, name: str, settings: dict) -> Path:
    """Write ``settings`` as ``folder/<name>.yaml`` and return its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return path


@pytest.fixture
def pipeline_root(tmp_path, monkeypatch) -> Path:
    """A fresh PIPELINE_ROOT (and the default SQLite store under it) for one test."""
    monkeypatch.setenv("PIPELINE_ROOT", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tmp_path


@pytest.fixture(scope="session")
def tiny_sweep(tmp_path_factory) -> tuple[Path, config.Experiment]:
    """A finished real sweep of TINY (8 runs) in its own root; returns (root, experiment).

    Read-only for the tests that use it: copy the root before changing anything.
    """
    from pipeline import data
    from pipeline.sweep import phases

    root = tmp_path_factory.mktemp("tiny_root")
    saved = os.environ.get("PIPELINE_ROOT")
    os.environ["PIPELINE_ROOT"] = str(root)
    try:
        exp = config.load(write_experiment(root / "experiments", "tiny", TINY))
        data.run(exp, log=lambda *_: None)
        phases.run(exp, jobs=2, log=lambda *_: None)
    finally:
        if saved is None:
            os.environ.pop("PIPELINE_ROOT", None)
        else:
            os.environ["PIPELINE_ROOT"] = saved
    return root, exp


@pytest.fixture(scope="session")
def tracking_server(tmp_path_factory):
    """A real ``mlflow server`` on 127.0.0.1 (SQLite backend, artifacts served); yields its URI.
    Shared by the session: each test module sweeps experiments of its own names.
    """
    folder = tmp_path_factory.mktemp("mlflow_server")
    port = free_port()
    with open(folder / "server.log", "w") as log:  # the server keeps its own copy open
        proc = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
             "--backend-store-uri", f"sqlite:///{folder / 'server.db'}",
             "--artifacts-destination", str(folder / "artifacts"), "--workers", "1"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            # no job runner (the server's GenAI jobs): two processes instead of nine
            env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        )  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(uri, proc, folder / "server.log")
        yield uri
    finally:
        stop(proc)


# fixtures that train: every test using one is in the slow tier (``make test-fast`` skips it);
# tests that train or sweep without them carry the mark themselves
TRAINING_FIXTURES = {"tiny_sweep", "tracking_server", "local_ray"}


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if TRAINING_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


def pytest_configure(config) -> None:
    # one torch thread per test process, as in the sweep's workers: on a small shared machine,
    # two threads per process fight over the cores and make the suite several times slower
    import torch

    torch.set_num_threads(1)


def synthetic_result(spec, **fields):
    """A ``RunResult`` of ``spec`` made up for a test (not trained): every field plausible,
    ``fields`` overriding any of them.
    """
    from pipeline.config.runs import RunResult

    status = fields.get("status", "solved")
    defaults = {
        "run_id": f"id-{spec.key}",
        **spec.identity(),
        "code_version": "test",
        "status": status,
        "solved": status == "solved",
        "steps": spec.training.max_steps,
        "steps_to_solve": None,
        "diverged_step": None,
        "test_accuracy": 0.5,
        "test_loss": 1.0,
        "best_val_accuracy": 0.5,
        "best_val_loss": 1.0,
        "chance_accuracy": 0.25,
        "baseline_loss": 1.0,
        "mean_grad_norm": 1.0,
        "wall_time": 1.0,
        "environment": {},
        "probe_init": {},
        "probe_final": {},
        "mech_init": {},
        "mech_final": {},
        "extrapolation": {},
    }
    return RunResult(**(defaults | fields))


def pipeline_cli(*args: str, root: Path, env: dict | None = None, **kw) -> subprocess.Popen:
    """``python -m pipeline *args`` started in the background with ``root`` as its
    PIPELINE_ROOT (and its default store), output captured as text.
    """
    environment = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    environment.update(PIPELINE_ROOT=str(root), **(env or {}))
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline", *args],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )
