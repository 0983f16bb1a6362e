"""Reading one experiment's runs for the report: the result files and the MLflow runs, into a
``Readout`` (``collect``). Nothing here draws or writes.

A run's ``status`` in the report: ``solved``, ``unsolved`` or ``diverged`` for a finished run (as
its result file says); ``failed`` when it has no result file and its last MLflow attempt failed;
``stale`` when its result file belongs to another configuration of the run (a changed experiment
file, not yet retrained); ``missing`` otherwise.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import pandas as pd

from pipeline import paths
from pipeline.config import Experiment, tuning
from pipeline.config import runs as runs_module
from pipeline.config.runs import (
    EXTRAPOLATION_FACTORS,
    Extrapolation,
    RunResult,
    RunSpec,
    extrapolation_column,
    factor_label,
    result_path,
)
from pipeline.decay import efold
from pipeline.errors import ReportError
from pipeline.report.results import FINISHED, MECH_MEASURES, PHASES, PROBE_STATS, STATES, Readout
from pipeline.tracking import names, store

PROBE_COLUMNS = [
    f"probe_{phase}_{state}_{stat}" for phase in PHASES for state in STATES for stat in PROBE_STATS
]
MECH_COLUMNS = [f"mech_{phase}_{measure}" for phase in PHASES for measure in MECH_MEASURES]
EXTRAPOLATION_COLUMNS = [
    extrapolation_column(field, factor_label(factor))
    for factor in EXTRAPOLATION_FACTORS
    for field in Extrapolation.model_fields
]
RESULT_COLUMNS = [
    "task", "model", "cell", "distance", "seed", "phase", "grid", "hidden_size", "batch_size",
    "parameters", "status",
    "test_accuracy", "test_loss", "baseline_loss", "chance_accuracy", "best_val_accuracy",
    "best_val_loss", "steps", "steps_to_solve", "solved", "diverged_step", "mean_grad_norm",
    "wall_time", "probe_data", *PROBE_COLUMNS, *MECH_COLUMNS, *EXTRAPOLATION_COLUMNS,
    "environment", "run_key", "run_id", "note",
]  # fmt: skip
IDENTITY = ["run_id", "run_key", "task", "model", "cell", "distance", "seed"]
HISTORIES = ("grad_norm", "val_accuracy")  # metric histories the figures draw


def collect(exp: Experiment, client) -> Readout:
    """Read the result files and MLflow runs of ``exp``. Raises ReportError when there is no
    MLflow experiment of that name or no finished run.
    """
    found = store.retry(lambda: client.get_experiment_by_name(names.mlflow_name(exp.name)))
    if found is None or found.lifecycle_stage == "deleted":
        raise ReportError(
            f"no MLflow experiment {names.mlflow_name(exp.name)!r} in "
            f"{store.redact(client.tracking_uri)}: train it first (python -m pipeline train "
            f"--experiment experiments/{exp.name}.yaml)"
        )
    everything = store.search(client, found.experiment_id)
    # the sweep's runs, not its parent runs
    mlflow_runs = [r for r in everything if names.RUN_KEY in r.data.tags]
    runs, tuned, selections = planned(exp, mlflow_runs)
    if not runs["status"].isin(FINISHED).any():
        raise ReportError(
            f"experiment {exp.name!r} has no finished runs (no current result files under "
            f"{paths.results_dir(exp.name)}); train it first"
        )
    known = {r.info.run_id: r for r in mlflow_runs}
    finished = runs[runs["status"].isin(FINISHED) & runs["run_id"].isin(known)]
    tags = [known[i].data.tags for i in finished.run_id]
    commits = sorted({t.get("code_commit", "unknown") for t in tags})
    parents = [t.get(names.PARENT_RUN) for t in tags]
    sweeps = {r.info.run_id for r in everything if r.data.tags.get(names.ROLE) == names.SWEEP}
    probed = finished[finished["probe_data"]]
    with quiet_artifacts():
        curves = _curves(client, probed)
        probe_summary = _per_run_csv(
            client, probed, names.PROBE_SUMMARY_ARTIFACT, ["phase", "step"]
        )
    return Readout(
        exp=exp,
        experiment_id=found.experiment_id,
        tracking_uri=client.tracking_uri,
        runs=runs,
        curves=curves,
        history=_history(client, finished),
        commits=commits,
        tuning=tuned,
        selections=selections,
        parent_run=_most_common(p for p in parents if p in sweeps),
        code_version=_most_common(t.get(names.CODE_VERSION) for t in tags),
        brackets=brackets(exp, selections),
        control=_control(exp, selections, mlflow_runs),
        probe_summary=probe_summary,
    )


def _control(exp: Experiment, selections: list, mlflow_runs: list) -> pd.DataFrame | None:
    """One row per control run the brackets ask for (``runs.control_runs``); None without one."""
    if exp.control is None:
        return None
    choice = {(s.task, s.model): s.chosen for s in selections} if exp.tuning else None
    specs = runs_module.control_runs(exp, choice, recorded)
    return _frame([_row(spec, mlflow_runs) for spec in specs])


def brackets(exp: Experiment, selections: list) -> dict:
    """Per (task, model): its staircase's ``Bracket`` from the result files, or None while its
    plan still waits for runs; empty for an experiment without a staircase.
    """
    if exp.staircase is None:
        return {}
    choice = {(s.task, s.model): s.chosen for s in selections} if exp.tuning else None
    return {
        (task.task, model): bracket
        for task in exp.tasks
        for model, bracket in runs_module.variant_brackets(exp, task, choice, recorded).items()
    }


def planned(exp: Experiment, mlflow_runs: list | None = None) -> tuple:
    """``(runs, tuned, selections)``: one row per planned evaluation run and per tuning run of
    ``exp`` (``RESULT_COLUMNS``), from the result files, and what tuning chose. Without
    ``mlflow_runs`` (the experiment's MLflow runs), a run with no result file is ``missing``
    whatever its attempts did.
    """
    tuning_specs = runs_module.tuning_runs(exp)
    tuned = _frame([_row(spec, mlflow_runs) for spec in tuning_specs])
    selections, choice = [], None
    if tuning_specs:
        current = tuned[tuned["status"].isin(FINISHED)]["run_key"]
        results = {key: RunResult.read(paths.result_file(exp.name, key)) for key in current}
        choice, selections, _ = tuning.select(exp, results)
    evaluation = _with_choice(exp, choice)
    runs = _frame([_row(spec, mlflow_runs) for spec in evaluation])
    if tuning_specs:
        chosen = runs_module.evaluation_runs(exp, choice, recorded)
        untuned = ~runs["run_key"].isin([s.key for s in chosen])
        runs["note"] = runs["note"].astype(object)
        runs.loc[untuned, "status"] = "missing"
        runs.loc[untuned, "note"] = "its variant's tuning did not finish"
    return runs, tuned, selections


def _most_common(values) -> str | None:
    found = Counter(v for v in values if v)
    return found.most_common(1)[0][0] if found else None


def _frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    frame = frame.astype(
        {"steps": "Int64", "steps_to_solve": "Int64", "diverged_step": "Int64", "solved": "boolean"}
    )
    # built from dicts, the frame holds one block per column, and pandas warns about every
    # column added to one with over a hundred: copy() joins them, one block per type
    return frame.copy()


def recorded(spec: RunSpec) -> RunResult | None:
    """The result file of ``spec`` when it is of ``spec``'s configuration (of any code version:
    the report shows what was trained).
    """
    result = RunResult.read(result_path(spec))
    return result if result is not None and result.config_hash == spec.config_hash else None


def _with_choice(exp: Experiment, choice: dict | None) -> list[RunSpec]:
    """Every evaluation run asked for (the staircases as far as the result files take them):
    with its variant's chosen settings where tuning finished, else with the untuned ones
    (listed, then marked missing: they cannot have been trained).
    """
    chosen = {s.key: s for s in runs_module.evaluation_runs(exp, choice, recorded)}
    untuned = runs_module.evaluation_runs(exp)  # a variant without a choice: its first level
    keys = {s.key for s in untuned}
    return [chosen.get(s.key, s) for s in untuned] + [s for k, s in chosen.items() if k not in keys]


def _row(spec: RunSpec, mlflow_runs: list | None) -> dict:
    """One run's row: from its result file when current, else why it has none."""
    task = spec.task.build()
    identity = {
        **{k: v for k, v in spec.identity().items() if k in RESULT_COLUMNS},
        "hidden_size": spec.hidden_size,
        "batch_size": spec.training.batch_size,
        "parameters": spec.parameter_count,
        "chance_accuracy": task.chance_accuracy(spec.distance),
        "baseline_loss": task.baseline_loss(spec.distance),
        "probe_data": False,
    }
    path = result_path(spec)
    if not path.exists():
        return identity | _unfinished(spec, mlflow_runs)
    found = RunResult.read(path)
    if found is None:
        return identity | {"status": "missing", "note": "unreadable result file"}
    if found.config_hash != spec.config_hash:
        return identity | {
            "status": "stale",
            "run_id": found.run_id,
            "note": "result file is from another configuration of this run; train again",
        }
    result = found.flat()
    row = identity | {k: result.get(k) for k in RESULT_COLUMNS if k in result}
    row["probe_data"] = any(result.get(k) is not None for k in PROBE_COLUMNS)
    row["environment"] = environment_text(result.get("environment") or {})
    for phase in PHASES:
        for state in STATES:  # the result file stores an infinite e-folding length as null
            rho = result.get(f"probe_{phase}_{state}_rho")
            row[f"probe_{phase}_{state}_efold"] = efold(rho) if rho is not None else None
    if row["status"] == "diverged":
        row["note"] = f"diverged at step {result.get('diverged_step')}"
    if mlflow_runs is not None and result.get("run_id") not in {r.info.run_id for r in mlflow_runs}:
        row["note"] = "no MLflow run with this id (training curves unavailable)"
    return row


def environment_text(env: dict) -> str:
    """``Intel Xeon ...; cpu; torch 2.13.0+cpu; Lightning 2.6.6; ...``: where a run trained."""
    if not env:
        return "not recorded"
    names = {"env.torch": "torch", "env.lightning": "Lightning", "env.mlflow": "MLflow"}
    parts = [env.get("env.cpu", "?"), env.get("env.device", "?")]
    parts += [f"{label} {env[key]}" for key, label in names.items() if key in env]
    parts += [f"Python {env['env.python']}"] if "env.python" in env else []
    return "; ".join(parts)


def _unfinished(spec: RunSpec, mlflow_runs: list | None) -> dict:
    """Status and note of a run without a result file, from its latest MLflow attempt."""
    if mlflow_runs is None:
        return {"status": "missing", "note": "no result file"}
    attempts = [r for r in mlflow_runs if r.data.tags.get(names.RUN_KEY) == spec.key]
    if not attempts:
        return {"status": "missing", "note": "never trained"}
    last = max(attempts, key=lambda r: r.info.start_time or 0)
    if last.info.status == "FAILED":
        error = last.data.tags.get(names.ERROR, "no error recorded")
        return {"status": "failed", "run_id": last.info.run_id, "note": error[:300]}
    return {
        "status": "missing",
        "run_id": last.info.run_id,
        "note": f"last attempt {last.info.status} without a result file",
    }


@contextmanager
def quiet_artifacts() -> Iterator[None]:
    """Within: MLflow's artifact downloads draw no progress bars (one per run would flood)."""
    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    saved = os.environ.get(key)
    os.environ[key] = "false"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = saved


def _curves(client, probed: pd.DataFrame) -> pd.DataFrame:
    """The probe.csv artifacts of ``probed`` runs, with each run's identity in front."""
    return _per_run_csv(client, probed, "probe.csv", ["phase", "step", "k"])


def _per_run_csv(client, runs: pd.DataFrame, artifact: str, columns: list[str]) -> pd.DataFrame:
    """The CSV artifact ``artifact`` of each of ``runs``, with the run's identity in front; a
    run without it is left out (empty: ``IDENTITY`` and ``columns`` only).
    """
    import mlflow.artifacts

    frames = []
    for run in runs[IDENTITY].itertuples(index=False):
        try:
            local = mlflow.artifacts.download_artifacts(
                run_id=run.run_id, artifact_path=artifact, tracking_uri=client.tracking_uri
            )
        except Exception:  # an artifact lost or never written: the run shows without it
            continue
        frame = pd.read_csv(local)
        for column in reversed(IDENTITY):
            frame.insert(0, column, getattr(run, column))
        frames.append(frame)
    return (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=[*IDENTITY, *columns])
    )


def _history(client, finished: pd.DataFrame) -> pd.DataFrame:
    """Metric histories ``HISTORIES`` of the finished runs, long format."""
    rows = []
    for run in finished.itertuples(index=False):
        for key in HISTORIES:
            points = store.retry(lambda r=run.run_id, k=key: client.get_metric_history(r, k))
            rows += [(*(getattr(run, c) for c in IDENTITY), key, p.step, p.value) for p in points]
    return pd.DataFrame(rows, columns=[*IDENTITY, "metric", "step", "value"])
