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

An experiment with ``tuning`` sweeps its tuning runs first, then its evaluation runs, each variant
with the training settings its tuning chose on validation data (``config.tuning``); the choice is
recomputed from the tuning result files on every start, so a resumed sweep makes the same one.
The tuning runs nest under a parent run of their own (under the sweep's), which ends with the
choice as its description. The evaluation runs train round by round where the experiment has a
staircase: each round, the runs its rule asks for next, given the result files so far
(``config.runs.evaluation_runs``), their data written as they are reached; and last, the control
runs at the shared settings where the family verdicts are decided (``config.control``).

Runs are independent: an executor (``worker.Executor``) trains them in ``jobs`` worker processes
(one torch thread each) forked from a server that imported torch, Lightning and MLflow once
while the parent set up the store, or as Ray tasks. When every run has a result,
``results/<experiment>/sweep.json`` is written: the file Make tracks.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from tqdm import tqdm

from pipeline import data, paths, stages
from pipeline.config import Experiment
from pipeline.config.runs import (
    Choice,
    RunResult,
    RunSpec,
    control_runs,
    evaluation_runs,
    grid_label,
    is_done,
    read_result,
    tuning_runs,
)
from pipeline.config.tuning import select
from pipeline.errors import SweepError
from pipeline.paths import write_json
from pipeline.sweep import resume
from pipeline.sweep.local_executor import LocalExecutor
from pipeline.sweep.worker import Executor, Interrupted, WorkerSetup, stop_taking_runs
from pipeline.tracking import store, sweep_runs, ui
from pipeline.tracking.names import (
    CODE_VERSION,
    EXPERIMENT,
    NOTE,
    PARENT_RUN,
    SWEEP,
    TUNING,
    mlflow_name,
)
from pipeline.tracking.source import source_tags


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
        from pipeline.sweep.ray_executor import RayExecutor, check_store

        check_store(paths.tracking_uri())
        ray = RayExecutor()
        try:
            return _run(exp, ray, jobs, executor, stages.code_version(), log)
        finally:
            ray.close()
    version = stages.code_version()
    waiting = sum(not is_done(s, version) for s in tuning_runs(exp)) + sum(
        read_result(s) is None
        for s in evaluation_runs(exp)  # tuned settings: not known yet
    )
    jobs = max(1, min(jobs, waiting))
    local = LocalExecutor(jobs)
    try:
        progress = _run(exp, local, jobs, executor, version, log)
    except BaseException:
        local.stop()
        raise
    local.close()
    return progress


@dataclass
class Sweep:
    """One sweep in progress: where runs go, how they run, and what has happened so far."""

    exp: Experiment
    jobs: int
    executor: str  # "local" or "ray"
    runner: Executor
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

    def current(self, spec: RunSpec) -> RunResult | None:
        """The result of ``spec`` when it is current (its configuration and this code)."""
        result = read_result(spec)
        return result if result is not None and result.current(spec, self.version) else None

    def open_parent(self, role: str, note: str, parent: str | None = None) -> str:
        """The parent run of ``role`` for this sweep (``sweep_runs.open_parent``), RUNNING."""
        name = f"{role} {self.exp.name}"
        tags = {**self.source, EXPERIMENT: self.exp.name, NOTE: note}
        return sweep_runs.open_parent(self.client, self.exp_id, role, name, tags, parent)


def _run(
    exp: Experiment, runner: Executor, jobs: int, executor: str, version: str, log
) -> Progress:
    client = store.connect()
    data.verify(exp)  # every data file the data stage wrote, before any training: fail fast
    with resume.sweep_lock(exp.name):
        exp_id = sweep_runs.experiment_id(client, exp.name)
        closed = sweep_runs.close_stale_runs(client, exp_id)
        if closed:
            log(f"train: closed {len(closed)} run(s) left RUNNING by an interruption (now KILLED)")
        tuning = tuning_runs(exp)
        progress = Progress(total=len(tuning) + len(evaluation_runs(exp)))  # grows by staircase
        source = {CODE_VERSION: version, **source_tags()}
        sweep = Sweep(exp, jobs, executor, runner, client, exp_id, version, progress, log, source)
        parent = sweep.open_parent(SWEEP, _sweep_note(exp, tuning, None))
        with _closed_on_error(sweep, parent), _system_metrics(sweep, parent):
            ui.save_chart_view(client, exp_id, parent)
            with _progress_bar(sweep) as bar:
                choice = _tune(sweep, tuning, bar, parent) if tuning else None
                evaluation = _evaluate(sweep, choice, bar, parent)
                evaluation += _control(sweep, choice, bar, parent)
            if progress.failed:
                raise SweepError(
                    f"{progress.failed} of {progress.total} runs failed:\n  "
                    + "\n  ".join(progress.failures)
                    + "\nrerun the same command to train them again (finished runs are kept)"
                )
            _write_summary(exp, tuning + evaluation, version)
        outcome = _sweep_note(exp, tuning, evaluation)
        store.close_run(client, parent, "FINISHED", {NOTE: outcome})
        where = "" if client.tracking_uri.startswith("http") else " (make mlflow-ui)"
        log(
            f"train: all {progress.total} runs of {exp.name!r} finished; results under "
            f"{paths.results_dir(exp.name)}, MLflow experiment "
            f"{mlflow_name(exp.name)!r} at {store.redact(client.tracking_uri)}; its "
            f"runs in the "
            f"UI{where}: {ui.ui_url(exp_id, ui.ui_address(client.tracking_uri))}"
        )
        return progress


@contextmanager
def _system_metrics(sweep: Sweep, parent: str) -> Iterator[None]:
    """Within: this machine's system metrics on the sweep's parent run, when the runs train on
    this machine (locally, or on a Ray of its own); a cluster's nodes are other machines.
    """
    if sweep.executor == "ray":
        from pipeline.sweep.ray_executor import cluster_is_remote

        if cluster_is_remote(os.environ.get("RAY_ADDRESS")):
            yield
            return
    with sweep_runs.system_metrics(sweep.client, parent):
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
        why = "interrupted" if interrupted else store.first_line(e).rstrip(":")
        with contextlib.suppress(Exception):
            run = store.retry(lambda: sweep.client.get_run(parent))
            if run.info.status == "RUNNING":
                plan = run.data.tags.get(NOTE, "").removesuffix(" Running.")
                note = f"{plan} Stopped: {why}. The same command resumes the sweep."
                store.close_run(sweep.client, parent, status, {NOTE: note})
        raise


def _tune(sweep: Sweep, tuning: list[RunSpec], bar, parent: str) -> Choice:
    """Train the tuning runs under their own parent run (under the sweep's ``parent``), end it
    with the choice as its description, and return the choice (``_choose``).
    """
    failed = sweep.progress.failed
    note = f"The tuning runs of experiments/{sweep.exp.name}.yaml. Running."
    own = sweep.open_parent(TUNING, note, parent)
    with _closed_on_error(sweep, own):
        sweep.train(tuning, bar, own)
        choice, chosen = _choose(sweep, tuning)
    status = "FINISHED" if sweep.progress.failed == failed else "FAILED"
    lines = [f"- {c.task} {c.model}: {grid_label(c.chosen)}" for c in chosen]
    note = (
        f"The tuning runs of experiments/{sweep.exp.name}.yaml; chosen on validation data:\n\n"
        + ("\n".join(lines) or "nothing: no variant's tuning finished")
    )
    store.close_run(sweep.client, own, status, {NOTE: note})
    return choice


def _evaluate(sweep: Sweep, choice: Choice | None, bar, parent: str) -> list[RunSpec]:
    """Train the evaluation runs under ``parent``: those at the fixed distances and, round by
    round, each variant's next staircase runs (``evaluation_runs``: a pure function of the
    result files), until every plan is complete or a round had a failed run. Returns every
    evaluation run asked for.
    """
    progress, counted = sweep.progress, set()
    # the progress counts each staircase's first level; later levels are added as asked for
    first, total = len(evaluation_runs(sweep.exp, choice)), progress.total
    while True:
        specs = evaluation_runs(sweep.exp, choice, sweep.current)
        new = [s for s in specs if s.key not in counted]
        if not new:
            return specs
        counted |= {s.key for s in new}
        if len(counted) > first:
            progress.total = bar.total = total + len(counted) - first
            bar.refresh()
        data.ensure(s for s in new if not is_done(s, sweep.version))
        failed = progress.failed
        sweep.train(new, bar, parent)
        if progress.failed > failed:  # its outcome is unknown: the plan cannot go on
            return specs


def _sweep_note(exp: Experiment, tuning: list, evaluation: list | None) -> str:
    """The sweep's description: what it trains, and once ``evaluation`` ran, how it ended."""
    plan = f"Sweep of experiments/{exp.name}.yaml: {len(evaluation_runs(exp))} evaluation runs"
    plan += f" and {len(tuning)} tuning runs (under tuning {exp.name})." if tuning else "."
    if evaluation is None:
        return plan + " Running."
    statuses = [getattr(read_result(s), "status", None) for s in evaluation]
    solved, unsolved, diverged = (statuses.count(k) for k in ("solved", "unsolved", "diverged"))
    return (
        f"{plan} Finished: {solved} solved, {unsolved} unsolved, {diverged} diverged. "
        "`make report` attaches the report here (artifacts report/)."
    )


def _control(sweep: Sweep, choice: Choice | None, bar, parent: str) -> list[RunSpec]:
    """Train the control runs (``control_runs``: the shared settings where the family verdicts
    are decided) once every staircase is complete; returns them.
    """
    if sweep.progress.failed:
        return []
    specs = control_runs(sweep.exp, choice, sweep.current)
    if specs:
        sweep.progress.total = bar.total = sweep.progress.total + len(specs)
        bar.refresh()
        data.ensure(s for s in specs if not is_done(s, sweep.version))
        sweep.train(specs, bar, parent)
    return specs


def _choose(sweep: Sweep, tuning: list[RunSpec]) -> tuple[Choice, list]:
    """Each variant's settings, chosen by its tuning on validation data, and those choices
    (``tuning.Selection``s). Variants whose tuning did not finish are left out; their first
    evaluation runs are counted as failed, with the reason.
    """
    exp = sweep.exp
    results = {s.key: read_result(s) for s in tuning if is_done(s, sweep.version)}
    choice, selections, missing = select(exp, results)
    for chosen in selections:
        sweep.log(
            f"train: tuning chose {grid_label(chosen.chosen)} for {chosen.task} {chosen.model}"
        )
    skipped = len(evaluation_runs(exp)) - len(evaluation_runs(exp, choice))
    if skipped:
        sweep.progress.failed += skipped
        sweep.progress.failures.append(
            f"{skipped} evaluation run(s) not started: the tuning of their variant did not "
            f"finish ({', '.join(missing[:3])}{', ...' if len(missing) > 3 else ''})"
        )
    return choice, selections


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
    setup = WorkerSetup(
        tracking_uri=sweep.client.tracking_uri,
        exp_id=sweep.exp_id,
        tags={**sweep.source, PARENT_RUN: parent},
        threads=sweep.exp.resources.cpus_per_run,
    )
    bar.set_postfix(failed=progress.failed, running=min(jobs, len(todo)))

    def on_done(spec, result, error):
        if error is not None:  # it may quote the tracking URI
            error = store.redact(error)
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
        sweep.runner.run(todo, setup, on_done)
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
        CODE_VERSION: version,
        "runs": {s.key: read_result(s).run_id for s in specs},
    }
    write_json(paths.results_dir(exp.name) / "sweep.json", summary)
