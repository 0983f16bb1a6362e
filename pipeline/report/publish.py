"""Publishing a report: the folder swapped into place whole, and the same files attached to the
sweep's parent run in MLflow (artifacts ``report/``), replacing the previous report there.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline.report.reading import quiet_artifacts
from pipeline.report.results import Readout
from pipeline.tracking import names, store, sweep_runs

FOLDER = names.REPORT_FOLDER


@contextmanager
def staging(folder: Path) -> Iterator[Path]:
    """Yield an empty folder beside ``folder``; on success it replaces ``folder`` whole, on any
    error it is removed and ``folder`` is left as it was.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    for leftover in folder.parent.glob(f".{folder.name}.*"):  # from an interrupted report
        shutil.rmtree(leftover, ignore_errors=True)
    stage = folder.with_name(f".{folder.name}.new-{os.getpid()}")
    stage.mkdir()
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
    if folder.exists():
        os.replace(folder, old)  # two renames: the report is never half written, only briefly
    os.replace(stage, folder)  # absent between them
    shutil.rmtree(old, ignore_errors=True)


def parent_run(client, sweep: Readout) -> str:
    """The sweep's parent run that the report goes to: the one its finished runs nest under, or
    a new one for their code version (FINISHED) when they nest under none.
    """
    if sweep.parent_run:
        return sweep.parent_run
    tags = {
        names.CODE_VERSION: sweep.code_version or "unknown",
        names.EXPERIMENT: sweep.exp.name,
        names.NOTE: f"The report of experiments/{sweep.exp.name}.yaml (artifacts report/).",
    }
    name = f"{names.SWEEP} {sweep.exp.name}"
    run_id = sweep_runs.open_parent(client, sweep.experiment_id, names.SWEEP, name, tags)
    store.close_run(client, run_id, "FINISHED")
    return run_id


def attach(client, sweep: Readout, folder: Path) -> None:
    """Log ``folder`` as the artifacts ``report/`` of the sweep's parent run, then remove what
    the previous report left there that this one lacks (a file is replaced, never missing).
    """
    run_id = sweep.parent_run
    before = _files(client, run_id, FOLDER)
    with quiet_artifacts():
        store.retry(lambda: client.log_artifacts(run_id, str(folder), FOLDER))
    now = {f"{FOLDER}/{p.relative_to(folder).as_posix()}" for p in folder.rglob("*") if p.is_file()}
    if before - now:
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        uri = store.retry(lambda: client.get_run(run_id)).info.artifact_uri
        repository = get_artifact_repository(uri, tracking_uri=client.tracking_uri)
        for path in sorted(before - now):
            store.retry(lambda p=path: repository.delete_artifacts(p))


def _files(client, run_id: str, path: str) -> set[str]:
    """Every file under the run's artifact folder ``path``."""
    found = set()
    for entry in store.retry(lambda: client.list_artifacts(run_id, path)):
        found |= _files(client, run_id, entry.path) if entry.is_dir else {entry.path}
    return found
