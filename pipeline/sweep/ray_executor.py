"""Run a sweep's runs as Ray tasks: the executor for a cluster (``--executor ray``).

A Ray task runs the same run function as a local worker process (``worker.run_one``). Only
where runs execute differs:

- ``RAY_ADDRESS`` names an existing cluster (``head:6379``, or ``ray://head:10001`` for Ray
  Client); unset, a local Ray starts on this machine's cores and stops with the sweep. To an
  existing cluster the pipeline's code travels with the job, so every node runs the driver's code
  (the ``code_version`` tag stays true); the nodes need only its dependencies installed.
- each task asks for the experiment's ``resources.cpus_per_run`` CPUs (torch uses as many
  threads) and ``resources.gpus_per_run`` GPUs, 1 and 0 when the experiment names none; a task
  that asks for no GPU sees none, so it cannot share a GPU it did not reserve.
- the workers log to the sweep's tracking store themselves, so for a cluster that store must be a
  tracking server the workers reach over the network (``check_store``); the driver's MLflow client
  settings (``store.client_environment``: retries, timeouts, credentials) travel with each task.
- no filesystem needs to be shared. A node that lacks a run's data writes it (the data is a pure
  function of the task's parameters and the seed) and checks it byte for byte against the
  driver's manifest; the driver writes each result file from the returned result when the worker
  wrote it elsewhere, so resume and ``sweep.json`` work from the driver's ``results/`` alone.

Ctrl-C (or SIGTERM) cancels the outstanding tasks: queued ones never start, running ones are
interrupted (their MLflow runs end KILLED) and any still running after a few seconds are killed
(their runs, left RUNNING, are closed as KILLED when the sweep is next started).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit

from pipeline.config.runs import RunResult, RunSpec, read_result, result_path
from pipeline.errors import DataError, SweepError
from pipeline.sweep import resume
from pipeline.sweep.worker import OnDone, WorkerSetup, prepare, run_one
from pipeline.tracking import store
from pipeline.tracking.names import CODE_VERSION

CANCEL_GRACE_S = 5.0  # how long interrupted tasks get to mark their runs KILLED before a kill
# reruns of a task whose worker process or node died (a failed run is not rerun); the dead
# attempt's MLflow run stays RUNNING until the next sweep closes it as KILLED
MAX_RETRIES = 2
LOOPBACK_NAMES = {"localhost", "::1"}


# ---- where the store and the cluster are ---------------------------------------------------


def _is_loopback(host: str | None) -> bool:
    return bool(host) and (host in LOOPBACK_NAMES or host.startswith("127."))


def cluster_is_remote(address: str | None) -> bool:
    """True when ``address`` (a ``RAY_ADDRESS``) names a cluster whose head is another machine.

    Unset, ``local`` (start a Ray here) and ``auto`` (the cluster this machine belongs to) count
    as local here; ``RayExecutor.run`` also refuses an unshareable store once it sees several nodes.
    """
    if not address or address in ("local", "auto"):
        return False
    host = urlsplit(address if "://" in address else f"//{address}").hostname
    return not _is_loopback(host)


def _store_problem(uri: str) -> str | None:
    """Why workers on other machines cannot use the tracking store ``uri``, or None."""
    if store.is_local_sqlite(uri):
        return f"the tracking store {store.redact(uri)} is a SQLite file on this machine"
    host = urlsplit(uri).hostname
    if _is_loopback(host):
        return f"the tracking store {store.redact(uri)} names this machine by a loopback address"
    return None


def _refusal(problem: str, where: str) -> SweepError:
    return SweepError(
        f"{problem}, which Ray workers on other machines ({where}) cannot reach. Start a "
        "tracking server they can reach, on a machine of the cluster's network: `make "
        "mlflow-server HOST=0.0.0.0` (by default SQLite under mlruns/; see the README for "
        "PostgreSQL), then set MLFLOW_TRACKING_URI=http://<that machine's address>:5000 and "
        "rerun. Or unset RAY_ADDRESS to run on this machine alone."
    )


def check_store(uri: str, address: str | None = None) -> None:
    """Raise SweepError when a Ray sweep on the cluster at ``address`` (default: ``RAY_ADDRESS``)
    could not share the tracking store ``uri``: a local SQLite file, or a server named by a
    loopback address, with a cluster whose head is another machine. The error says what to do.
    """
    address = os.environ.get("RAY_ADDRESS") if address is None else address
    problem = _store_problem(uri)
    if problem and cluster_is_remote(address):
        raise _refusal(problem, f"RAY_ADDRESS={address}")


def _check_nodes(ray, uri: str) -> None:
    """The same refusal for a cluster reached as ``auto`` or by a loopback head address, once it
    has several nodes and one of them has a network address: nodes that all have a loopback
    address are all on this machine, which reaches the store.
    """
    problem = _store_problem(uri)
    alive = [n for n in ray.nodes() if n.get("Alive")]
    networked = [n for n in alive if not _is_loopback(n.get("NodeManagerAddress"))]
    if problem and len(alive) > 1 and networked:
        raise _refusal(problem, f"{len(alive)} nodes")


# ---- the worker side: one Ray task per run -------------------------------------------------


def _ray_task(spec: RunSpec, setup: WorkerSetup, manifest: dict | None) -> RunResult:
    """A Ray task: train one run exactly as a local worker would, and return its result."""
    runs = prepare(setup)  # once per worker process (and per sweep it serves)
    # a retry of a task whose node died after its run finished: adopt that run, train no other
    version = setup.tags.get(CODE_VERSION)
    done = resume.already_finished(runs.client, setup.exp_id, spec, version)
    if done is not None:
        return done
    _stage_data(spec, manifest)
    return run_one(spec, setup)


def _manifest(spec: RunSpec) -> dict | None:
    """This machine's manifest of the run's data, or None when there is none to read."""
    from pipeline import data

    try:
        return data.manifest(data.folder(spec.experiment, spec.task, spec.distance, spec.seed))
    except DataError:
        return None


def _stage_data(spec: RunSpec, expected: dict | None) -> None:
    """Make this node hold the run's data exactly as the driver's manifest ``expected`` lists it:
    a node without a shared filesystem writes it here. Raises DataError when what it writes
    differs from the driver's (other versions of the pipeline or torch on this node).
    """
    if expected is None or _manifest(spec) == expected:
        return  # here already (or missing on the driver too: run_one says so, as locally)
    from pipeline import data

    target = data.folder(spec.experiment, spec.task, spec.distance, spec.seed)
    sizes = spec.data.sizes()
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f".{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one writer per folder; the others wait, then read
        if _manifest(spec) != expected:
            data.write(target, spec.task, spec.distance, spec.seed, sizes)
    if _manifest(spec) != expected:
        raise DataError(
            f"{target}: the data written on this node differs from the driver's: run the data "
            "stage (make data) on the driver, and install the same torch on every node"
        )


# ---- the driver side -----------------------------------------------------------------------


def resources(spec: RunSpec) -> tuple[float, float]:
    """(CPUs, GPUs) one run asks for: the experiment's ``resources``."""
    return float(spec.resources.cpus_per_run), float(spec.resources.gpus_per_run)


def _task_options(spec: RunSpec, env: dict[str, str]) -> dict:
    """Ray's options for the task of ``spec``, which runs with ``env`` in its environment."""
    cpus, gpus = resources(spec)
    options = {"name": spec.key, "num_cpus": cpus, "num_gpus": gpus, "max_retries": MAX_RETRIES}
    env = dict(env)
    if not gpus:  # Ray leaves CUDA_VISIBLE_DEVICES alone for such a task: hide the GPUs
        env["CUDA_VISIBLE_DEVICES"] = ""
    if env:
        options["runtime_env"] = {"env_vars": env}
    return options


def _keep_result(spec: RunSpec, result: RunResult) -> None:
    """Write the result file on this machine unless the worker already did (same filesystem)."""
    here = read_result(spec)
    if here is not None and here.run_id == result.run_id:
        return
    path = result_path(spec)
    os.replace(result.stage(path), path)


def _describe(ray, error: BaseException) -> str:
    """``Type: message`` of the run's own exception, like the local executor's failures."""
    if isinstance(error, ray.exceptions.RayTaskError) and error.cause is not None:
        error = error.cause
        text = str(error)
    else:  # Ray's own (a worker or node that died): its first line says what happened
        text = (str(error).strip().splitlines() or [""])[0]
    return f"{type(error).__name__}: {store.redact(text)}"


def _connect(ray, address: str | None) -> bool:
    """Connect to the cluster at ``address`` or start a local Ray, unless this process already
    did; returns whether to shut Ray down afterwards. Keeps the caller's SIGINT/SIGTERM
    handlers (``ray.init`` replaces SIGTERM's with an exit that would skip the cancelling).
    """
    if ray.is_initialized():
        return False
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        if address and address != "local":
            # an existing cluster: ship the driver's code, so every node runs what
            # code_version names (the nodes need the dependencies only)
            package = str(Path(__file__).parent.parent)
            code = {"py_modules": [package], "excludes": ["__pycache__"]}
            ray.init(address=address, runtime_env=code)
        else:  # a Ray of our own, for this sweep alone: no dashboard, no usage report
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
            ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING)
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
    return True


def _cancel(ray, refs: list) -> None:
    """Interrupt ``refs`` (KeyboardInterrupt in running tasks), then kill what still runs."""
    running = refs
    try:
        for ref in refs:
            ray.cancel(ref)
        if refs:
            _, running = ray.wait(refs, num_returns=len(refs), timeout=CANCEL_GRACE_S)
    except Exception:  # the cluster is gone: nothing left to wait for
        pass
    finally:  # also after a second Ctrl-C during the grace period
        for ref in running:
            with contextlib.suppress(Exception):  # finished meanwhile, or the cluster is gone
                ray.cancel(ref, force=True)


class RayExecutor:
    """Runs as Ray tasks on the cluster at ``RAY_ADDRESS``, or on a Ray of its own here, which
    stays up across the sweep's rounds (a staircase asks for runs round by round) until
    ``close``.
    """

    def __init__(self) -> None:
        self.owned = False  # this executor started Ray (or connected): it shuts it down

    def close(self) -> None:
        if self.owned:
            import ray

            ray.shutdown()
            self.owned = False

    def run(self, specs: list[RunSpec], setup: WorkerSetup, on_done: OnDone) -> None:
        """Run every spec as a Ray task; report each through ``on_done`` as it ends, in the
        order they end. Each task asks for its run's ``resources`` and takes as many torch
        threads as CPUs. Raises SweepError without Ray or for a store the cluster cannot share;
        KeyboardInterrupt (after cancelling the outstanding tasks) when interrupted.
        """
        try:
            import ray
        except ImportError:
            raise SweepError(
                "--executor ray needs Ray, an optional dependency: "
                "pip install -c constraints.txt -e '.[ray]'"
            ) from None
        address = os.environ.get("RAY_ADDRESS") or None
        check_store(setup.tracking_uri, address)
        self.owned = _connect(ray, address) or self.owned
        pending: dict = {}
        try:
            _check_nodes(ray, setup.tracking_uri)
            task = ray.remote(_ray_task)
            # a node's processes have the node's environment: the driver's MLflow settings travel
            env = store.client_environment()
            for spec in specs:
                own = replace(setup, threads=max(1, int(resources(spec)[0])))  # threads = CPUs
                ref = task.options(**_task_options(spec, env)).remote(spec, own, _manifest(spec))
                pending[ref] = spec
            while pending:  # short waits, so a Ctrl-C is raised here within a second
                done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
                for ref in done:
                    spec = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                        _keep_result(spec, result)
                    except Exception as e:
                        on_done(spec, None, _describe(ray, e))
                    else:
                        on_done(spec, result, None)
        except BaseException:
            _cancel(ray, list(pending))
            self.close()
            raise
