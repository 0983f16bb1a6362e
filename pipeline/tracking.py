"""The one door to MLflow: the store, the experiment, retries, and runs left behind.

The embedded default is SQLite at ``mlruns/mlflow.db`` with artifacts under ``mlruns/artifacts``
(``paths.tracking_uri``); ``MLFLOW_TRACKING_URI`` points everything at another store, such as a
shared ``mlflow server``. The store is checked before any work starts (``connect``), and the
database and the MLflow experiment are created once, in the parent process, before any worker
starts: several processes creating a fresh SQLite database at once crash.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from pipeline import paths
from pipeline.errors import TrackingError

T = TypeVar("T")
RUN_KEY, CONFIG_HASH, CODE_VERSION = "run_key", "config_hash", "code_version"
SUMMARY_TAG = "summary"  # the tag of the report's summary run


def _transient(error: Exception) -> bool:
    text = str(error).lower()
    return "database is locked" in text or "database table is locked" in text or "busy" in text


def retry(fn: Callable[[], T], attempts: int = 8, base: float = 0.05) -> T:
    """Call ``fn``, retrying SQLite lock contention with jittered exponential backoff."""
    for attempt in range(attempts):
        try:
            return fn()
        except Exception as e:  # MlflowException and SQLAlchemy's OperationalError alike
            if attempt == attempts - 1 or not _transient(e):
                raise
            time.sleep(base * 2**attempt * (1 + random.random()))
    raise AssertionError("unreachable")


@contextmanager
def _fail_fast():
    """Within: an unreachable HTTP server answers in seconds, not after minutes of retries."""
    saved = {
        k: os.environ.get(k)
        for k in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")
    }
    os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
    os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"] = "5"
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def is_local_sqlite(uri: str) -> bool:
    return uri.startswith("sqlite:")


def client(uri: str | None = None):
    """An MlflowClient for ``uri`` (default: ``paths.tracking_uri()``), with no checks."""
    from mlflow import MlflowClient

    # explicit, never mlflow.set_tracking_uri: that also rewrites MLFLOW_TRACKING_URI in the
    # process environment, which would redirect every later paths.tracking_uri()
    return MlflowClient(tracking_uri=uri or paths.tracking_uri())


def connect(uri: str | None = None):
    """A checked MlflowClient: raises TrackingError at once if the store is malformed or
    unreachable. Creates the local SQLite database when it is the default and missing.
    """
    uri = uri or paths.tracking_uri()
    if "://" not in uri and not uri.startswith("sqlite:"):
        raise TrackingError(
            f"MLFLOW_TRACKING_URI={uri!r}: not a URI (expected "
            "http://host:port, sqlite:///path.db, postgresql://...)"
        )
    if uri.startswith("file:"):
        raise TrackingError(
            f"MLFLOW_TRACKING_URI={uri!r}: file stores are not supported by "
            "MLflow 3; use sqlite:///path/mlflow.db or a tracking server"
        )
    try:
        if is_local_sqlite(uri):
            _create_sqlite(uri)
        with _fail_fast():
            c = client(uri)
            retry(lambda: c.search_experiments(max_results=1))
    except Exception as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise TrackingError(
            f"tracking store {uri} is unreachable or unusable: {first[:300]}"
        ) from None
    return c


def _create_sqlite(uri: str) -> None:
    """Create a missing SQLite store under a temporary name, then rename it into place.

    MLflow builds a new database by running its schema migrations; an interruption half-way
    leaves a database that no later run can open. Built aside, the store appears whole or not
    at all.
    """
    from mlflow import MlflowClient

    path = Path(uri.removeprefix("sqlite:///"))
    if str(path) in ("", ":memory:") or path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.unlink(missing_ok=True)
    MlflowClient(tracking_uri=f"sqlite:///{tmp}").search_experiments(max_results=1)
    os.replace(tmp, path)


def experiment_id(c, name: str) -> str:
    """The MLflow experiment ``name``, created if missing (artifacts under mlruns/ when local)."""
    found = retry(lambda: c.get_experiment_by_name(name))
    if found is not None:
        if found.lifecycle_stage == "deleted":
            retry(lambda: c.restore_experiment(found.experiment_id))
        return found.experiment_id
    location = paths.artifact_root() + f"/{name}" if is_local_sqlite(c.tracking_uri) else None
    try:
        return retry(lambda: c.create_experiment(name, artifact_location=location))
    except Exception:  # created meanwhile by another process
        return retry(lambda: c.get_experiment_by_name(name)).experiment_id


def search(c, exp_id: str, filter_string: str = "") -> list:
    """Every run of the experiment matching ``filter_string``, all pages."""
    runs, token = [], None
    while True:
        page = retry(
            lambda t=token: c.search_runs([exp_id], filter_string, max_results=1000, page_token=t)
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def close_stale_runs(c, exp_id: str) -> list[str]:
    """Mark runs an interruption left RUNNING as KILLED, so the UI shows no phantom live runs.

    Call only while holding the experiment's sweep lock (no live run can then exist).
    Returns the run keys closed.
    """
    stale = search(c, exp_id, "attributes.status = 'RUNNING'")
    for run in stale:
        retry(lambda r=run: c.set_terminated(r.info.run_id, "KILLED"))
    return [r.data.tags.get(RUN_KEY, r.info.run_id) for r in stale]
