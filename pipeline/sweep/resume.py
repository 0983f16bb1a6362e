"""What makes a sweep resumable: the lock that keeps a second sweep of the same experiment out,
and finished runs adopted rather than trained twice.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline import paths
from pipeline.config.runs import RunResult, RunSpec, result_path
from pipeline.errors import SweepError
from pipeline.tracking import store
from pipeline.tracking.names import CODE_VERSION, CONFIG_HASH, RESULT_ARTIFACT, RUN_KEY


@contextmanager
def sweep_lock(experiment: str) -> Iterator[None]:
    folder = paths.results_dir(experiment)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / ".lock", "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SweepError(
                f"another sweep of experiment {experiment!r} is running "
                f"(lock {folder / '.lock'}); wait for it or stop it"
            ) from None
        yield


def _finished_result(client, run_id: str) -> RunResult:
    import mlflow.artifacts

    local = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path=RESULT_ARTIFACT, tracking_uri=client.tracking_uri
    )
    return RunResult.model_validate_json(Path(local).read_text())


def adopt_finished(client, exp_id: str, todo: list[RunSpec], version: str) -> list[RunSpec]:
    """Write result files for FINISHED runs that lack one (killed between finishing and the
    rename); returns the specs that still need training.
    """
    finished = {}
    for run in store.search(client, exp_id, "attributes.status = 'FINISHED'"):
        tags = run.data.tags
        if tags.get(CODE_VERSION) == version and RUN_KEY in tags:
            finished[(tags[RUN_KEY], tags.get(CONFIG_HASH))] = run.info.run_id
    left = []
    for spec in todo:
        run_id = finished.get((spec.key, spec.config_hash))
        if run_id is None:
            left.append(spec)
            continue
        path = result_path(spec)
        os.replace(_finished_result(client, run_id).stage(path), path)
    return left


def already_finished(client, exp_id: str, spec: RunSpec, version: str) -> RunResult | None:
    """The result of a FINISHED run of ``spec`` at this code ``version``, if the store has one:
    a retried Ray task whose node died after its run finished must not train it twice.
    """
    found = store.search(
        client,
        exp_id,
        f"attributes.status = 'FINISHED' and tags.{RUN_KEY} = '{spec.key}' and "
        f"tags.{CODE_VERSION} = '{version}' and "
        f"tags.{CONFIG_HASH} = '{spec.config_hash}'",
    )
    return _finished_result(client, found[0].info.run_id) if found else None
