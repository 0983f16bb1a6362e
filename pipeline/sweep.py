"""The train stage: run every (task, model, distance, seed) of an experiment, resumably.

Each finished run leaves ``results/<experiment>/<task>/<model>_d<distance>_s<seed>.json``; a rerun
skips runs whose result file matches the run's config hash and the training code's version, so an
interrupted sweep resumes where it stopped. Before any work, under a lock that keeps a second
sweep of the same experiment out:

- the tracking store is checked (an unreachable one fails fast) and the experiment created;
- runs an interruption left RUNNING are marked KILLED (their runs are trained again);
- a FINISHED run whose result file was not yet renamed into place is adopted from its
  ``result.json`` artifact rather than trained twice.

An experiment with ``tuning`` sweeps in two phases: its tuning runs first, then its evaluation
runs, each variant with the training settings its tuning chose on validation data (``tuning``);
the choice is recomputed from the tuning result files on every start, so a resumed sweep makes
the same one.

Runs are independent. ``jobs`` worker processes (one torch thread each) each train many runs
(``runner``); they are forked from a server that imported torch, Lightning and MLflow once, while
the parent set up the store. When every run has a result, ``results/<experiment>/sweep.json`` is
written: the file Make tracks.
"""

from __future__ import annotations

import concurrent.futures as cf
import fcntl
import hashlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from pipeline import paths, runs, stages, tracking, workers
from pipeline.config import Experiment
from pipeline.errors import SweepError
from pipeline.files import write_json
from pipeline.runner import (
    Interrupted,
    ensure_worker,
    init_worker,
    is_done,
    read_result,
    result_path,
    run_one,
    stop_taking_runs,
)
from pipeline.runs import RunSpec, grid_label
from pipeline.tuning import select


def code_version() -> str:
    """A hash of the code a run's outcome depends on (``stages.OUTCOME_CODE``): a change to any
    of it makes every finished run stale.
    """
    h = hashlib.sha256()
    for name in stages.OUTCOME_CODE:
        h.update((Path(__file__).parent / name).read_bytes())
    return h.hexdigest()[:12]


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=paths.SOURCE_ROOT,
            text=True,
            capture_output=True,
            timeout=10,
        )
        commit = out.stdout.strip() or "unknown"
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "pipeline"],
            cwd=paths.SOURCE_ROOT,
            text=True,
            capture_output=True,
            timeout=10,
        )
        return commit + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


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
        import mlflow.artifacts

        local = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path="result.json", tracking_uri=client.tracking_uri
        )
        write_json(result_path(spec), json.loads(Path(local).read_text()))
    return left


# ---- the worker side: one process trains many runs ----------------------------------------


def _init_pool_worker(sweep_pid: int, env: dict[str, str], cwd: str) -> None:
    """A pool worker: the parent alone answers Ctrl-C and stops workers with SIGTERM, and a
    worker dies with the sweep. The fork server may have started for an earlier sweep of this
    process (the tests run many), so the worker takes the sweep's environment and directory.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, stop_taking_runs)
    workers.die_with(sweep_pid)
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    from pipeline import train  # preloaded by the fork server: no import cost here

    train.set_deterministic_env()


def _pool_run(spec: RunSpec, init_args: tuple) -> dict:
    ensure_worker(init_args)  # once per worker process
    return run_one(spec)


# ---- the parent side -----------------------------------------------------------------------


@dataclass
class Progress:
    total: int
    done: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)


def _local_pool(jobs: int) -> cf.ProcessPoolExecutor:
    return workers.pool(jobs, _init_pool_worker, (os.getpid(), dict(os.environ), os.getcwd()))


def _run_parallel(
    todo: list[RunSpec],
    pool: cf.ProcessPoolExecutor,
    init_args: tuple,
    on_done: Callable[[RunSpec, dict | None, str | None], None],
) -> None:
    try:
        # longest first (cost grows with distance), so no long run starts last and runs alone
        ordered = sorted(todo, key=lambda spec: -spec.distance)
        futures = {pool.submit(_pool_run, spec, init_args): spec for spec in ordered}
        for future in cf.as_completed(futures):
            spec = futures[future]
            try:
                on_done(spec, future.result(), None)
            except cf.process.BrokenProcessPool:
                raise SweepError(
                    "a worker process died (killed, or out of memory); rerun the "
                    "same command to resume"
                ) from None
            except Exception as e:
                on_done(spec, None, f"{type(e).__name__}: {e}")
    except BaseException:
        workers.stop(pool)
        raise


def _run_inline(todo: list[RunSpec], init_args: tuple, on_done) -> None:
    init_worker(*init_args)
    for spec in todo:
        try:
            result = run_one(spec)
        except Exception as e:
            on_done(spec, None, f"{type(e).__name__}: {e}")
        else:
            on_done(spec, result, None)


def run(exp: Experiment, jobs: int, executor: str = "local", log=print) -> Progress:
    """Train every run of ``exp`` that has no current result file: the tuning runs first, if the
    experiment tunes, then the evaluation runs with the settings tuning chose (``tuning``).
    Raises SweepError when runs failed (the others are kept), Interrupted on SIGINT/SIGTERM,
    TrackingError for a bad store.
    """
    if executor == "ray":  # before anything touches the store: a cluster cannot share SQLite
        from pipeline.ray_executor import check_store

        check_store(paths.tracking_uri())
    version = code_version()
    waiting = sum(not is_done(s, version) for s in runs.tuning_runs(exp)) + sum(
        read_result(result_path(s)) is None for s in exp.runs
    )
    jobs = max(1, min(jobs, waiting))
    pool = _local_pool(jobs) if executor == "local" and jobs > 1 else None
    try:
        progress = _run(exp, jobs, executor, pool, version, log)
    except BaseException:
        if pool is not None:
            workers.stop(pool)
        raise
    if pool is not None:
        pool.shutdown(wait=True)
    return progress


@dataclass
class Sweep:
    """One sweep in progress: where runs go, how they run, and what has happened so far."""

    exp: Experiment
    jobs: int
    executor: str
    pool: cf.ProcessPoolExecutor | None
    client: object
    exp_id: str
    version: str
    progress: Progress
    log: Callable

    def train(self, specs: list[RunSpec], bar) -> None:
        """Train those of ``specs`` that have no current result (adopting finished ones)."""
        todo = [s for s in specs if not is_done(s, self.version)]
        todo = adopt_finished(self.client, self.exp_id, todo, self.version)
        self.progress.done += len(specs) - len(todo)
        bar.update(len(specs) - len(todo))
        if todo:
            _train_all(self, todo, bar)


def _run(exp: Experiment, jobs: int, executor: str, pool, version: str, log) -> Progress:
    client = tracking.connect()
    from pipeline import data  # verify every data file before any training: fail fast

    data.verify(exp)
    with sweep_lock(exp.name):
        exp_id = tracking.experiment_id(client, exp.name)
        closed = tracking.close_stale_runs(client, exp_id)
        if closed:
            log(f"train: closed {len(closed)} run(s) left RUNNING by an interruption (now KILLED)")
        tuning = runs.tuning_runs(exp)
        progress = Progress(total=len(tuning) + len(exp.runs))
        sweep = Sweep(exp, jobs, executor, pool, client, exp_id, version, progress, log)
        with _progress_bar(sweep) as bar:
            sweep.train(tuning, bar)
            evaluation = _evaluation_runs(sweep, tuning, bar)
            sweep.train(evaluation, bar)
        if progress.failed:
            raise SweepError(
                f"{progress.failed} of {progress.total} runs failed:\n  "
                + "\n  ".join(progress.failures)
                + "\nrerun the same command to train them again (finished runs are kept)"
            )
        _write_summary(exp, tuning + evaluation, version)
        log(
            f"train: all {progress.total} runs of {exp.name!r} finished; results under "
            f"{paths.results_dir(exp.name)}, MLflow experiment {exp.name!r} at "
            f"{tracking.redact(client.tracking_uri)}"
        )
        return progress


def _evaluation_runs(sweep: Sweep, tuning: list[RunSpec], bar) -> list[RunSpec]:
    """The evaluation runs, each variant with the settings its tuning chose on validation data
    (all of them, untuned, without tuning). Variants whose tuning did not finish are left out
    and counted as failed, with the reason.
    """
    exp = sweep.exp
    if not tuning:
        return exp.runs
    results = {s.key: read_result(result_path(s)) for s in tuning if is_done(s, sweep.version)}
    choice, selections, missing = select(exp, results)
    for chosen in selections:
        sweep.log(
            f"train: tuning chose {grid_label(chosen.chosen)} for {chosen.task} {chosen.model}"
        )
    evaluation = runs.evaluation_runs(exp, choice)
    skipped = len(exp.runs) - len(evaluation)
    if skipped:
        sweep.progress.failed += skipped
        sweep.progress.failures.append(
            f"{skipped} evaluation run(s) not started: the tuning of their variant did not "
            f"finish ({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''})"
        )
    return evaluation


@contextmanager
def _progress_bar(sweep: Sweep):
    bar = tqdm(
        total=sweep.progress.total,
        unit="run",
        dynamic_ncols=True,
        desc=f"train {sweep.exp.name}",
        file=sys.stderr,
        mininterval=1.0,
    )
    try:
        yield bar
    finally:
        bar.close()


def _train_all(sweep: Sweep, todo: list[RunSpec], bar) -> None:
    progress, jobs = sweep.progress, sweep.jobs
    tags = {tracking.CODE_VERSION: sweep.version, "code_commit": git_commit()}
    init_args = (sweep.client.tracking_uri, sweep.exp_id, tags, sweep.exp.resources.cpus_per_run)
    bar.set_postfix(failed=progress.failed, running=min(jobs, len(todo)))

    def on_done(spec, result, error):
        if error is not None:  # it may quote the tracking URI
            error = tracking.redact(error)
        if error is None:
            progress.done += 1
            bar.update(1)
        else:
            progress.failed += 1
            progress.failures.append(f"{spec.key}: {error}")
            bar.write(f"train: {spec.key} failed: {error}")
        remaining = progress.total - progress.done - progress.failed
        bar.set_postfix(failed=progress.failed, running=min(jobs, remaining))

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGTERM, stop_taking_runs)
    signal.signal(signal.SIGINT, stop_taking_runs)
    try:
        if sweep.executor == "ray":
            from pipeline.ray_executor import run_ray

            run_ray(todo, init_args, on_done)
        elif sweep.pool is None:
            _run_inline(todo, init_args, on_done)
        else:
            _run_parallel(todo, sweep.pool, init_args, on_done)
    except KeyboardInterrupt:
        bar.close()
        left = progress.total - progress.done
        sweep.log(
            f"train: interrupted; {progress.done} of {progress.total} runs finished, {left} "
            "left. Run the same command again to resume."
        )
        raise Interrupted() from None
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _write_summary(exp: Experiment, specs: list[RunSpec], version: str) -> None:
    summary = {
        "experiment": exp.name,
        tracking.CODE_VERSION: version,
        "runs": {s.key: read_result(result_path(s))["run_id"] for s in specs},
    }
    write_json(paths.results_dir(exp.name) / "sweep.json", summary)
