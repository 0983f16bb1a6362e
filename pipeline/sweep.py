"""The train stage: run every (task, model, distance, seed) of an experiment, resumably.

Each finished run leaves ``results/<experiment>/<task>/<model>_d<distance>_s<seed>.json``; a rerun
skips runs whose result file matches the run's config hash and the training code's version, so an
interrupted sweep resumes where it stopped. Before any work, under a lock that keeps a second
sweep of the same experiment out:

- the tracking store is checked (an unreachable one fails fast) and the experiment created;
- runs an interruption left RUNNING are marked KILLED (their runs are trained again);
- a FINISHED run whose result file was not yet renamed into place is adopted from its
  ``result.json`` artifact rather than trained twice;
- the sweep's parent run opens (RUNNING; the one an earlier sweep of the same code left, if
  any), and every run of the sweep nests under it in MLflow; it ends FINISHED when every run has
  a result, KILLED when interrupted, FAILED otherwise.

An experiment with ``tuning`` sweeps in two phases: its tuning runs first, then its evaluation
runs, each variant with the training settings its tuning chose on validation data (``tuning``);
the choice is recomputed from the tuning result files on every start, so a resumed sweep makes
the same one. The tuning runs nest under a parent run of their own (under the sweep's), which
ends with the choice as its description: the evaluation runs stay together, the grid beside them.

Runs are independent. ``jobs`` worker processes (one torch thread each) each train many runs
(``runner``); they are forked from a server that imported torch, Lightning and MLflow once, while
the parent set up the store. When every run has a result, ``results/<experiment>/sweep.json`` is
written: the file Make tracks.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from tqdm import tqdm

from pipeline import conventions, layout, local_executor, paths, resume, runs, tracking, workers
from pipeline.config import Experiment
from pipeline.errors import SweepError
from pipeline.files import write_json
from pipeline.runner import (
    Interrupted,
    is_done,
    read_result,
    result_path,
    stop_taking_runs,
)
from pipeline.runs import RunSpec, grid_label
from pipeline.tuning import select


@dataclass
class Progress:
    total: int
    done: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)


def run(exp: Experiment, jobs: int, executor: str = "local", log=print) -> Progress:
    """Train every run of ``exp`` that has no current result file: the tuning runs first, if the
    experiment tunes, then the evaluation runs with the settings tuning chose (``tuning``).
    Raises SweepError when runs failed (the others are kept), Interrupted on SIGINT/SIGTERM,
    TrackingError for a bad store.
    """
    if executor == "ray":  # before anything touches the store: a cluster cannot share SQLite
        from pipeline.ray_executor import check_store

        check_store(paths.tracking_uri())
    version = resume.code_version()
    waiting = sum(not is_done(s, version) for s in runs.tuning_runs(exp)) + sum(
        read_result(result_path(s)) is None for s in exp.runs
    )
    jobs = max(1, min(jobs, waiting))
    pool = local_executor.pool(jobs) if executor == "local" and jobs > 1 else None
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
    source: dict[str, str]  # the tags of every run: code version, commit, source, user

    def train(self, specs: list[RunSpec], bar, parent: str) -> None:
        """Train those of ``specs`` that have no current result (adopting finished ones), nested
        under the parent run ``parent``.
        """
        todo = [s for s in specs if not is_done(s, self.version)]
        todo = resume.adopt_finished(self.client, self.exp_id, todo, self.version)
        self.progress.done += len(specs) - len(todo)
        bar.update(len(specs) - len(todo))
        if todo:
            _train_all(self, todo, bar, parent)

    def open_parent(self, role: str, note: str, parent: str | None = None) -> str:
        """The parent run of ``role`` for this sweep (``layout.open_parent``), RUNNING."""
        name = f"{role} {self.exp.name}"
        tags = {**self.source, "experiment": self.exp.name, layout.NOTE: note}
        return layout.open_parent(self.client, self.exp_id, role, name, tags, parent)


def _run(exp: Experiment, jobs: int, executor: str, pool, version: str, log) -> Progress:
    client = tracking.connect()
    from pipeline import data  # verify every data file before any training: fail fast

    data.verify(exp)
    with resume.sweep_lock(exp.name):
        exp_id = layout.experiment_id(client, exp.name)
        closed = layout.close_stale_runs(client, exp_id)
        if closed:
            log(f"train: closed {len(closed)} run(s) left RUNNING by an interruption (now KILLED)")
        tuning = runs.tuning_runs(exp)
        progress = Progress(total=len(tuning) + len(exp.runs))
        source = {tracking.CODE_VERSION: version, **conventions.source_tags()}
        sweep = Sweep(exp, jobs, executor, pool, client, exp_id, version, progress, log, source)
        parent = sweep.open_parent(layout.SWEEP, _sweep_note(exp, tuning, None))
        with _closed_on_error(sweep, parent), _system_metrics(sweep, parent):
            layout.save_chart_view(client, exp_id, parent)
            with _progress_bar(sweep) as bar:
                evaluation = _tune(sweep, tuning, bar, parent) if tuning else exp.runs
                sweep.train(evaluation, bar, parent)
            if progress.failed:
                raise SweepError(
                    f"{progress.failed} of {progress.total} runs failed:\n  "
                    + "\n  ".join(progress.failures)
                    + "\nrerun the same command to train them again (finished runs are kept)"
                )
            _write_summary(exp, tuning + evaluation, version)
        outcome = _sweep_note(exp, tuning, evaluation)
        layout.close_run(client, parent, "FINISHED", {layout.NOTE: outcome})
        where = "" if client.tracking_uri.startswith("http") else " (make mlflow-ui)"
        log(
            f"train: all {progress.total} runs of {exp.name!r} finished; results under "
            f"{paths.results_dir(exp.name)}, MLflow experiment "
            f"{layout.mlflow_name(exp.name)!r} at {tracking.redact(client.tracking_uri)}; its "
            f"runs in the "
            f"UI{where}: {layout.ui_url(exp_id, layout.ui_address(client.tracking_uri))}"
        )
        return progress


@contextmanager
def _system_metrics(sweep: Sweep, parent: str) -> Iterator[None]:
    """Within: this machine's system metrics on the sweep's parent run, when the runs train on
    this machine (locally, or on a Ray of its own); a cluster's nodes are other machines.
    """
    from pipeline.ray_executor import cluster_is_remote

    if sweep.executor == "ray" and cluster_is_remote(os.environ.get("RAY_ADDRESS")):
        yield
        return
    with conventions.system_metrics(sweep.client, parent):
        yield


@contextmanager
def _closed_on_error(sweep: Sweep, parent: str) -> Iterator[None]:
    """Within: an error or interruption ends the parent run, if still RUNNING, as KILLED
    (interrupted) or FAILED, saying why in its description, and the error goes on. An
    unreachable store cannot be written: the next sweep closes it as a stale run instead.
    """
    try:
        yield
    except BaseException as e:
        interrupted = isinstance(e, KeyboardInterrupt)
        status = "KILLED" if interrupted else "FAILED"
        why = "interrupted" if interrupted else tracking.first_line(e).rstrip(":")
        with contextlib.suppress(Exception):
            run = tracking.retry(lambda: sweep.client.get_run(parent))
            if run.info.status == "RUNNING":
                plan = run.data.tags.get(layout.NOTE, "").removesuffix(" Running.")
                note = f"{plan} Stopped: {why}. The same command resumes the sweep."
                layout.close_run(sweep.client, parent, status, {layout.NOTE: note})
        raise


def _tune(sweep: Sweep, tuning: list[RunSpec], bar, parent: str) -> list[RunSpec]:
    """Train the tuning runs under their own parent run (under the sweep's ``parent``), end it
    with the choice as its description, and return the evaluation runs (``_evaluation_runs``).
    """
    failed = sweep.progress.failed
    note = f"The tuning runs of experiments/{sweep.exp.name}.yaml. Running."
    own = sweep.open_parent(layout.TUNING, note, parent)
    with _closed_on_error(sweep, own):
        sweep.train(tuning, bar, own)
        evaluation, chosen = _evaluation_runs(sweep, tuning, bar)
    status = "FINISHED" if sweep.progress.failed == failed else "FAILED"
    lines = [f"- {c.task} {c.model}: {grid_label(c.chosen)}" for c in chosen]
    note = (
        f"The tuning runs of experiments/{sweep.exp.name}.yaml; chosen on validation data:\n\n"
        + ("\n".join(lines) or "nothing: no variant's tuning finished")
    )
    layout.close_run(sweep.client, own, status, {layout.NOTE: note})
    return evaluation


def _sweep_note(exp: Experiment, tuning: list, evaluation: list | None) -> str:
    """The sweep's description: what it trains, and once ``evaluation`` ran, how it ended."""
    plan = f"Sweep of experiments/{exp.name}.yaml: {len(exp.runs)} evaluation runs"
    plan += f" and {len(tuning)} tuning runs (under tuning {exp.name})." if tuning else "."
    if evaluation is None:
        return plan + " Running."
    results = [read_result(result_path(s)) or {} for s in evaluation]
    counts = {k: sum(r.get("status") == k for r in results) for k in ("solved", "unsolved")}
    diverged = sum(r.get("status") == "diverged" for r in results)
    return (
        f"{plan} Finished: {counts['solved']} solved, {counts['unsolved']} unsolved, "
        f"{diverged} diverged. `make report` attaches the report here (artifacts report/)."
    )


def _evaluation_runs(sweep: Sweep, tuning: list[RunSpec], bar) -> tuple[list[RunSpec], list]:
    """The evaluation runs, each variant with the settings its tuning chose on validation data,
    and those choices (``tuning.Selection``s). Variants whose tuning did not finish are left out
    and counted as failed, with the reason.
    """
    exp = sweep.exp
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
    return evaluation, selections


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


def _train_all(sweep: Sweep, todo: list[RunSpec], bar, parent: str) -> None:
    progress, jobs = sweep.progress, sweep.jobs
    tags = {**sweep.source, layout.PARENT_RUN: parent}  # the workers' tags (Ray's too)
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
            local_executor.run_inline(todo, init_args, on_done)
        else:
            local_executor.run_parallel(todo, sweep.pool, init_args, on_done)
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
