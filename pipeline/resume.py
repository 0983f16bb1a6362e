"""What makes a sweep resumable: the code version a finished run must match, the lock that keeps a
second sweep of the same experiment out, and finished runs adopted rather than trained twice.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pipeline import paths, stages, tracking
from pipeline.errors import SweepError
from pipeline.files import write_json
from pipeline.runner import result_path
from pipeline.runs import RunSpec


def code_version() -> str:
    """A hash of the code a run's outcome depends on (``stages.OUTCOME_CODE``): a change to any
    of it makes every finished run stale.
    """
    h = hashlib.sha256()
    for path in stages.outcome_files():
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


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


def _finished_result(client, run_id: str) -> dict:
    import mlflow.artifacts

    local = mlflow.artifacts.download_artifacts(
        run_id=run_id, artifact_path="result.json", tracking_uri=client.tracking_uri
    )
    return json.loads(Path(local).read_text())


def adopt_finished(client, exp_id: str, todo: list[RunSpec], version: str) -> list[RunSpec]:
    """Write result files for FINISHED runs that lack one (killed between finishing and the
    rename); returns the specs that still need training.
    """
    finished = {}
    for run in tracking.search(client, exp_id, "attributes.status = 'FINISHED'"):
        tags = run.data.tags
        if tags.get(tracking.CODE_VERSION) == version and tracking.RUN_KEY in tags:
            finished[(tags[tracking.RUN_KEY], tags.get(tracking.CONFIG_HASH))] = run.info.run_id
    left = []
    for spec in todo:
        run_id = finished.get((spec.key, spec.config_hash))
        if run_id is None:
            left.append(spec)
            continue
        write_json(result_path(spec), _finished_result(client, run_id))
    return left


def already_finished(client, exp_id: str, spec: RunSpec, version: str) -> dict | None:
    """The result of a FINISHED run of ``spec`` at this code ``version``, if the store has one:
    a retried Ray task whose node died after its run finished must not train it twice.
    """
    found = tracking.search(
        client,
        exp_id,
        f"attributes.status = 'FINISHED' and tags.{tracking.RUN_KEY} = '{spec.key}' and "
        f"tags.{tracking.CODE_VERSION} = '{version}' and "
        f"tags.{tracking.CONFIG_HASH} = '{spec.config_hash}'",
    )
    return _finished_result(client, found[0].info.run_id) if found else None
