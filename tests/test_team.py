"""The team set-up for real: a tracking server on PostgreSQL, a two-node Ray cluster, and the
faults they meet (README, "Scaling out").

One PostgreSQL cluster, one ``make mlflow-server`` on it and one two-node Ray cluster on loopback
(``tests/team.py``) serve the whole module. Each test sweeps a small experiment of its own with
``python -m pipeline train --executor ray`` (what ``make train EXECUTOR=ray`` runs), injects its
fault at a moment it controls (runs RUNNING in the store), reruns the same command once, and checks
the invariant: one FINISHED run per run key and nothing RUNNING in the store, every result file
present and naming its run, the report's outcomes those of a sweep without faults, and no
password anywhere in what the sweep printed or stored. Every sweep uses a tracking URI with a
password (``user:password@``) and has the database's password in PGPASSWORD.

The seconds each fault took to recover are written to ``team-recovery.json`` in pytest's
temporary folder, and printed (``pytest -s``); the README quotes them. Nothing here asserts a
duration: every wait is a hang detector.
"""

from __future__ import annotations

import io
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from pipeline import config, data, paths
from pipeline.config.runs import evaluation_runs
from pipeline.tracking import names, store, sweep_runs
from tests.conftest import TINY, write_experiment
from tests.team import (
    Postgres,
    RayCluster,
    TrackingServer,
    command_lines,
    loopback,
    postgres_missing,
    wait_until,
)

pytest.importorskip("ray", reason="the Ray extra: pip install -c constraints.txt -e '.[ray]'")
pytest.importorskip(
    "psycopg", reason="the server extra: pip install -c constraints.txt -e '.[server]'"
)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(postgres_missing() is not None, reason=postgres_missing() or ""),
]

# six runs (two cells, three distances, one seed): three rounds on the two one-CPU nodes, work
# left for both nodes when a test injects its fault
SETTINGS = {**TINY, "tasks": [{**TINY["tasks"][0], "distances": [6, 8, 12]}], "seeds": [0]}
NOT_OUTCOMES = ["run_id", "wall_time"]  # the report's columns that differ between sweeps
SWEEP_TIMEOUT = 300  # a hang detector for one sweep, far above its usual length


@dataclass
class Team:
    folder: Path
    postgres: Postgres
    server: TrackingServer
    cluster: RayCluster
    uri: str  # the sweep's tracking URI: the server, with a user and password
    env: dict[str, str]  # a sweep's environment, but for its PIPELINE_ROOT
    secrets: tuple[str, ...]
    measured: dict = field(default_factory=dict)

    experiment_ids: dict[str, str] = field(default_factory=dict)

    def runs(self, experiment: str, status: str | None = None) -> list:
        """The runs of ``experiment`` (with ``status``) in the store, its sweep's parent runs left
        out; none before it exists.
        """
        client = store.client(self.server.uri)
        if experiment not in self.experiment_ids:
            found = client.get_experiment_by_name(names.mlflow_name(experiment))
            if found is None:
                return []
            self.experiment_ids[experiment] = found.experiment_id
        where = f"attributes.status = '{status}'" if status else ""
        found = store.search(client, self.experiment_ids[experiment], where)
        return [r for r in found if not sweep_runs.is_parent(r)]


@pytest.fixture(scope="module")
def team(tmp_path_factory):
    folder = Path(tempfile.mkdtemp(prefix="team", dir="/tmp"))  # short: Ray's socket paths
    parts: list = []
    try:
        started = time.monotonic()
        postgres = Postgres()
        parts.append(postgres)
        postgres.create()
        database_password = secrets.token_urlsafe(12)
        database = postgres.create_database("mlflow", "mlflow", database_password)
        measured = {"postgres_start_s": time.monotonic() - started}

        (folder / "server").mkdir()
        server = TrackingServer(folder / "server", database, database_password)
        parts.append(server)
        server.start()  # it takes its time: start the Ray nodes meanwhile
        (folder / "ray").mkdir()
        cluster = RayCluster(folder / "ray")
        parts.append(cluster)
        measured["ray_head_start_s"] = cluster.start("head")
        measured["ray_worker_start_s"] = cluster.start("worker")
        server.wait_ready()
        measured["setup_s"] = time.monotonic() - started

        uri_password = secrets.token_urlsafe(12)
        uri = f"http://alice:{uri_password}@127.0.0.1:{server.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "MLFLOW_"))}
        env |= cluster.driver_env() | {"MLFLOW_TRACKING_URI": uri, "PGPASSWORD": database_password}
        yield Team(folder, postgres, server, cluster, uri, env, (uri_password, database_password),
                   measured)  # fmt: skip
    finally:
        for part in reversed(parts):
            part.close()
        if "measured" in locals():
            record = tmp_path_factory.getbasetemp() / "team-recovery.json"
            record.write_text(json.dumps(measured, indent=2))
            print(f"\nteam set-up, measured (also in {record}):\n{json.dumps(measured, indent=2)}")
        shutil.rmtree(folder, ignore_errors=True)


# ---- a user's sweep ------------------------------------------------------------------------


@dataclass
class User:
    """One person's checkout: a PIPELINE_ROOT of their own and one experiment."""

    team: Team
    root: Path
    exp: config.Experiment
    exp_file: Path
    outputs: list[str] = field(default_factory=list)  # every sweep's stdout and stderr

    def env(self) -> dict[str, str]:
        return self.team.env | {"PIPELINE_ROOT": str(self.root)}

    def start(self, executor: str = "ray", env: dict | None = None) -> subprocess.Popen:
        """Start ``python -m pipeline train`` for this experiment (what ``make train`` runs)."""
        n = len(self.outputs) // 2
        self.outputs += ["", ""]
        before = {r.info.run_id for r in self.team.runs(self.exp.name)}  # earlier sweeps' runs
        command = [sys.executable, "-m", "pipeline", "train", "-e", str(self.exp_file),
                   "--executor", executor, "--jobs", "1"]  # fmt: skip
        with (
            open(self.root / f"sweep{n}.out", "w") as out,
            open(self.root / f"sweep{n}.err", "w") as err,
        ):
            proc = subprocess.Popen(
                command, cwd=paths.SOURCE_ROOT, env=self.env() | (env or {}),
                stdout=out, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        proc.n = n
        proc.before = before
        return proc

    def output(self, proc: subprocess.Popen) -> tuple[str, str]:
        out, err = ((self.root / f"sweep{proc.n}.{kind}").read_text() for kind in ("out", "err"))
        self.outputs[2 * proc.n : 2 * proc.n + 2] = [out, err]
        return out, err

    def finish(self, proc: subprocess.Popen, timeout: float = SWEEP_TIMEOUT) -> tuple[int, str]:
        """Wait for the sweep to end by itself; returns its exit code and stdout + stderr."""
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            pytest.fail(f"the sweep hung (no end within {timeout} s):\n{self.output(proc)[1]}")
        return proc.returncode, "".join(self.output(proc))

    def sweep(self, executor: str = "ray") -> str:
        """One whole sweep, which must succeed; returns what it printed."""
        code, printed = self.finish(self.start(executor))
        assert code == 0, printed
        return printed

    def wait_for(self, proc: subprocess.Popen, what: str, worker_busy=False, **counts) -> None:
        """Wait until the store holds at least ``counts[status]`` runs of each status that the
        sweep ``proc`` started, and with ``worker_busy`` until the worker node executes one of
        its tasks (a sweep that ends meanwhile fails the test).
        """

        def reached() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"the sweep ended before {what}:\n{self.output(proc)[1]}")
            if worker_busy and not self.team.cluster.busy("worker"):
                return False
            return all(self.started(proc, status) >= n for status, n in counts.items())

        wait_until(reached, SWEEP_TIMEOUT, what, every=0.05)

    def started(self, proc: subprocess.Popen, status: str) -> int:
        """How many runs the sweep ``proc`` started are in the store with ``status``."""
        return sum(r.info.run_id not in proc.before for r in self.team.runs(self.exp.name, status))

    def report(self, monkeypatch, write: bool = False) -> pd.DataFrame:
        """The report's table of outcomes (its results.csv without ids and timings), one row per
        run key. ``write``: the whole report, written under the user's root as ``make report``
        does (in this process: its imports are paid once); else only the table, read as the
        report stage reads it.
        """
        from pipeline import report
        from pipeline.report.reading import collect

        with monkeypatch.context() as mp:
            for name, value in self.env().items():
                mp.setenv(name, value)
            if write:
                report.run(self.exp, experiment_file=self.exp_file)
                text = (paths.reports_dir(self.exp.name) / "results.csv").read_text()
            else:
                text = collect(self.exp, store.client()).runs.to_csv(index=False)
        table = pd.read_csv(io.StringIO(text))
        return table.drop(columns=NOT_OUTCOMES).sort_values("run_key").reset_index(drop=True)

    def results(self) -> dict[str, dict]:
        found = {}
        for path in (self.root / "results" / self.exp.name).glob("*/*.json"):
            result = json.loads(path.read_text())
            found[result[names.RUN_KEY]] = result
        return found


def _user(team: Team, folder: Path, name: str) -> User:
    """A user with an experiment ``name`` of SETTINGS and its data (the data stage run)."""
    root = folder / name
    exp_file = write_experiment(root / "experiments", name, SETTINGS)
    exp = config.load(exp_file)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PIPELINE_ROOT", str(root))
        data.run(exp, log=lambda *_: None)
    return User(team, root, exp, exp_file)


# ---- the invariant -------------------------------------------------------------------------


def check_converged(user: User) -> None:
    """One FINISHED run per run key and nothing RUNNING; every result file present, naming that
    run, with the outcome MLflow holds; the sweep's summary written.
    """
    runs = [r for r in user.team.runs(user.exp.name) if names.RUN_KEY in r.data.tags]
    statuses: dict[str, Counter] = {}
    for run in runs:
        statuses.setdefault(run.data.tags[names.RUN_KEY], Counter())[run.info.status] += 1
    results = user.results()
    assert sorted(results) == sorted(s.key for s in evaluation_runs(user.exp))
    for spec in evaluation_runs(user.exp):
        assert statuses[spec.key]["FINISHED"] == 1, (spec.key, statuses[spec.key])
        assert statuses[spec.key]["RUNNING"] == 0, (spec.key, statuses[spec.key])
        (done,) = [
            r for r in runs
            if r.data.tags[names.RUN_KEY] == spec.key and r.info.status == "FINISHED"
        ]  # fmt: skip
        assert done.info.run_id == results[spec.key]["run_id"], spec.key
        assert done.data.metrics["test_accuracy"] == results[spec.key]["test_accuracy"]
    summary = json.loads((user.root / "results" / user.exp.name / "sweep.json").read_text())
    assert summary["runs"] == {k: r["run_id"] for k, r in results.items()}


def check_no_secrets(user: User) -> None:
    """No password of the team's in anything the user's sweeps printed or stored: their stdout
    and stderr, the MLflow params and tags of the experiment's runs, result files, report files.
    """
    texts = {f"sweep output {i}": text for i, text in enumerate(user.outputs)}
    for run in user.team.runs(user.exp.name):
        texts[f"run {run.info.run_id}"] = json.dumps([run.data.params, run.data.tags])
    for folder in ("results", "reports"):
        for path in (user.root / folder).rglob("*"):
            if path.is_file():
                texts[str(path)] = path.read_bytes().decode(errors="replace")
    assert len(texts) > 2 * len(evaluation_runs(user.exp))
    for where, text in texts.items():
        for secret in user.team.secrets:
            assert secret not in text, f"a password in {where}"


def check_invariant(user: User, reference: pd.DataFrame, monkeypatch) -> None:
    """After the faults and one rerun: converged, the report's outcomes those of a sweep
    without faults, no password anywhere.
    """
    check_converged(user)
    pd.testing.assert_frame_equal(user.report(monkeypatch), reference)
    check_no_secrets(user)


# ---- two users at once, and the outcomes without faults ------------------------------------


@pytest.fixture(scope="module")
def two_users(team, tmp_path_factory):
    """Two people sweep experiments of their own against the same server at the same time: one
    on the Ray cluster, one with the local executor on their own machine; then each writes a
    report. Returns both users and their report tables: the outcomes of a sweep without faults.
    """
    folder = tmp_path_factory.mktemp("two_users")
    first, second = _user(team, folder, "team_a"), _user(team, folder, "team_b")
    started = time.monotonic()
    sweeps = [first.start("ray"), second.start("local")]
    for user, proc in zip((first, second), sweeps, strict=True):
        code, printed = user.finish(proc)
        assert code == 0, printed
    team.measured["sweep_without_faults_s"] = time.monotonic() - started
    with pytest.MonkeyPatch.context() as mp:
        tables = first.report(mp, write=True), second.report(mp, write=True)
    return (first, second), tables


@pytest.fixture
def reference(two_users) -> pd.DataFrame:
    return two_users[1][0]


@pytest.fixture
def both_nodes(team):
    """The cluster with both nodes alive (a test before may have killed the worker node)."""
    if team.cluster.raylet("worker") is None:
        team.cluster.stop("worker")
        team.cluster.start("worker")
    return team.cluster


def test_two_users_share_the_server_and_see_only_their_own_runs(team, two_users):
    users, tables = two_users
    # the server listens on loopback only; no password is on any command line (ps)
    assert team.server.listening() and all(map(loopback, team.server.listening()))
    for line in command_lines().values():
        assert not any(secret in line for secret in team.secrets), line
    for user in users:
        check_converged(user)
        check_no_secrets(user)
        # the report names its own runs, every one, and none of the other user's
        written = pd.read_csv(user.root / "reports" / user.exp.name / "results.csv")
        assert sorted(written["run_id"]) == sorted(r["run_id"] for r in user.results().values())
        provenance = (user.root / "reports" / user.exp.name / "report.md").read_text()
        assert f"alice:***@127.0.0.1:{user.team.server.port}" in provenance  # shown, redacted
    ids = [{r["run_id"] for r in user.results().values()} for user in users]
    assert not ids[0] & ids[1]
    # the same settings give the same outcomes, on the cluster and on one machine
    pd.testing.assert_frame_equal(*tables)


# ---- the faults ----------------------------------------------------------------------------


def check_consistent(user: User) -> None:
    """Mid-way, after a faulted sweep: nothing doubled, and every result file names the one
    FINISHED run of its key.
    """
    finished = user.team.runs(user.exp.name, "FINISHED")
    keys = Counter(r.data.tags[names.RUN_KEY] for r in finished)
    assert all(n == 1 for n in keys.values()), keys
    ids = {r.info.run_id for r in finished}
    assert all(r["run_id"] in ids for r in user.results().values())


def test_the_store_going_away_and_coming_back(team, both_nodes, reference, tmp_path, monkeypatch):
    """The database stays away: the sweep fails its runs in bounded time and says what to do.
    The rerun meets a database restart and a killed tracking server restarted a few seconds
    later: its retries ride both out, and it converges.
    """
    user = _user(team, tmp_path, "team_store")
    # MLflow's retries shortened from about a minute to seconds: the database stays away longer
    proc = user.start(env={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2"})
    user.wait_for(proc, "a run RUNNING", RUNNING=1)
    stopped = time.monotonic()
    team.postgres.stop()  # the server answers 503 to every call
    code, printed = user.finish(proc, timeout=180)
    team.measured["database_gone_to_sweep_end_s"] = time.monotonic() - stopped
    assert code == 1, printed
    error = printed[printed.index("error: ") :]
    assert "stopped answering" in error and "rerun the same command" in error, error
    assert "Traceback" not in printed
    team.postgres.start()
    check_consistent(user)

    proc = user.start()  # the rerun, with the default retries
    user.wait_for(proc, "a run RUNNING", RUNNING=1)
    restarted = time.monotonic()
    team.postgres.restart()  # under a live server: its next queries fail, and are retried
    team.measured["database_restart_s"] = time.monotonic() - restarted
    finished = user.started(proc, "FINISHED")
    user.wait_for(proc, "a run finished after the restart", FINISHED=finished + 1)
    killed = time.monotonic()
    team.server.kill()  # runs in flight: their next writes meet a dead server
    time.sleep(3)
    team.server.start()
    team.server.wait_ready()
    team.measured["server_down_s"] = time.monotonic() - killed
    code, printed = user.finish(proc)
    team.measured["server_killed_to_sweep_end_s"] = time.monotonic() - killed
    assert code == 0, printed  # the retries rode both out: nothing failed, and they said so
    assert "tracking: Retrying" in printed and "Connection refused" in printed, printed
    check_invariant(user, reference, monkeypatch)


def test_a_killed_driver_and_a_dead_node(team, both_nodes, reference, tmp_path, monkeypatch):
    """The driver (the sweep's own process) is SIGKILLed with runs in flight, one of them on
    the worker node: the rerun closes their runs and trains them again. In that rerun the worker
    node dies with a run on it: Ray retries it on the head, and the next rerun closes the lost
    attempt's run.
    """
    user = _user(team, tmp_path, "team_kills")
    proc = user.start()
    user.wait_for(proc, "a run RUNNING and one on the worker node", worker_busy=True, RUNNING=1)
    killed = time.monotonic()
    os.kill(proc.pid, signal.SIGKILL)  # no cancelling, no cleanup: Ray ends its tasks
    proc.wait()
    user.output(proc)

    proc = user.start()  # the rerun, at once
    user.wait_for(proc, "a run on the worker node", worker_busy=True, RUNNING=1)
    team.measured["driver_killed_to_rerun_training_s"] = time.monotonic() - killed
    dead = time.monotonic()
    both_nodes.kill_raylet("worker")  # the worker node dies with a run on it
    code, printed = user.finish(proc)
    team.measured["worker_node_killed_to_sweep_end_s"] = time.monotonic() - dead
    assert code == 0, printed  # the run the node lost was retried on the head
    assert re.search(r"closed [12] run\(s\) left RUNNING", printed), printed  # the driver's
    check_consistent(user)

    printed = user.sweep()  # nothing left to train; closes the lost attempt's run if RUNNING
    assert f"all {len(evaluation_runs(user.exp))} runs" in printed
    check_invariant(user, reference, monkeypatch)
    statuses = Counter(r.info.status for r in team.runs(user.exp.name))
    team.measured["driver_and_node_kill_run_statuses"] = dict(statuses)
