"""One run in a worker process: what the local executor's workers and Ray's tasks both execute.

A worker process is set up once per sweep it serves (``init_worker``: torch threads, the MLflow
client, the experiment, the tags every run carries), then trains run after run (``run_one``).
A run's result file (``result_path``) is what the sweep reads to know a run is done.
"""

from __future__ import annotations

import json
from pathlib import Path

from pipeline import paths, tracking
from pipeline.runs import RunSpec


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM during a sweep."""


_worker: dict = {}  # this process's set-up: client, exp_id, tags, and "stopping" once signalled


def init_worker(uri: str, exp_id: str, tags: dict, threads: int) -> None:
    """Set this process up to train runs of one sweep (once per process and sweep)."""
    import torch

    torch.set_num_threads(threads)
    _worker.update(client=tracking.client(uri), exp_id=exp_id, tags=tags)


def worker() -> dict:
    """This process's set-up (``init_worker``'s client, exp_id and tags)."""
    return _worker


def ensure_worker(init_args: tuple) -> None:
    """``init_worker(*init_args)`` unless this process is already set up with them."""
    if _worker.get("init_args") != init_args:
        init_worker(*init_args)
        _worker["init_args"] = init_args


def stop_taking_runs(signum, frame):
    """A signal handler: start no new run, and interrupt the one in progress."""
    _worker["stopping"] = True
    raise Interrupted(f"signal {signum}")


def run_one(spec: RunSpec) -> dict:
    """Train one run in this process (a worker, or the parent with jobs=1, or a Ray task).

    Raises TrackingError, one line, when the tracking server stopped answering; once a run of
    this process has waited out the retries for it, the next ones fail at once unless the
    server answers again.
    """
    from pipeline.train import train_run

    if _worker.get("stopping"):  # stopped: start no new run from the queue
        raise Interrupted("the sweep is stopping")
    client = _worker["client"]
    lost = _worker.get("lost")
    if lost is not None and not tracking.answers(client):
        raise tracking.server_lost_error(client.tracking_uri, lost)
    try:
        result = train_run(spec, client, _worker["exp_id"], _worker["tags"])
    except Exception as e:
        if not tracking.lost_server(e):
            raise
        _worker["lost"] = e
        raise tracking.server_lost_error(client.tracking_uri, e) from None
    _worker.pop("lost", None)
    return result


def result_path(spec: RunSpec) -> Path:
    return paths.result_file(spec.experiment, spec.key)


def read_result(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def is_done(spec: RunSpec, version: str) -> bool:
    """Whether ``spec`` has a result file from its current config and code ``version``."""
    result = read_result(result_path(spec))
    return (
        bool(result)
        and result.get(tracking.CONFIG_HASH) == spec.config_hash
        and result.get(tracking.CODE_VERSION) == version
    )
