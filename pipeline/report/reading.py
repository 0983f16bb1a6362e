"""Reading one experiment's runs for the report: the result files and the MLflow runs, into a
``Readout`` (``collect``). Nothing here draws or writes.

A run's ``status`` is where it stands (``pipeline.status``): ``solved``, ``unsolved`` or
``diverged`` when finished; ``stale``, ``failed``, ``missing`` or ``planned`` otherwise, with why
in its ``note``.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from pipeline import config, paths, status
from pipeline.config import Experiment
from pipeline.config import runs as runs_module
from pipeline.config.runs import (
    EXTRAPOLATION_FACTORS,
    Extrapolation,
    extrapolation_column,
    factor_label,
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
# probe.csv's columns (tracking.run_log.write_probe_csv), with each run's identity in front;
# the c_ columns are an LSTM's only
CURVE_COLUMNS = [*IDENTITY, "phase", "step", "k", *(f"{state}_{stat}" for state in STATES
                 for stat in ("median", "q25", "q75", "jacobian"))]  # fmt: skip
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
    found_runs = status.survey(exp, mlflow_runs)
    known_ids = {r.info.run_id for r in mlflow_runs}
    runs, tuned, selections = _frames(found_runs, known_ids)
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
        curves = _curves(client.tracking_uri, probed)
        probe_summary = _per_run_csv(
            client.tracking_uri, probed, names.PROBE_SUMMARY_ARTIFACT, ["phase", "step"]
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
        brackets=brackets(exp, found_runs.choice),
        control=_frame([_row(s, known_ids) for s in found_runs.control])
        if exp.control is not None
        else None,
        probe_summary=probe_summary,
    )


def brackets(exp: Experiment, choice: dict | None) -> dict:
    """Per (task, model): its staircase's ``Bracket`` from the result files, or None while its
    plan still waits for runs; empty for an experiment without a staircase.
    """
    if exp.staircase is None:
        return {}
    return {
        (task.task, model): bracket
        for task in exp.tasks
        for model, bracket in runs_module.variant_brackets(
            exp, task, choice, status.recorded
        ).items()
    }


def planned(exp: Experiment, mlflow_runs: list | None = None) -> tuple:
    """``(runs, tuned, selections)``: one row per planned evaluation run and per tuning run of
    ``exp`` (``RESULT_COLUMNS``), from the result files, where each stands (``status.survey``),
    and what tuning chose. Without ``mlflow_runs`` (the experiment's MLflow runs), a run with no
    result file is ``missing`` whatever its attempts did.
    """
    known = None if mlflow_runs is None else {r.info.run_id for r in mlflow_runs}
    return _frames(status.survey(exp, mlflow_runs), known)


def _frames(found: status.Survey, known: set[str] | None) -> tuple:
    """(runs, tuned, selections) of a survey: its evaluation and tuning runs as rows."""
    tuned = _frame([_row(s, known) for s in found.tuning])
    runs = _frame([_row(s, known) for s in found.evaluation])
    return runs, tuned, found.selections


def tables(experiment: str | Path, curves: bool = True) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``pipeline.results``: (runs, curves) of the experiment file or name ``experiment``."""
    exp = config.load(paths.experiment_path(experiment))
    mlflow_runs, source = status.attempts(exp)
    runs, tuned, _ = planned(exp, mlflow_runs)
    if not tuned.empty:
        runs = pd.concat([runs, tuned], ignore_index=True)
    probed = runs[runs["status"].isin(FINISHED) & runs["probe_data"]]
    if not curves or probed.empty:
        return runs, pd.DataFrame(columns=CURVE_COLUMNS)
    if not mlflow_runs:
        warnings.warn(f"probe curves not read: {source}", stacklevel=3)
        return runs, pd.DataFrame(columns=CURVE_COLUMNS)
    with quiet_artifacts():
        return runs, _curves(paths.tracking_uri(), probed)


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


def _row(standing: status.Standing, known: set[str] | None) -> dict:
    """One run's row: its result file's fields when finished, else its status and why;
    ``known``: the MLflow run ids there are (None: not read).
    """
    spec = standing.spec
    task = spec.task.build()
    row = {
        **{k: v for k, v in spec.identity().items() if k in RESULT_COLUMNS},
        "hidden_size": spec.hidden_size,
        "batch_size": spec.training.batch_size,
        "parameters": spec.parameter_count,
        "chance_accuracy": task.chance_accuracy(spec.distance),
        "baseline_loss": task.baseline_loss(spec.distance),
        "probe_data": False,
        "status": standing.status,
        "run_id": standing.run_id,
        "note": standing.note or None,
    }
    if standing.result is None:
        return row
    result = standing.result.flat()
    row |= {k: result.get(k) for k in RESULT_COLUMNS if k in result}
    row["probe_data"] = any(result.get(k) is not None for k in PROBE_COLUMNS)
    row["environment"] = environment_text(result.get("environment") or {})
    for phase in PHASES:
        for state in STATES:  # the result file stores an infinite e-folding length as null
            rho = result.get(f"probe_{phase}_{state}_rho")
            row[f"probe_{phase}_{state}_efold"] = efold(rho) if rho is not None else None
    if row["status"] == "diverged":
        row["note"] = f"diverged at step {result.get('diverged_step')}"
    if known is not None and result.get("run_id") not in known:
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


def _curves(tracking_uri: str, probed: pd.DataFrame) -> pd.DataFrame:
    """The probe.csv artifacts of ``probed`` runs, with each run's identity in front."""
    found = _per_run_csv(tracking_uri, probed, "probe.csv", ["phase", "step", "k"])
    return found if not found.empty else pd.DataFrame(columns=CURVE_COLUMNS)


def _per_run_csv(
    tracking_uri: str, runs: pd.DataFrame, artifact: str, columns: list[str]
) -> pd.DataFrame:
    """The CSV artifact ``artifact`` of each of ``runs``, with the run's identity in front; a
    run without it is left out (empty: ``IDENTITY`` and ``columns`` only).
    """
    import mlflow.artifacts

    frames = []
    for run in runs[IDENTITY].itertuples(index=False):
        try:
            local = mlflow.artifacts.download_artifacts(
                run_id=run.run_id, artifact_path=artifact, tracking_uri=tracking_uri
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
