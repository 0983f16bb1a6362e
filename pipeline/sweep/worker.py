"""One run in a worker process, and the contract every executor keeps.

An executor (``local_executor.LocalExecutor``, ``ray_executor.RayExecutor``) has one method,
``run(specs, setup, on_done)``: it trains every spec in worker processes set up with ``setup``
(``prepare``: torch threads, the MLflow client, the experiment, the tags every run carries), and
reports each run as it ends through ``on_done(spec, result, None)`` or ``on_done(spec, None,
"Type: message")``. A worker trains run after run (``run_one``) until it is told to stop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from pipeline.config.runs import RunResult, RunSpec
from pipeline.tracking import store
from pipeline.tracking.run_log import MlflowRuns


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM during a sweep."""


@dataclass(frozen=True)
class WorkerSetup:
    """What every worker of a sweep needs: where its runs go and how many threads each takes."""

    tracking_uri: str
    exp_id: str
    tags: dict[str, str]  # every run's: code version, commit, source, user, parent run
    threads: int  # torch threads per run (the CPUs a Ray task asks for)


OnDone = Callable[[RunSpec, RunResult | None, str | None], None]


class Executor(Protocol):
    def run(self, specs: list[RunSpec], setup: WorkerSetup, on_done: OnDone) -> None:
        """Train every spec; report each through ``on_done``. Raises KeyboardInterrupt (after
        stopping its workers) when interrupted, SweepError when it cannot run at all.
        """


@dataclass
class _Process:
    """This process's state as a worker: its set-up, and what has happened to it."""

    setup: WorkerSetup | None = None
    runs: MlflowRuns | None = None
    stopping: bool = False  # signalled: start no new run
    lost: Exception | None = None  # the tracking server stopped answering a run of this process


_process = _Process()


def prepare(setup: WorkerSetup) -> MlflowRuns:
    """Set this process up to train runs of ``setup``'s sweep (once per process and sweep);
    returns where its runs go.
    """
    if _process.setup != setup:
        import torch

        torch.set_num_threads(setup.threads)
        client = store.client(setup.tracking_uri)
        _process.setup, _process.runs = setup, MlflowRuns(client, setup.exp_id, setup.tags)
    return _process.runs


def stop_taking_runs(signum, frame):
    """A signal handler: start no new run, and interrupt the one in progress."""
    _process.stopping = True
    raise Interrupted(f"signal {signum}")


def run_one(spec: RunSpec, setup: WorkerSetup) -> RunResult:
    """Train one run in this process (a worker, or the sweep itself with one job, or a Ray
    task).

    Raises TrackingError, one line, when the tracking server stopped answering; once a run of
    this process has waited out the retries for it, the next ones fail at once unless the
    server answers again.
    """
    from pipeline.train.run import train_run

    if _process.stopping:  # stopped: start no new run from the queue
        raise Interrupted("the sweep is stopping")
    runs = prepare(setup)
    uri = runs.client.tracking_uri
    if _process.lost is not None and not store.answers(runs.client):
        raise store.server_lost_error(uri, _process.lost)
    try:
        result = train_run(spec, runs)
    except Exception as e:
        if not store.lost_server(e):
            raise
        _process.lost = e
        raise store.server_lost_error(uri, e) from None
    _process.lost = None
    return result
