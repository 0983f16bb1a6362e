"""The team set-up, started for real on this machine by tests/test_team.py: a throwaway PostgreSQL
cluster, the tracking server that ``make mlflow-server`` starts on it, and a two-node Ray cluster
started with ``ray start``. Every listener is on 127.0.0.1; each part runs in a session of its
own, so a test can kill exactly one of them, and ``close`` stops whatever was started.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import http.server
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from pipeline import paths

PG_BIN = Path("/usr/lib/postgresql/15/bin")  # Debian's postgresql-15 package
PG_MISSING = f"no PostgreSQL 15 server binaries in {PG_BIN}: apt-get install postgresql-15"


def postgres_missing() -> str | None:
    """Why no throwaway cluster can start here (None: it can): the binaries, and, as root, the
    ``postgres`` user they must run as (the Debian package creates both).
    """
    if not (PG_BIN / "initdb").exists():
        return PG_MISSING
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root, and no postgres user to run PostgreSQL as: " + PG_MISSING
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check: Callable[[], object], timeout: float, what: str, every: float = 0.2):
    """Poll ``check`` until it returns something true, and return that; fail naming ``what``
    after ``timeout`` seconds (a hang detector, not a speed claim).
    """
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(every)


def wait_healthy(uri: str, proc: subprocess.Popen, log: Path, timeout: float = 180) -> None:
    """Wait until the MLflow server at ``uri``, started as ``proc`` (which writes ``log``),
    answers ``/health``; fail with its log if it exits first or does not answer in ``timeout``
    seconds (a cold start on 2 busy cores takes tens of seconds: a hang detector).
    """

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"the server at {uri} exited")
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as answer:
                return answer.status == 200
        except OSError:
            return False

    try:
        wait_until(ready, timeout, f"the server at {uri}", every=0.2)
    except AssertionError as e:
        raise AssertionError(f"{e}; its log:\n{log.read_text()}") from None


def stop_group(group: int, grace: float = 5.0) -> None:
    """SIGTERM the process group ``group``, then SIGKILL whatever is left after ``grace``."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)


def stop(proc: subprocess.Popen, grace: float = 5.0) -> None:
    """End ``proc`` and every process it started (it leads its own process group), then reap it."""
    stop_group(proc.pid, grace)
    proc.wait()


def command_lines() -> dict[int, str]:
    """Every process's command line, arguments joined by spaces."""
    lines = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError):
                raw = Path(f"/proc/{entry}/cmdline").read_bytes()
                lines[int(entry)] = raw.replace(b"\0", b" ").decode(errors="replace")
    return lines


def _listening(pids: set[int]) -> list[str]:
    """The TCP addresses (hex ``ip:port``, as /proc/net/tcp has them) ``pids`` listen on."""
    inodes = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    target = os.readlink(f"/proc/{pid}/fd/{fd}")
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                found.append(fields[1])
    return found


def loopback(hex_address: str) -> bool:
    """Whether a /proc/net/tcp{,6} address (``0100007F:1F90``) is on the loopback interface."""
    ip = hex_address.split(":")[0]
    if len(ip) == 8 or ip.startswith("0000000000000000FFFF0000"):  # IPv4, or IPv4 in IPv6
        return ip.endswith("7F")  # 127.x.x.x, little-endian
    return ip == "00000000000000000000000001000000"  # ::1


# ---- PostgreSQL ----------------------------------------------------------------------------


class Postgres:
    """A throwaway PostgreSQL cluster on 127.0.0.1, in a fresh folder under /tmp.

    PostgreSQL refuses to run as root: as root its programs run as the ``postgres`` user, which
    is why the folder is not under pytest's tmp_path (mode 0700, closed to other users). The
    settings live in postgresql.conf, so that a restart keeps them. Local socket connections are
    trusted (the test's own admin); TCP ones need the password.
    """

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="pg", dir="/tmp"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(self.folder, user.pw_uid, user.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.folder.chmod(0o700)

    def _run(self, program: str, *args: str, stdin: str | None = None) -> str:
        done = subprocess.run(
            [*self.as_user, str(PG_BIN / program), *args],
            cwd=self.folder,  # runuser keeps the directory: one the postgres user may enter
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode:
            raise RuntimeError(f"{program} {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
        return done.stdout

    def create(self) -> Postgres:
        self._run(
            "initdb", "-D", str(self.data), "-U", "postgres", "-E", "UTF8", "--locale=C",
            "--auth-local=trust", "--auth-host=scram-sha-256", "--no-sync",
        )  # fmt: skip
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.folder}'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            )
        self.start()
        return self

    def start(self) -> None:
        self._pg_ctl("start")

    def _pg_ctl(self, *action: str) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "server.log"), "-w",
                  "-t", "60", *action)  # fmt: skip

    def create_database(self, name: str, owner: str, password: str) -> str:
        """Create role ``owner`` with ``password`` and database ``name``; returns the database's
        URI without the password (``postgresql://owner@127.0.0.1:port/name``).
        """
        sql = (
            f"CREATE ROLE {owner} LOGIN PASSWORD '{password}';\n"
            f"CREATE DATABASE {name} OWNER {owner};\n"
        )
        # the statements on standard input: a password on a command line shows in ps
        self._run("psql", "-h", str(self.folder), "-p", str(self.port), "-U", "postgres",
                  "-v", "ON_ERROR_STOP=1", "-q", "-f", "-", stdin=sql)  # fmt: skip
        return f"postgresql://{owner}@127.0.0.1:{self.port}/{name}"

    def restart(self) -> None:
        self._pg_ctl("-m", "fast", "restart")

    def stop(self) -> None:
        self._pg_ctl("-m", "fast", "stop")

    def close(self) -> None:
        """Stop the cluster (its postmaster runs in a session of its own) and remove it."""
        with contextlib.suppress(Exception):
            self._pg_ctl("-m", "immediate", "stop")
        with contextlib.suppress(OSError, ValueError):
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
            os.kill(pid, signal.SIGKILL)  # its children end with it
        shutil.rmtree(self.folder, ignore_errors=True)


# ---- the tracking server -------------------------------------------------------------------


class TrackingServer:
    """``make mlflow-server`` on a PostgreSQL database, as the README has a team start it: the
    database URI without its password, the password in PGPASSWORD, both in the environment, not
    on a command line. Make, the server and its workers share one process group.
    """

    def __init__(self, folder: Path, database_uri: str, password: str) -> None:
        self.folder, self.port = folder, free_port()
        self.uri = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "BACKEND_STORE_URI": database_uri,
            "ARTIFACTS_DESTINATION": str(folder / "artifacts"),
            "PORT": str(self.port),
            "PGPASSWORD": password,
            "WORKERS": "1",  # one machine's tests: one server process
        }
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> None:
        """Start the server (returns at once; ``wait_ready`` waits for it)."""
        self.starts += 1
        log = open(self.folder / f"server-{self.starts}.log", "w")  # noqa: SIM115 (the server's)
        # -o: the suite runs in an installed environment; a test never reinstalls it
        command = ["make", "-s", "-C", str(paths.SOURCE_ROOT), "-o", ".venv/.installed",
                   "-o", ".venv/.installed-server", "mlflow-server"]  # fmt: skip
        with log:
            self.proc = subprocess.Popen(
                command, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip

    def wait_ready(self, timeout: float = 180) -> None:
        wait_healthy(self.uri, self.proc, self.folder / f"server-{self.starts}.log", timeout)

    def pids(self) -> set[int]:
        return {pid for pid in command_lines() if _group_of(pid) == self.proc.pid}

    def listening(self) -> list[str]:
        return _listening(self.pids())

    def kill(self) -> None:
        """SIGKILL the server, every process of it, at once."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def close(self) -> None:
        if self.proc is not None:
            stop(self.proc, grace=2.0)


def _group_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except OSError:
        return None


# ---- the Ray cluster -----------------------------------------------------------------------

# `ray start` for a node that joins a head on 127.0.0.1. Ray rewrites a loopback
# --node-ip-address (and the head's address) to this machine's routable address, where a node
# listens on every interface; no supported option keeps a joining node on loopback, so this
# replaces the one private function that does the rewriting, and fails loudly if it is gone.
# The head needs no patch: with RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 Ray keeps 127.0.0.1 for it,
# but refuses to start a joining node that way.
_JOIN_ON_LOOPBACK = """
import sys
import ray._private.services as services
if not callable(getattr(services, "resolve_ip_for_localhost", None)):
    sys.exit("ray._private.services.resolve_ip_for_localhost is gone: update tests/team.py")
services.resolve_ip_for_localhost = lambda host: host
from ray.scripts.scripts import main
sys.exit(main())
"""


class RayCluster:
    """A head and a worker node started with ``ray start`` on 127.0.0.1, one CPU each, each with
    a PIPELINE_ROOT of its own that no driver shares: the nodes have no data folder and no result
    files but what a sweep's tasks write there. Token authentication, with a token of its own.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder  # short: Ray's socket paths inside it must fit 107 bytes
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        token = folder / "ray_token"
        token.write_text(secrets.token_hex(32))
        token.chmod(0o600)
        # set for every node and driver: Ray otherwise turns token auth on or off depending on
        # whether a token file happens to exist under ~/.ray
        self.auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
        self.groups: dict[str, int] = {}

    def root(self, node: str) -> Path:
        return self.folder / f"{node}_root"

    def _temp(self, node: str) -> Path:
        return self.folder / node

    def _env(self, node: str, join: bool) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "MLFLOW_"))}
        return (
            env
            | self.auth
            | {
                "PIPELINE_ROOT": str(self.root(node)),
                "RAY_USAGE_STATS_ENABLED": "0",
                "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1" if join else "0",
                "PGPASSWORD": "",  # a node has no business with the database
            }
        )

    def driver_env(self) -> dict[str, str]:
        """What a driver (a sweep) needs in its environment to use this cluster on loopback."""
        return self.auth | {
            "RAY_ADDRESS": self.address,
            "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",  # keeps 127.0.0.1 (read at import)
        }

    def start(self, node: str) -> float:
        """Start ``node`` ("head" first, then "worker"); returns the seconds it took."""
        started = time.monotonic()
        join = node != "head"
        options = ["--node-ip-address=127.0.0.1", f"--temp-dir={self._temp(node)}", "--num-cpus=1",
                   "--disable-usage-stats", "--object-store-memory=80000000"]  # fmt: skip
        if join:
            command = [
                sys.executable,
                "-c",
                _JOIN_ON_LOOPBACK,
                "start",
                f"--address={self.address}",
            ]
        else:
            command = [sys.executable, "-m", "ray.scripts.scripts", "start", "--head",
                       f"--port={self.port}", "--include-dashboard=false"]  # fmt: skip
        done = subprocess.run(
            command + options, env=self._env(node, join), capture_output=True, text=True,
            timeout=180, start_new_session=True,
        )  # fmt: skip
        pids = self.pids(node)
        if pids:
            self.groups[node] = _group_of(min(pids))
        if done.returncode:
            raise AssertionError(f"ray start ({node}) failed:\n{done.stdout}\n{done.stderr}")
        wide = [a for a in _listening(pids) if not loopback(a)]
        assert not wide, f"the Ray {node} listens beyond loopback: {wide}"
        return time.monotonic() - started

    def pids(self, node: str) -> set[int]:
        """The processes of ``node``: every one whose command line names its temp folder."""
        mark = str(self._temp(node))
        return {pid for pid, line in command_lines().items() if mark in line and pid != os.getpid()}

    def raylet(self, node: str) -> int | None:
        for pid in self.pids(node):
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/comm").read_text().strip() == "raylet":
                    return pid
        return None

    def busy(self, node: str) -> bool:
        """Whether a worker process of ``node`` (a child of its raylet) is executing a task: Ray
        titles its workers ``ray::IDLE`` while idle and ``ray::<task name>`` while executing.
        """
        raylet = self.raylet(node)
        for pid, line in command_lines().items():
            if line.startswith("ray::") and "IDLE" not in line:
                with contextlib.suppress(OSError, IndexError):
                    stat = Path(f"/proc/{pid}/stat").read_text()
                    if int(stat.rsplit(")", 1)[1].split()[1]) == raylet:
                        return True
        return False

    def kill_raylet(self, node: str) -> None:
        """SIGKILL the raylet of ``node``: the node dies as a machine that lost power would."""
        os.kill(self.raylet(node), signal.SIGKILL)

    def stop(self, node: str, grace: float = 5.0) -> None:
        """Stop ``node``: its process group, then anything else that names its temp folder."""
        group = self.groups.pop(node, None)
        if group:
            stop_group(group, grace)
        for pid in self.pids(node):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(self._temp(node), ignore_errors=True)

    def close(self) -> None:
        for node in ("worker", "head"):
            self.stop(node, grace=1.0)


# ---- lost replies ----------------------------------------------------------------------------


class LostReplies:
    """An HTTP proxy in front of a tracking server that loses the first reply to every write, as
    when a server dies after it committed: each write (a request other than a GET or a search)
    reaches the server and is carried out there, but the first arrival of each distinct request
    (method, path and body) gets no answer; the connection is dropped. MLflow's client sends the
    request again, and that arrival is answered: every write a client makes is carried out twice.
    ``lost`` counts the lost replies by endpoint (ids and file names left out).
    """

    def __init__(self, upstream: str) -> None:
        target = urlsplit(upstream)
        self.lost: dict[str, int] = {}
        seen: set[str] = set()
        lock = threading.Lock()
        proxy = self
        ids = re.compile(r"(m-)?[0-9a-f]{32}")

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                upstream.request(self.command, self.path, body=body, headers=headers)
                answer = upstream.getresponse()
                payload = answer.read()
                upstream.close()
                endpoint = f"{self.command} {ids.sub('{id}', self.path.split('?')[0])}"
                if "mlflow-artifacts/artifacts/" in endpoint:  # one endpoint, whatever the file
                    endpoint = endpoint.split("mlflow-artifacts/artifacts/")[0] + "artifacts"
                if self.command != "GET" and not endpoint.endswith("search"):  # a write
                    request = hashlib.sha256(f"{self.command} {self.path}".encode() + body)
                    with lock:
                        first = request.hexdigest() not in seen
                        seen.add(request.hexdigest())
                        if first:
                            proxy.lost[endpoint] = proxy.lost.get(endpoint, 0) + 1
                    if first:  # carried out upstream; the caller hears nothing
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                self.send_response(answer.status)
                for k, v in answer.getheaders():
                    if k.lower() not in ("transfer-encoding", "content-length", "connection"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.uri = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
