"""The door to MLflow without a server: redaction, the HTTP client's settings, telling a lost
server from other failures, and which clusters may share a loopback tracking store.
"""

from __future__ import annotations

import pytest

from pipeline.sweep import ray_executor
from pipeline.tracking import store
from tests.team import free_port


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("postgresql://mlflow:s3cret@db:5432/mlflow", "postgresql://mlflow:***@db:5432/mlflow"),
        ("postgresql+psycopg://u:p:w@db/x", "postgresql+psycopg://u:***@db/x"),
        ("API request to http://alice:pa%40ss@10.0.0.5:5000/api failed", "API request to "
         "http://alice:***@10.0.0.5:5000/api failed"),
        ("'http://a:b@h:1' and https://c:d@h:2/x", "'http://a:***@h:1' and https://c:***@h:2/x"),
        ("http://127.0.0.1:5000/get?x=a@b", "http://127.0.0.1:5000/get?x=a@b"),  # no password
        ("sqlite:////srv/mlruns/mlflow.db", "sqlite:////srv/mlruns/mlflow.db"),
    ],
)  # fmt: skip
def test_redact_masks_the_password_of_every_uri(text, shown):
    assert store.redact(text) == shown


def test_redact_masks_secret_variables(monkeypatch):
    monkeypatch.setenv("PGPASSWORD", "hunter2-long")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "abc")  # too short to tell from text
    assert store.redact("password hunter2-long, abc") == "password ***, abc"


def test_the_client_gets_the_pipelines_http_settings_unless_set(monkeypatch):
    for name in store.HTTP_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")  # the user's choice wins
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "t0ken-value")
    store.client("http://127.0.0.1:9")
    shared = store.client_environment()
    assert shared == {
        **store.HTTP_SETTINGS,
        "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
        "MLFLOW_TRACKING_TOKEN": "t0ken-value",
    }


def test_a_server_that_does_not_answer_is_told_from_other_failures(monkeypatch):
    port = free_port()  # nothing listens once its socket closes
    client = store.client(f"http://user:pw-in-uri@127.0.0.1:{port}")
    with store.fail_fast(), pytest.raises(Exception) as refused:
        client.search_experiments(max_results=1)
    assert store.lost_server(refused.value)
    assert not store.lost_server(ValueError("a bug"))
    assert not store.answers(client)
    error = store.server_lost_error(client.tracking_uri, refused.value)
    assert "pw-in-uri" not in str(error) and "stopped answering" in str(error)
    assert "\n" not in str(error)


class _Ray:
    """Just enough of the ray module for ``_check_nodes``: a list of nodes."""

    def __init__(self, *addresses: str) -> None:
        self._nodes = [{"Alive": True, "NodeManagerAddress": a} for a in addresses]

    def nodes(self) -> list[dict]:
        return self._nodes


def test_nodes_all_on_this_machine_may_share_a_loopback_store():
    ray_executor._check_nodes(_Ray("127.0.0.1", "127.0.0.1"), "http://127.0.0.1:5000")
    ray_executor._check_nodes(_Ray("10.0.0.5"), "http://127.0.0.1:5000")  # one node: here
    with pytest.raises(ray_executor.SweepError, match="2 nodes"):
        ray_executor._check_nodes(_Ray("127.0.0.1", "10.0.0.7"), "http://127.0.0.1:5000")


def test_the_ui_address_carries_no_credentials():
    from pipeline.tracking import ui

    assert ui.ui_address("http://alice:s3cret-pw@10.0.0.5:5000/") == "http://10.0.0.5:5000"
    assert ui.ui_address("https://mlflow.example") == "https://mlflow.example"
    assert ui.ui_address("sqlite:///x.db") == ui.UI_ADDRESS


def test_what_mlflow_logs_is_redacted(monkeypatch, capfd):
    import logging

    monkeypatch.setenv("PGPASSWORD", "db-s3cret-pw")
    store.client("sqlite:///:memory:")  # sets the process up, as every client does
    logging.getLogger("mlflow.system_metrics").warning(
        "API request to http://alice:uri-s3cret@127.0.0.1:1/api failed (db-s3cret-pw)"
    )
    err = capfd.readouterr().err
    assert "alice:***@127.0.0.1" in err
    assert "uri-s3cret" not in err and "db-s3cret-pw" not in err


def test_a_long_error_keeps_its_cause_and_no_password():
    message = (
        "API request to http://u:hunter2@127.0.0.1:9/api/2.0/mlflow/runs/create failed with "
        + "exception HTTPConnectionPool(host='127.0.0.1', port=9): Max retries exceeded " * 5
        + "(Caused by NewConnectionError('Failed to establish a new connection: [Errno 111] "
        "Connection refused'))"
    )
    line = store.first_line(RuntimeError(message + "\nsecond line"))
    assert len(line) <= 300 and line.startswith("API request to")
    assert line.endswith("Connection refused'))") and "hunter2" not in line
    assert store.first_line(RuntimeError("short")) == "short"
    assert store.first_line(RuntimeError()) == "RuntimeError"
