"""The report stage: accuracy and gradient norm against distance, from one experiment's runs.

Reads the per-run result files and the experiment's MLflow runs (never training code) into tidy
tables and writes ``reports/<experiment>/``:

    report.html   one self-contained page (figures embedded as PNG): opens offline
    report.md     the same content in Markdown, figures linked from figures/
    results.csv   one row per planned run of the experiment, unfinished ones included
    probe.csv     the gradient-norm curves of every probed run: one row per (run, phase, k)
    figures/      every figure as PNG; the gradient curves also as SVG

The folder is built beside its final place and swapped in whole, so an interruption leaves the
previous report (or none), never half of one. The same files are then logged as artifacts of the
experiment's one summary run in MLflow (tag ``summary=true``, run name ``report``), which
replaces the previous summary run.

A run's ``status`` in the report: ``solved``, ``unsolved`` or ``diverged`` for a finished run (as
its result file says); ``failed`` when it has no result file and its last MLflow attempt failed;
``stale`` when its result file belongs to another configuration of the run (a changed experiment
file, not yet retrained); ``missing`` otherwise.

This module reads (``collect``), assembles the page (``document``, ``provenance``), renders it
and writes the folder; the figures are drawn in ``figures``, the tables and findings written in
``findings``.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import shutil
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from pipeline import config, paths, tracking
from pipeline.config import Experiment, RunSpec
from pipeline.errors import ConfigError, ReportError
from pipeline.figures import Plot, plots
from pipeline.findings import (
    FINISHED,
    PHASES,
    STATES,
    Sweep,
    decay_table,
    efold,
    findings,
    horizon_table,
    init_setting,
    problem_table,
    runs_table,
    share_table,
)

PROBE_COLUMNS = [
    f"probe_{phase}_{state}_{stat}"
    for phase in PHASES
    for state in STATES
    for stat in ("key_share", "rho", "efold")
]
RESULT_COLUMNS = [
    "task", "model", "cell", "distance", "seed", "status",
    "test_accuracy", "test_loss", "baseline_loss", "chance_accuracy", "best_val_accuracy",
    "steps", "steps_to_solve", "solved", "diverged_step", "mean_grad_norm", "wall_time",
    "probe_data", *PROBE_COLUMNS, "run_key", "run_id", "note",
]  # fmt: skip
IDENTITY = ["run_id", "run_key", "task", "model", "cell", "distance", "seed"]
HISTORIES = ("grad_norm", "val_accuracy")  # metric histories the figures draw


def run(exp: Experiment, experiment_file: str | Path | None = None) -> Path:
    """Write ``reports/<experiment>/`` and attach it to MLflow; returns the path of report.html.

    ``experiment_file`` (default ``experiments/<name>.yaml``) is hashed for the provenance.
    Raises ReportError when the MLflow experiment does not exist or no run has finished, and
    TrackingError for an unreachable store.
    """
    client = tracking.connect()
    sweep = collect(exp, client)
    folder = paths.reports_dir(exp.name)
    with _staging(folder) as stage:
        write(sweep, stage, Path(experiment_file or paths.experiment_file(exp.name)))
    attach(client, sweep, folder)
    return folder / "report.html"


# ---- reading -----------------------------------------------------------------------------


def collect(exp: Experiment, client) -> Sweep:
    """Read the result files and MLflow runs of ``exp``. Raises ReportError when there is no
    MLflow experiment of that name or no finished run.
    """
    found = tracking.retry(lambda: client.get_experiment_by_name(exp.name))
    if found is None or found.lifecycle_stage == "deleted":
        raise ReportError(
            f"no MLflow experiment {exp.name!r} in {client.tracking_uri}: train it first "
            f"(python -m pipeline train --experiment experiments/{exp.name}.yaml)"
        )
    mlflow_runs = [
        r
        for r in tracking.search(client, found.experiment_id)
        if r.data.tags.get(tracking.SUMMARY_TAG) != "true"
    ]
    runs = pd.DataFrame([_row(spec, mlflow_runs) for spec in exp.runs], columns=RESULT_COLUMNS)
    runs = runs.astype(
        {"steps": "Int64", "steps_to_solve": "Int64", "diverged_step": "Int64", "solved": "boolean"}
    )
    if not runs["status"].isin(FINISHED).any():
        raise ReportError(
            f"experiment {exp.name!r} has no finished runs (no current result files under "
            f"{paths.results_dir(exp.name)}); train it first"
        )
    known = {r.info.run_id: r for r in mlflow_runs}
    finished = runs[runs["status"].isin(FINISHED) & runs["run_id"].isin(known)]
    commits = sorted({known[i].data.tags.get("code_commit", "unknown") for i in finished.run_id})
    with _quiet_artifacts():
        curves = _curves(client, finished[finished["probe_data"]])
    return Sweep(
        exp=exp,
        experiment_id=found.experiment_id,
        tracking_uri=client.tracking_uri,
        runs=runs,
        curves=curves,
        history=_history(client, finished),
        commits=commits,
    )


def _row(spec: RunSpec, mlflow_runs: list) -> dict:
    """One run's row: from its result file when current, else why it has none."""
    identity = {
        "task": spec.task.task,
        "model": spec.model.name,
        "cell": spec.model.cell,
        "distance": spec.distance,
        "seed": spec.seed,
        "run_key": spec.key,
        "chance_accuracy": spec.task.build().chance_accuracy(spec.distance),
        "baseline_loss": spec.task.build().baseline_loss(spec.distance),
        "probe_data": False,
    }
    path = paths.result_file(spec.experiment, spec.key)
    try:
        result = json.loads(path.read_text())
    except FileNotFoundError:
        return identity | _unfinished(spec, mlflow_runs)
    except (OSError, json.JSONDecodeError) as e:
        return identity | {"status": "missing", "note": f"unreadable result file: {e}"}
    if result.get(tracking.CONFIG_HASH) != spec.config_hash:
        return identity | {
            "status": "stale",
            "run_id": result.get("run_id"),
            "note": "result file is from another configuration of this run; train again",
        }
    row = identity | {k: result.get(k) for k in RESULT_COLUMNS if k in result}
    row["probe_data"] = any(result.get(k) is not None for k in PROBE_COLUMNS)
    for phase in PHASES:
        for state in STATES:  # the result file stores an infinite e-folding length as null
            rho = result.get(f"probe_{phase}_{state}_rho")
            row[f"probe_{phase}_{state}_efold"] = efold(rho) if rho is not None else None
    if row["status"] == "diverged":
        row["note"] = f"diverged at step {result.get('diverged_step')}"
    if result.get("run_id") not in {r.info.run_id for r in mlflow_runs}:
        row["note"] = "no MLflow run with this id (training curves unavailable)"
    return row


def _unfinished(spec: RunSpec, mlflow_runs: list) -> dict:
    """Status and note of a run without a result file, from its latest MLflow attempt."""
    attempts = [r for r in mlflow_runs if r.data.tags.get(tracking.RUN_KEY) == spec.key]
    if not attempts:
        return {"status": "missing", "note": "never trained"}
    last = max(attempts, key=lambda r: r.info.start_time or 0)
    if last.info.status == "FAILED":
        error = last.data.tags.get("error", "no error recorded")
        return {"status": "failed", "run_id": last.info.run_id, "note": error[:300]}
    return {
        "status": "missing",
        "run_id": last.info.run_id,
        "note": f"last attempt {last.info.status} without a result file",
    }


@contextmanager
def _quiet_artifacts() -> Iterator[None]:
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
    import mlflow.artifacts

    frames = []
    for run in probed.itertuples(index=False):
        try:
            local = mlflow.artifacts.download_artifacts(
                run_id=run.run_id, artifact_path="probe.csv", tracking_uri=client.tracking_uri
            )
        except Exception:  # an artifact lost or never written: the run shows without curves
            continue
        frame = pd.read_csv(local)
        for column in reversed(IDENTITY):
            frame.insert(0, column, getattr(run, column))
        frames.append(frame)
    columns = [*IDENTITY, "phase", "step", "k"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def _history(client, finished: pd.DataFrame) -> pd.DataFrame:
    """Metric histories ``HISTORIES`` of the finished runs, long format."""
    rows = []
    for run in finished.itertuples(index=False):
        for key in HISTORIES:
            points = tracking.retry(lambda r=run.run_id, k=key: client.get_metric_history(r, k))
            rows += [(*(getattr(run, c) for c in IDENTITY), key, p.step, p.value) for p in points]
    return pd.DataFrame(rows, columns=[*IDENTITY, "metric", "step", "value"])


# ---- the document: one structure, rendered as HTML and as Markdown -------------------------


@dataclass
class Section:
    title: str
    blocks: list = field(default_factory=list)  # str (paragraph), list[str] (bullets),
    # pd.DataFrame (table), Plot (figure)


def document(sweep: Sweep, drawn: list[Plot], experiment_file: Path) -> list[Section]:
    exp = sweep.exp
    intro = (
        f"Experiment {exp.name}: {len(exp.models)} model(s) trained on "
        f"{', '.join(t.task for t in exp.tasks)} at distances "
        f"{'; '.join(f'{t.task} {t.distances}' for t in exp.tasks)} with seeds {exp.seeds}. "
        "The distance is the number of time steps from the input step carrying the needed "
        "information (the key) to the output step scored on it. The question: up to what "
        "distance does each model learn the dependency, and how much of the loss's gradient "
        "reaches the key step?"
    )
    sections = [Section("Summary", [intro]), Section("Findings", [findings(sweep)])]
    sections.append(Section("Figures", list(drawn)))
    tables = Section("Tables")
    for task in sweep.tasks:
        tables.blocks += [
            f"{task}: memory horizon (the largest distance solved in at least half the seeds) "
            "and solved/planned runs per distance.",
            horizon_table(sweep, task),
        ]
        decay = decay_table(sweep, task)
        if not decay.empty:
            tables.blocks += [
                f"{task}: per-step decay rho of the gradient norm (fitted on log norm against k "
                "for 1 <= k <= distance) and e-folding length -1/ln(rho), median over runs.",
                decay,
                f"{task}: share of the output step's gradient reaching the key step, median "
                "over seeds, at initialisation → after training (0.0e+00: the gradient "
                "underflowed float32 before reaching the key).",
                share_table(sweep, task),
            ]
    sections.append(tables)
    problems = problem_table(sweep)
    sections.append(
        Section(
            "Problem runs",
            ["Runs that failed, diverged, are missing or stale, or have no probe data.", problems]
            if not problems.empty
            else ["None: every planned run finished without diverging, with probe data."],
        )
    )
    sections.append(Section("Provenance", [provenance(sweep, experiment_file)]))
    sections.append(Section("All runs", [runs_table(sweep)]))
    return sections


def provenance(sweep: Sweep, experiment_file: Path) -> list[str]:
    exp, t = sweep.exp, sweep.exp.training
    inits = "; ".join(f"{m.name}: {m.cell}, {init_setting(exp, m.name)}" for m in exp.models)
    return [
        _source(exp, experiment_file),
        "Code commit(s) the runs were trained at: " + (", ".join(sweep.commits) or "unknown") + ".",
        f"MLflow: experiment {exp.name!r} (id {sweep.experiment_id}) at {sweep.tracking_uri}; "
        "run ids in results.csv and the table of all runs.",
        f"Report written {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}.",
        f"Training budget: at most {t.max_steps} updates x batch {t.batch_size} = "
        f"{t.max_steps * t.batch_size:,} sequences per run; {t.optimizer}, learning rate "
        f"{t.learning_rate:g}; stop at validation accuracy {t.solved_accuracy:g}, checked every "
        f"{t.eval_every} updates; data {exp.data.n_train}/{exp.data.n_val}/{exp.data.n_test} "
        "train/val/test sequences.",
        f"Models: {inits}.",
        f"Gradient norms are taken before clipping (global L2 norm; clipped to {t.grad_clip} "
        f"for the update). Probes: {exp.probe.batch_size} validation sequences, at "
        f"initialisation, {_every(exp.probe.every_evals)} and after training.",
    ]


def _source(exp: Experiment, experiment_file: Path) -> str:
    """The experiment file and its hash, checked to hold the settings this report was given
    (a file of the same name elsewhere, or one edited since, would misattribute the runs).
    """
    try:
        same = config.load(experiment_file) == exp
    except ConfigError as e:
        return f"Experiment file: {experiment_file} unusable ({e}); settings as loaded."
    digest = hashlib.sha256(experiment_file.read_bytes()).hexdigest()
    text = f"Experiment file: {experiment_file} (sha256 {digest})"
    return text + ("." if same else ", which differs from the settings of this report.")


def _every(n: int) -> str:
    if n == 0:
        return "never during training"
    return "every validation" if n == 1 else f"every {n} validations"


def _png_base64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


CSS = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }
th { background: #f2f2f2; }
figure { margin: 1.5em 0; } figure img { max-width: 100%; }
figcaption { color: #444; font-size: 0.95em; }
"""


def render_html(sections: list[Section], title: str, folder: Path) -> str:
    """The page; figures are embedded (base64 PNG) so the file alone shows everything."""
    body, number = [f"<h1>{html.escape(title)}</h1>"], 0
    for section in sections:
        body.append(f"<h2>{html.escape(section.title)}</h2>")
        for block in section.blocks:
            if isinstance(block, str):
                body.append(f"<p>{html.escape(block)}</p>")
            elif isinstance(block, list):
                items = "".join(f"<li>{html.escape(item)}</li>" for item in block)
                body.append(f"<ul>{items}</ul>")
            elif isinstance(block, pd.DataFrame):
                body.append(block.to_html(index=False, escape=True, border=0))
            elif isinstance(block, Plot):
                number += 1
                png = _png_base64(folder / "figures" / f"{block.name}.png")
                vector = f' (<a href="figures/{block.name}.svg">SVG</a>)' if block.svg else ""
                body.append(
                    f'<figure id="{block.name}"><img alt="{html.escape(block.title)}" '
                    f'src="data:image/png;base64,{png}"><figcaption>Figure {number}. '
                    f"{html.escape(block.title)}. {html.escape(block.caption)}{vector}"
                    "</figcaption></figure>"
                )
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def render_markdown(sections: list[Section], title: str) -> str:
    out, number = [f"# {title}", ""], 0
    for section in sections:
        out += [f"## {section.title}", ""]
        for block in section.blocks:
            if isinstance(block, str):
                out += [block, ""]
            elif isinstance(block, list):
                out += [f"- {item}" for item in block] + [""]
            elif isinstance(block, pd.DataFrame):
                # numbers are already formatted: keep "3.4e-02" as written
                out += [block.to_markdown(index=False, disable_numparse=True), ""]
            elif isinstance(block, Plot):
                number += 1
                out += [
                    f"![{block.title}](figures/{block.name}.png)",
                    "",
                    f"*Figure {number}. {block.title}. {block.caption}*",
                    "",
                ]
    return "\n".join(out)


# ---- writing -------------------------------------------------------------------------------


def write(sweep: Sweep, folder: Path, experiment_file: Path) -> None:
    """Write every report file into the (empty) ``folder``."""
    (folder / "figures").mkdir(parents=True)
    sweep.runs.to_csv(folder / "results.csv", index=False)
    sweep.curves.to_csv(folder / "probe.csv", index=False)
    drawn = plots(sweep)
    for plot in drawn:  # PNG for every figure; SVG only where it helps (it costs a second each)
        for suffix in ("png", "svg") if plot.svg else ("png",):
            plot.figure.savefig(folder / "figures" / f"{plot.name}.{suffix}", dpi=110)
    title = f"Long-term dependencies in recurrent networks: experiment {sweep.exp.name}"
    sections = document(sweep, drawn, experiment_file)
    (folder / "report.html").write_text(render_html(sections, title, folder))
    (folder / "report.md").write_text(render_markdown(sections, title))


@contextmanager
def _staging(folder: Path) -> Iterator[Path]:
    """Yield an empty folder beside ``folder``; on success it replaces ``folder`` whole, on any
    error it is removed and ``folder`` is left as it was.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    for leftover in folder.parent.glob(f".{folder.name}.*"):  # from an interrupted report
        shutil.rmtree(leftover, ignore_errors=True)
    stage = folder.with_name(f".{folder.name}.new-{os.getpid()}")
    stage.mkdir()
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    old = folder.with_name(f".{folder.name}.old-{os.getpid()}")
    if folder.exists():
        os.replace(folder, old)  # two renames: the report is never half written, only briefly
    os.replace(stage, folder)  # absent between them
    shutil.rmtree(old, ignore_errors=True)


def attach(client, sweep: Sweep, folder: Path) -> str:
    """Log ``folder`` as the artifacts of a new summary run, ended FINISHED, then delete the
    previous summary runs; returns the new run's id.
    """
    exp_id = sweep.experiment_id
    previous = tracking.search(client, exp_id, f"tags.{tracking.SUMMARY_TAG} = 'true'")
    run = tracking.retry(
        lambda: client.create_run(
            exp_id,
            run_name="report",
            tags={tracking.SUMMARY_TAG: "true", "experiment": sweep.exp.name},
        )
    )
    run_id = run.info.run_id
    try:
        with _quiet_artifacts():
            tracking.retry(lambda: client.log_artifacts(run_id, str(folder)))
    except BaseException as e:
        status = "KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED"
        tracking.retry(lambda: client.set_terminated(run_id, status))
        raise
    tracking.retry(lambda: client.set_terminated(run_id, "FINISHED"))
    for old in previous:  # only once the new one is complete: never no summary at all
        tracking.retry(lambda r=old.info.run_id: client.delete_run(r))
        _remove_local_artifacts(old.info.run_id, old.info.artifact_uri)
    return run_id


def _remove_local_artifacts(run_id: str, uri: str) -> None:
    """Remove a deleted summary run's artifact folder when it is a local one: MLflow keeps a
    deleted run's files until ``mlflow gc``, so each report would leave a copy behind.
    """
    if not uri.startswith("file:"):
        return
    folder = Path(urllib.parse.urlparse(uri).path)
    if folder.name == "artifacts" and folder.parent.name == run_id:  # the run's own folder
        shutil.rmtree(folder.parent, ignore_errors=True)
