"""The tracking store: its client, retries and timeouts, searches, writes that land once, and
redaction.

The embedded default is SQLite at ``mlruns/mlflow.db`` with artifacts under ``mlruns/artifacts``
(``paths.tracking_uri``); ``MLFLOW_TRACKING_URI`` points everything at another store, such as a
shared ``mlflow server``. The store is checked before any work starts (``connect``), and the
database and the MLflow experiment are created once, in the parent process, before any worker
starts: several processes creating a fresh SQLite database at once crash.

A tracking server is talked to with the retries and timeouts of ``HTTP_SETTINGS``: an outage of
up to about a minute (a restarted server or database) is ridden out; a server that stays away
fails the call, and ``lost_server`` tells such a failure from others. ``redact`` masks passwords
wherever a tracking or database URI is shown.
"""

from __future__ import annotations

import logging
import os
import random
import re
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from pipeline import paths
from pipeline.errors import TrackingError
from pipeline.tracking.names import CREATION, NOTE

T = TypeVar("T")
# MLflow's HTTP client as the pipeline sets it, unless the environment already does. MLflow's own
# defaults wait up to 120 s for each answer and retry a dead server for about four minutes per
# call, so a server that went away would stall every worker for many minutes.
HTTP_SETTINGS = {
    # 6 retries with waits of 0, 2, 4, 8, 16 and 32 s (plus up to 1 s of jitter each): a server
    # or database restart is ridden out; a server gone longer fails the call after about a minute
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "6",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    # per attempt: a server that accepts connections but never answers fails a call in minutes,
    # not the default's quarter of an hour
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "30",
    # MLflow prints a "View run ... at <tracking URI>" line per finished run: it would break the
    # progress bar, and it shows a password the URI carries
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
}
# credentials MLflow's client reads from the environment (basic auth, a bearer token)
CREDENTIAL_VARIABLES = (
    "MLFLOW_TRACKING_USERNAME",
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
)
# environment variables whose values are secrets: masked by ``redact`` wherever they show up
SECRET_VARIABLES = ("PGPASSWORD", "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN")
_USERINFO = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*):[^@/\s]*@")


def redact(text: str) -> str:
    """``text`` with its secrets masked as ``***``: the password of every URI in it
    (``postgresql://user:***@host/db``) and the value of each ``SECRET_VARIABLES`` set here.
    Every tracking or database URI the pipeline shows, logs or stores goes through this.
    """
    text = _USERINFO.sub(r"\g<head>:***@", text)
    for name in SECRET_VARIABLES:
        secret = os.environ.get(name, "")
        if len(secret) >= 4:  # a shorter value cannot be told from ordinary text
            text = text.replace(secret, "***")
    return text


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
def fail_fast():
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


def resends(c) -> bool:
    """Whether a write through the client ``c`` may arrive twice: MLflow's HTTP client sends a
    request again when its reply was lost, while a store written directly (SQLite, a database)
    takes a write once or not at all.
    """
    return c.tracking_uri.startswith(("http://", "https://"))


def is_local_sqlite(uri: str) -> bool:
    return uri.startswith("sqlite:")


def local_store_missing(uri: str) -> bool:
    """Whether ``uri`` is a local SQLite store that does not exist yet: reading it would create
    it (``connect`` does, as the pipeline's first store).
    """
    return is_local_sqlite(uri) and not Path(uri.removeprefix("sqlite:///")).exists()


class _RetryNotice(logging.Handler):
    """urllib3's notice of each HTTP retry after a broken connection, as one redacted line on
    stderr: urllib3 sends it to a null handler, and an outage the retries ride out would go
    unseen.
    """

    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        try:  # the stderr of the moment (not the one at start-up, which may be closed)
            sys.stderr.write(f"tracking: {redact(record.getMessage())}\n")
        except Exception:
            self.handleError(record)


class _Redacted(logging.Filter):
    """Redacts a record before a handler writes it: MLflow's own log lines (its system-metrics
    monitor's failed requests, say) quote the tracking URI, password included.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        shown = redact(message)
        if shown != message:
            record.msg, record.args = shown, None
        return True


def _configure_http() -> None:
    """Set ``HTTP_SETTINGS`` in this process's environment where it does not set them already
    (MLflow reads them at every request), show the retries, and redact what MLflow logs.
    """
    for name, value in HTTP_SETTINGS.items():
        os.environ.setdefault(name, value)
    retries = logging.getLogger("urllib3.connectionpool")
    if not any(isinstance(h, _RetryNotice) for h in retries.handlers):
        retries.addHandler(_RetryNotice())
    import mlflow  # noqa: F401  (configures its logger's handler, which the filter joins)

    for handler in [*logging.getLogger("mlflow").handlers, *logging.getLogger().handlers]:
        if not any(isinstance(f, _Redacted) for f in handler.filters):
            handler.addFilter(_Redacted())


def client_environment() -> dict[str, str]:
    """This process's MLflow client settings (``HTTP_SETTINGS`` and credentials, as set in its
    environment): what the processes of a sweep on other machines must share with it.
    """
    _configure_http()
    names = (*HTTP_SETTINGS, *CREDENTIAL_VARIABLES)
    return {name: os.environ[name] for name in names if name in os.environ}


def client(uri: str | None = None):
    """An MlflowClient for ``uri`` (default: ``paths.tracking_uri()``), with no checks, and the
    pipeline's ``HTTP_SETTINGS``.
    """
    from mlflow import MlflowClient

    _configure_http()
    # explicit, never mlflow.set_tracking_uri: that also rewrites MLFLOW_TRACKING_URI in the
    # process environment, which would redirect every later paths.tracking_uri()
    return MlflowClient(tracking_uri=uri or paths.tracking_uri())


def connect(uri: str | None = None):
    """A checked MlflowClient: raises TrackingError at once if the store is malformed or
    unreachable. Creates the local SQLite database when it is the default and missing.
    """
    uri = uri or paths.tracking_uri()
    _configure_http()  # before fail_fast, which restores what it finds for the later calls
    if "://" not in uri and not uri.startswith("sqlite:"):
        raise TrackingError(
            f"MLFLOW_TRACKING_URI={redact(uri)!r}: not a URI (expected "
            "http://host:port, sqlite:///path.db, postgresql://...)"
        )
    if uri.startswith("file:"):
        raise TrackingError(
            f"MLFLOW_TRACKING_URI={redact(uri)!r}: file stores are not supported by "
            "MLflow 3; use sqlite:///path/mlflow.db or a tracking server"
        )
    try:
        if is_local_sqlite(uri):
            _create_sqlite(uri)
        with fail_fast():
            c = client(uri)
            retry(lambda: c.search_experiments(max_results=1))
    except Exception as e:
        raise TrackingError(
            f"tracking store {redact(uri)} is unreachable or unusable: {first_line(e)}"
        ) from None
    return c


def first_line(error: BaseException, limit: int = 300) -> str:
    """The first line of ``error``'s message (its type when it has none), redacted; a long one
    keeps its head and its tail (where a chained cause such as "Connection refused" sits).
    """
    text = str(error).strip()
    line = redact(text.splitlines()[0] if text else type(error).__name__)
    if len(line) <= limit:
        return line
    half = (limit - 5) // 2
    return f"{line[:half]} ... {line[-half:]}"


def lost_server(error: BaseException) -> bool:
    """Whether ``error`` is a tracking server that did not answer within ``HTTP_SETTINGS``'s
    retries: down, unreachable, timing out, or failing (5xx) on every attempt. MLflow raises
    these as a plain MlflowException; the cause it chains says which it was.
    """
    import requests

    gone = (requests.ConnectionError, requests.Timeout, requests.exceptions.RetryError)
    seen: BaseException | None = error
    for _ in range(10):  # a short chain; never loop on a cycle
        if seen is None:
            return False
        if isinstance(seen, gone):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def server_lost_error(uri: str, error: BaseException) -> TrackingError:
    """The one-line error of a run whose tracking server at ``uri`` stopped answering."""
    return TrackingError(
        f"the tracking server {redact(uri)} stopped answering: {first_line(error)}"
    )


def answers(c) -> bool:
    """Whether the tracking store of client ``c`` answers now (one quick try)."""
    try:
        with fail_fast():
            c.search_experiments(max_results=1)
    except Exception:
        return False
    return True


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


def create_run(c, exp_id: str, name: str, tags: dict[str, str]):
    """A new run ``name`` with ``tags`` (RUNNING) and a ``CREATION`` token; returns it. A second
    run that a retried request created is deleted (``drop_duplicates``).
    """
    token = uuid.uuid4().hex
    run = retry(lambda: c.create_run(exp_id, run_name=name, tags={**tags, CREATION: token}))
    drop_duplicates(c, exp_id, run)
    return run


def drop_duplicates(c, exp_id: str, run) -> None:
    """Delete the runs other than ``run`` that hold its ``CREATION`` token: a retried creation
    request made them, and nothing was logged to them. Each is ended KILLED and described
    before it goes (to the deleted runs, which MLflow keeps until ``mlflow gc``). A reply lost
    in time usually lands its duplicate before the retry's; a request held up past its timeout
    may land it later (a run asks again at its end). Only a server resends (``resends``).
    """
    if not resends(c):
        return
    token = run.data.tags[CREATION]
    others = [
        r
        for r in search(c, exp_id, f"tags.{CREATION} = '{token}'")
        if r.info.run_id != run.info.run_id
    ]
    note = f"a duplicate of run {run.info.run_id}: a retried request created it twice"
    for other in others:
        run_id = other.info.run_id
        retry(lambda i=run_id: c.set_tag(i, NOTE, note))
        retry(lambda i=run_id: c.set_terminated(i, "KILLED"))
        retry(lambda i=run_id: c.delete_run(i))


def set_tags(c, run_id: str, tags: dict[str, str]) -> None:
    """Write ``tags`` on ``run_id`` in one request."""
    from mlflow.entities import RunTag

    batch = [RunTag(k, v) for k, v in tags.items()]
    retry(lambda: c.log_batch(run_id, tags=batch))


def close_run(c, run_id: str, status: str, tags: dict[str, str] | None = None) -> None:
    """End ``run_id`` with ``status``, writing ``tags`` first."""
    if tags:
        set_tags(c, run_id, tags)
    retry(lambda: c.set_terminated(run_id, status))
