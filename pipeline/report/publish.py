"""Publishing a report: the folder swapped into place whole, and the same files attached to the
experiment's one summary run in MLflow.
"""

from __future__ import annotations

import os
import shutil
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline import tracking
from pipeline.report.reading import quiet_artifacts
from pipeline.report.results import Sweep


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


def attach(client, sweep: Sweep, folder: Path) -> str:
    """Log ``folder`` as the artifacts of a new summary run, ended FINISHED, then delete the
    previous summary runs; returns the new run's id.
    """
    exp_id = sweep.experiment_id
    previous = tracking.search(client, exp_id, f"tags.{tracking.SUMMARY_TAG} = 'true'")
    run = tracking.retry(
        lambda: client.create_run(
            exp_id,
            run_name="report",
            tags={tracking.SUMMARY_TAG: "true", "experiment": sweep.exp.name},
        )
    )
    run_id = run.info.run_id
    try:
        with quiet_artifacts():
            tracking.retry(lambda: client.log_artifacts(run_id, str(folder)))
    except BaseException as e:
        status = "KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED"
        tracking.retry(lambda: client.set_terminated(run_id, status))
        raise
    tracking.retry(lambda: client.set_terminated(run_id, "FINISHED"))
    for old in previous:  # only once the new one is complete: never no summary at all
        tracking.retry(lambda r=old.info.run_id: client.delete_run(r))
        _remove_local_artifacts(old.info.run_id, old.info.artifact_uri)
    return run_id


def _remove_local_artifacts(run_id: str, uri: str) -> None:
    """Remove a deleted summary run's artifact folder when it is a local one: MLflow keeps a
    deleted run's files until ``mlflow gc``, so each report would leave a copy behind.
    """
    if not uri.startswith("file:"):
        return
    folder = Path(urllib.parse.urlparse(uri).path)
    if folder.name == "artifacts" and folder.parent.name == run_id:  # the run's own folder
        shutil.rmtree(folder.parent, ignore_errors=True)
