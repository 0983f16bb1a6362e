"""A sweep in MLflow: its experiment and its parent runs.

The pipeline's experiment ``<name>`` (``experiments/<name>.yaml``) is the MLflow experiment
``long-gap/<name>`` (``names.mlflow_name``), tagged as a model-training experiment. Every run of a
sweep nests (MLflow's tag ``mlflow.parentRunId``) under the sweep's parent run, one per
experiment and code version (``open_parent``); a tuning phase's runs nest one level deeper,
under its own parent. The parent run also carries the machine's system metrics while the sweep
trains (``system_metrics``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from pipeline import paths
from pipeline.tracking.names import (
    CODE_VERSION,
    EXPERIMENT_KIND,
    MODEL_TRAINING,
    NOTE,
    PARENT_RUN,
    ROLE,
    RUN_KEY,
    mlflow_name,
)
from pipeline.tracking.store import create_run, is_local_sqlite, retry, search, set_tags

# seconds between system-metric samples (MLflow's default); ``make bench`` measures the cost
SYSTEM_INTERVAL = 10


def experiment_id(c, experiment: str) -> str:
    """The id of ``experiment``'s MLflow experiment (``mlflow_name``): created if missing
    (artifacts under mlruns/ when local), restored if deleted, and tagged as a model-training
    experiment (``mlflow.experimentKind``; MLflow 3.17's UI chooses its mode by the address
    instead: ``ui.ui_url``).
    """
    name = mlflow_name(experiment)
    found = retry(lambda: c.get_experiment_by_name(name))
    if found is None:
        location = paths.artifact_root() + f"/{name}" if is_local_sqlite(c.tracking_uri) else None
        tags = {EXPERIMENT_KIND: MODEL_TRAINING, NOTE: _description(experiment)}
        try:
            return retry(lambda: c.create_experiment(name, artifact_location=location, tags=tags))
        except Exception:  # created meanwhile by another process
            found = retry(lambda: c.get_experiment_by_name(name))
    if found.lifecycle_stage == "deleted":
        retry(lambda: c.restore_experiment(found.experiment_id))
    if found.tags.get(EXPERIMENT_KIND) != MODEL_TRAINING:
        retry(lambda: c.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND, MODEL_TRAINING))
    if NOTE not in found.tags:
        retry(lambda: c.set_experiment_tag(found.experiment_id, NOTE, _description(experiment)))
    return found.experiment_id


def _description(experiment: str) -> str:
    return (
        f"Long-term dependencies in recurrent networks: the runs of `experiments/{experiment}"
        ".yaml`. Each sweep is one parent run with its runs nested under it (a tuning phase "
        "under its own parent); the report is attached to the sweep's parent run."
    )


def open_parent(
    c, exp_id: str, role: str, name: str, tags: dict[str, str], parent: str | None = None
) -> str:
    """The id of the sweep's parent run of ``role`` (``SWEEP``, or ``TUNING`` nested under the
    sweep's run ``parent``) for the code version ``tags[CODE_VERSION]``, marked RUNNING: the one
    an earlier sweep of the same code left (finished, interrupted or failed), so a resumed or
    repeated sweep keeps its runs together, else a new one. ``tags`` (the sweep's source tags,
    its description) are written on it either way.
    """
    query = f"tags.{ROLE} = '{role}' and tags.{CODE_VERSION} = '{tags[CODE_VERSION]}'"
    found = [r for r in search(c, exp_id, query) if r.data.tags.get(PARENT_RUN) == parent]
    own = {ROLE: role, **tags, **({PARENT_RUN: parent} if parent else {})}
    if not found:
        return create_run(c, exp_id, name, own).info.run_id
    run_id = min(found, key=lambda r: r.info.start_time or 0).info.run_id
    set_tags(c, run_id, own)
    retry(lambda: c.update_run(run_id, status="RUNNING"))
    return run_id


def is_parent(run) -> bool:
    """Whether ``run`` is a sweep's parent run (``open_parent``), not a run of the sweep."""
    return ROLE in run.data.tags


def close_stale_runs(c, exp_id: str) -> list[str]:
    """Mark runs an interruption left RUNNING as KILLED, so the UI shows no phantom live runs:
    the sweep's runs and its parent runs (which the next sweep reopens: ``open_parent``).

    Call only while holding the experiment's sweep lock (no live run can then exist).
    Returns the run keys of the sweep's runs closed.
    """
    stale = search(c, exp_id, "attributes.status = 'RUNNING'")
    for run in stale:
        retry(lambda r=run: c.set_terminated(r.info.run_id, "KILLED"))
    return [r.data.tags.get(RUN_KEY, r.info.run_id) for r in stale if not is_parent(r)]


@contextmanager
def system_metrics(client, run_id: str) -> Iterator[None]:
    """Within: MLflow's system metrics (``system/...``: CPU and memory use, disk, network) of
    this machine, sampled every ``SYSTEM_INTERVAL`` s, on the parent run ``run_id`` of a sweep
    whose runs train here (psutil, a dependency, measures them).

    On the parent, not on each run: MLflow measures the whole machine, so each of a sweep's
    parallel runs would carry the same machine-wide series, and a run shorter than the interval
    would record nothing (a sample is logged only once its interval has passed), while a 1 s
    interval costs over 1% of a run (``make bench`` measures the monitor's share of a core).
    """
    monitor = system_monitor(client, run_id, resume=True)  # a reused parent continues its steps
    first = monitor._logging_step  # MLflow 3.17's monitor: the step its next sample is logged at
    try:
        yield
    finally:
        monitor.finish()  # before the run ends: the monitor stops at a run not RUNNING
        # a sweep shorter than one interval: the monitor logs only once an interval has passed;
        # log a sample taken now (averaged with the one from its start), so every sweep has one.
        # Never at the cost of the sweep's own outcome: a store gone away fails it elsewhere
        if monitor._logging_step == first:
            with contextlib.suppress(Exception):
                monitor.collect_metrics()
                monitor.publish_metrics(monitor.aggregate_metrics())
                monitor.mlflow_logger.flush()


def system_monitor(client, run_id: str, resume: bool = False):
    """MLflow's system-metrics monitor of run ``run_id``, every ``SYSTEM_INTERVAL`` s, started
    (``finish()`` it), without its INFO lines.
    """
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    for name in ("mlflow.system_metrics", "mlflow.system_metrics.system_metrics_monitor"):
        logging.getLogger(name).setLevel(logging.WARNING)
    monitor = SystemMetricsMonitor(
        run_id,
        sampling_interval=SYSTEM_INTERVAL,
        resume_logging=resume,
        tracking_uri=client.tracking_uri,
    )
    monitor.start()
    return monitor
