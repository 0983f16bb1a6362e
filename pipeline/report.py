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
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import os
import shutil
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from pipeline import config, paths, tracking
from pipeline.config import Experiment, RunSpec
from pipeline.errors import ConfigError, ReportError

FINISHED = ("solved", "unsolved", "diverged")
PHASES, STATES = ("init", "final"), ("h", "c")
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
FEW = 4  # distances drawn in the per-distance figures (spread over the experiment's range)
NO_PROBE = "no probe data"
SHARE_LABEL = r"$\|\partial L/\partial h_{key}\| \;/\; \|\partial L/\partial h_{out}\|$"


@dataclass
class Sweep:
    """Everything the report shows, read once.

    ``runs``: one row per planned run (``RESULT_COLUMNS``). ``curves``: rows of the runs'
    ``probe.csv`` artifacts with the run's identity. ``history``: long format (identity, metric,
    step, value) of ``HISTORIES``. ``commits``: code commits the finished runs were trained at.
    """

    exp: Experiment
    experiment_id: str
    tracking_uri: str
    runs: pd.DataFrame
    curves: pd.DataFrame
    history: pd.DataFrame
    commits: list[str] = field(default_factory=list)

    @property
    def finished(self) -> pd.DataFrame:
        return self.runs[self.runs["status"].isin(FINISHED)]

    @property
    def models(self) -> list[str]:
        return [m.name for m in self.exp.models]

    @property
    def palette(self) -> dict[str, tuple]:
        """One colour per model, the same in every figure."""
        colours = sns.color_palette("colorblind", len(self.models))
        return dict(zip(self.models, colours, strict=True))


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


def efold(rho: float) -> float:
    """Steps for the gradient to shrink by e, -1 / ln(rho); inf when it does not shrink."""
    if rho is None or not math.isfinite(rho) or rho <= 0:
        return math.nan
    return math.inf if rho >= 1 else -1 / math.log(rho)


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


# ---- numbers: horizons, decay, shares -----------------------------------------------------


def success_counts(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (task, model, distance): runs ``solved``, ``finished`` and ``planned`` (seeds)."""
    flags = runs.assign(
        is_solved=runs["status"] == "solved", is_finished=runs["status"].isin(FINISHED)
    )
    return (
        flags.groupby(["task", "model", "distance"], sort=False)
        .agg(
            solved=("is_solved", "sum"),
            finished=("is_finished", "sum"),
            planned=("status", "size"),
        )
        .reset_index()
    )


def horizons(counts: pd.DataFrame) -> dict[tuple[str, str], int | None]:
    """Memory horizon per (task, model): the largest distance solved in at least half of the
    planned seeds (a missing run counts as not solved); None where no distance was.
    """
    held = counts[(counts["solved"] > 0) & (2 * counts["solved"] >= counts["planned"])]
    out: dict[tuple[str, str], int | None] = {
        (t, m): None for t, m in counts[["task", "model"]].itertuples(index=False)
    }
    for (task, model), group in held.groupby(["task", "model"], sort=False):
        out[(task, model)] = int(group["distance"].max())
    return out


def median_of(runs: pd.DataFrame, column: str) -> float:
    """Median of ``column`` over the runs that have it (nan when none does)."""
    values = pd.to_numeric(runs[column], errors="coerce").dropna()
    return float(values.median()) if len(values) else math.nan


def sci(x: float) -> str:
    """A gradient share as the report writes it everywhere: ``3.4e-02``."""
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.1e}"


def steps_text(x: float) -> str:
    """An e-folding length in steps: ``12.3``, ``∞`` when the gradient does not shrink."""
    if x is None or math.isnan(x):
        return "n/a"
    return "∞" if math.isinf(x) else f"{x:.1f}"


def _init_setting(exp: Experiment, model: str) -> str:
    m = next(m for m in exp.models if m.name == model)
    size = m.hidden_size or exp.hidden_size
    if m.cell != "lstm":
        return f"hidden {size}, PyTorch default init"
    if m.chrono_t_max is not None:
        return f"hidden {size}, chrono init (t_max {m.chrono_t_max})"
    bias = 1.0 if m.forget_bias is None else m.forget_bias
    return f"hidden {size}, forget_bias {bias:g}"


# ---- figures -------------------------------------------------------------------------------


@dataclass
class Plot:
    """A figure of the report: file stem, title, and the one line that says what to look for.
    ``svg``: also saved as SVG, for figures whose many decades a reader zooms into.
    """

    name: str
    title: str
    caption: str
    figure: Figure
    svg: bool = False


def few(distances: list[int], n: int = FEW) -> list[int]:
    """Up to ``n`` of the sorted ``distances``, spread over the range, first and last included."""
    distances = sorted(set(distances))
    if len(distances) <= n:
        return distances
    picks = np.linspace(0, len(distances) - 1, n).round().astype(int)
    return [distances[i] for i in sorted(set(picks))]


def _figure(rows: int, cols: int, width: float = 3.6, height: float = 2.9):
    # +2 inches for the legend on the right; at least 7 wide so a one-panel title fits
    size = (max(width * cols + 2.0, 7.0), height * rows + 0.7)
    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.subplots(rows, cols, squeeze=False)


def _distance_axis(ax, distances: list[int]) -> None:
    """Distances usually double from one to the next: a log axis spaces them evenly."""
    ax.set_xscale("log", base=2)
    ax.set_xticks(distances, [str(d) for d in distances])
    ax.minorticks_off()
    ax.set_xlabel("distance (steps, key to output)")


def _legend(fig: Figure, axes) -> None:
    """One legend for the figure instead of one per panel: every label once, in first-seen
    order (a panel may lack a model that another has).
    """
    entries: dict[str, object] = {}
    for ax in np.ravel(axes):
        if ax.get_legend() is not None:
            for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
                entries.setdefault(label, handle)
            ax.get_legend().remove()
    if entries:
        _figure_legend(fig, list(entries.values()), list(entries))


def _figure_legend(fig: Figure, handles: list, labels: list) -> None:
    """Right of the panels, one column (seaborn's grouped entries stay grouped), centred so its
    top stays clear of the figure's title.
    """
    fig.legend(handles, labels, loc="outside right center", frameon=False)


def _log_span(ax, decades: float = 2.0) -> None:
    """Widen a log y axis to at least ``decades`` decades, so it carries labelled ticks."""
    low, high = ax.get_ylim()
    if high / low < 10**decades:
        middle = math.sqrt(low * high)
        ax.set_ylim(middle / 10 ** (decades / 2), middle * 10 ** (decades / 2))


def _hide_unused(axes, used: int) -> None:
    for ax in np.ravel(axes)[used:]:
        ax.set_visible(False)


def plot_accuracy(sweep: Sweep) -> Plot:
    runs, tasks = sweep.finished, [t.task for t in sweep.exp.tasks]
    fig, axes = _figure(1, len(tasks))
    for ax, task in zip(axes[0], tasks, strict=True):
        part = runs[runs["task"] == task]
        sns.lineplot(
            part, x="distance", y="test_accuracy", hue="model", hue_order=sweep.models,
            palette=sweep.palette, errorbar=("ci", 95), seed=0, n_boot=1000, marker="o", ax=ax,
        )  # fmt: skip
        chance = sweep.runs[sweep.runs["task"] == task].groupby("distance")["chance_accuracy"]
        ax.plot(chance.first().index, chance.first().values, "k--", lw=1, label="chance")
        _distance_axis(ax, sorted(part["distance"].unique()))
        ax.set(title=task, ylabel="test accuracy (fraction correct)", ylim=(0, 1.04))
    _legend(fig, axes)
    fig.suptitle("Test accuracy against distance")
    n_seeds = len(sweep.exp.seeds)
    return Plot(
        "accuracy_vs_distance",
        "Accuracy against distance",
        f"Mean over {n_seeds} seed(s), band: 95% bootstrap interval (seeded); look for the "
        "distance where each model falls to the dashed chance line.",
        fig,
    )


def _relative_curves(curves: pd.DataFrame, task: str) -> pd.DataFrame:
    """init/final curves of ``task`` normalised by each probe's own k=0 norm, median over seeds:
    columns model, distance, phase, state, k, norm.
    """
    part = curves[(curves["task"] == task) & curves["phase"].isin(PHASES)]
    long = []
    for state in STATES:
        column = f"{state}_median"
        if column not in part:
            continue
        values = part.dropna(subset=[column])
        at_zero = values[values["k"] == 0].set_index(["run_id", "phase"])[column]
        scale = values.set_index(["run_id", "phase"]).index.map(at_zero)
        long.append(values.assign(state=state, norm=values[column].to_numpy() / scale.to_numpy()))
    if not long:
        return pd.DataFrame(columns=["model", "distance", "phase", "state", "k", "norm"])
    rel = pd.concat(long)
    rel = rel[rel["norm"] > 0]  # float32 underflow: no point on a log axis
    keys = ["model", "distance", "phase", "state", "k"]
    return rel.groupby(keys, sort=False)["norm"].median().reset_index()


def plot_gradient_curves(sweep: Sweep, task: str) -> Plot | None:
    rel = _relative_curves(sweep.curves, task)
    if rel.empty:
        return None
    models = [m for m in sweep.models if m in set(rel["model"])]
    distances = few(rel["distance"].unique())
    fig, axes = _figure(len(models), len(distances), width=3.0, height=2.3)
    colours = {"h": "#1f4e9c", "c": "#d55e00"}
    styles = {"init": (0, (3, 2)), "final": "-"}
    for row, model in enumerate(models):
        for col, d in enumerate(distances):
            ax = axes[row][col]
            for (phase, state), line in rel[
                (rel["model"] == model) & (rel["distance"] == d)
            ].groupby(["phase", "state"]):
                ax.plot(line["k"], line["norm"], color=colours[state], ls=styles[phase], lw=1.4)
            ax.axvline(d, color="0.3", ls=":", lw=1)
            ax.set_yscale("log")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_title(f"{model}, trained at distance {d}", fontsize=9)
            ax.set_xlabel("k (steps back from output)" if row == len(models) - 1 else "")
            ax.set_ylabel("norm / norm at k=0" if col == 0 else "")
    for ax_row in axes:  # one y range per row: the panels of a model compare across distances
        low = min(a.get_ylim()[0] for a in ax_row)
        for a in ax_row:
            a.set_ylim(max(low, 1e-40), 5)
    handles = [
        Line2D([], [], color=colours["h"], label="hidden state h"),
        Line2D([], [], color=colours["c"], label="cell state c (LSTM)"),
        Line2D([], [], color="k", ls=styles["init"], label="at initialisation"),
        Line2D([], [], color="k", ls=styles["final"], label="after training"),
        Line2D([], [], color="0.3", ls=":", label="key step (k = distance)"),
    ]
    _figure_legend(fig, handles, [h.get_label() for h in handles])
    fig.suptitle(rf"{task}: gradient norm $\|\partial L/\partial h_{{s-k}}\|$ against steps back k")
    return Plot(
        f"gradient_vs_k_{task}",
        f"Gradient norm against steps back ({task})",
        "Median over probe samples and seeds, relative to the output step (log scale); a "
        "straight falling line is geometric decay: look at how far below 1 each curve is at "
        "the dotted key step.",
        fig,
        svg=True,
    )


def plot_key_share(sweep: Sweep) -> Plot | None:
    runs = sweep.finished[sweep.finished["probe_data"]]
    if runs.empty:
        return None
    tasks = [t.task for t in sweep.exp.tasks if t.task in set(runs["task"])]
    fig, axes = _figure(len(tasks), 3, width=3.3)
    panels = [
        ("probe_init_h_key_share", "key share at initialisation"),
        ("probe_final_h_key_share", "key share after training"),
    ]
    for row, task in enumerate(tasks):
        part = runs[runs["task"] == task]
        distances = sorted(part["distance"].unique())
        for col, (column, label) in enumerate(panels):
            ax = axes[row][col]
            data = part[pd.to_numeric(part[column], errors="coerce") > 0]
            sns.lineplot(
                data, x="distance", y=column, hue="model", hue_order=sweep.models,
                palette=sweep.palette, estimator="median", errorbar=("pi", 100), marker="o",
                ax=ax,
            )  # fmt: skip
            ax.set_yscale("log")
            _log_span(ax)
            ax.set(title=f"{task}: {label}", ylabel=SHARE_LABEL)
            _distance_axis(ax, distances)
        ax = axes[row][2]
        sns.lineplot(
            part, x="distance", y="test_accuracy", hue="model", hue_order=sweep.models,
            palette=sweep.palette, errorbar=("ci", 95), seed=0, marker="o", ax=ax,
        )  # fmt: skip
        ax.set(title=f"{task}: test accuracy", ylabel="test accuracy (fraction)", ylim=(0, 1.04))
        _distance_axis(ax, distances)
    _legend(fig, axes)
    fig.suptitle("Share of the gradient reaching the key step, beside accuracy")
    return Plot(
        "key_share_vs_distance",
        "Gradient share reaching the key step, beside accuracy",
        "Hidden-state share, median over seeds (band: range over seeds); where the share "
        "collapses by orders of magnitude, accuracy falls to chance." + _underflow_note(runs),
        fig,
    )


def _underflow_note(runs: pd.DataFrame) -> str:
    """A caption's note on shares that underflowed to 0 (no point on a log axis), if any."""
    shares = runs[[f"probe_{phase}_h_key_share" for phase in PHASES]]
    zeros = int((shares == 0).sum().sum())
    if not zeros:
        return ""
    return f" {zeros} share(s) underflowed to 0 (below float32 range) and are not drawn."


def _per_distance_grid(sweep: Sweep, metric: str):
    """(figure, axes, [(axis, task, distance, rows)]) for a metric history at a few distances."""
    hist = sweep.history[sweep.history["metric"] == metric]
    tasks = [t.task for t in sweep.exp.tasks if t.task in set(hist["task"])]
    picks = {t: few(hist.loc[hist["task"] == t, "distance"].unique()) for t in tasks}
    fig, axes = _figure(len(tasks), max(len(p) for p in picks.values()), width=3.2)
    cells = []
    for row, task in enumerate(tasks):
        for col, d in enumerate(picks[task]):
            rows = hist[(hist["task"] == task) & (hist["distance"] == d)]
            cells.append((axes[row][col], task, d, rows))
        _hide_unused(axes[row], len(picks[task]))
    return fig, axes, cells


def plot_grad_norm(sweep: Sweep) -> Plot | None:
    if sweep.history[sweep.history["metric"] == "grad_norm"].empty:
        return None
    fig, axes, cells = _per_distance_grid(sweep, "grad_norm")
    clip = sweep.exp.training.grad_clip
    for ax, task, d, rows in cells:
        sns.lineplot(
            rows, x="step", y="value", hue="model", hue_order=sweep.models,
            palette=sweep.palette, estimator="median", errorbar=None, lw=1.2, marker=".",
            markersize=4, markeredgewidth=0, ax=ax,
        )  # fmt: skip
        if clip is not None:
            ax.axhline(clip, color="k", ls="--", lw=1, label=f"clip threshold ({clip:g})")
        ax.set_yscale("log")
        ax.set(title=f"{task}, distance {d}", xlabel="training step (updates)")
        ax.set_ylabel("pre-clip gradient norm (L2)")
    _legend(fig, axes)
    fig.suptitle("Global gradient norm during training, before clipping")
    return Plot(
        "grad_norm_training",
        "Gradient norm during training",
        f"Median over seeds of {sweep.exp.training.log_every}-step window means, before "
        "clipping; spikes above the dashed threshold are the exploding gradients clipping cuts.",
        fig,
    )


def plot_steps_to_solve(sweep: Sweep) -> Plot:
    runs, tasks = sweep.finished, [t.task for t in sweep.exp.tasks]
    budget = sweep.exp.training.max_steps
    ceiling = budget * 1.15  # where unsolved runs are drawn: above the budget line
    fig, axes = _figure(1, len(tasks), width=4.0)
    for ax, task in zip(axes[0], tasks, strict=True):
        part = runs[runs["task"] == task].copy()
        distances = sorted(part["distance"].unique())
        slot = {d: i for i, d in enumerate(distances)}
        width = 0.8 / len(sweep.models)
        offset = {m: (i - (len(sweep.models) - 1) / 2) * width for i, m in enumerate(sweep.models)}
        seeds = {s: i for i, s in enumerate(sweep.exp.seeds)}
        jitter = (part["seed"].map(seeds) - (len(seeds) - 1) / 2) * width / (len(seeds) + 1)
        part["x"] = part["distance"].map(slot) + part["model"].map(offset) + jitter
        solved = part["steps_to_solve"].astype("Float64").fillna(ceiling)
        part["y"] = solved.where(part["status"] == "solved", ceiling).astype(float)
        part["outcome"] = part["status"].replace({"unsolved": "not solved"})
        sns.scatterplot(
            part, x="x", y="y", hue="model", hue_order=sweep.models, palette=sweep.palette,
            style="outcome", style_order=["solved", "not solved", "diverged"],
            markers={"solved": "o", "not solved": "X", "diverged": "v"}, s=55, ax=ax,
        )  # fmt: skip
        ax.axhline(budget, color="k", ls="--", lw=1, label=f"budget ({budget} steps)")
        ax.set_xticks(range(len(distances)), [str(d) for d in distances])
        ax.set_xlim(-0.6, len(distances) - 0.4)
        ax.set_ylim(0, ceiling * 1.08)
        ax.set(title=task, xlabel="distance (steps, key to output)")
        ax.set_ylabel("steps to solve (updates)")
        ax.text(-0.5, ceiling, "not solved", va="bottom", fontsize=8, color="0.3")
    _legend(fig, axes)
    fig.suptitle("Training steps until validation accuracy reached the target")
    target = sweep.exp.training.solved_accuracy
    return Plot(
        "steps_to_solve",
        "Steps to solve against distance",
        f"One marker per run (validation accuracy >= {target:g}, checked every "
        f"{sweep.exp.training.eval_every} steps); runs above the dashed budget line never "
        "solved: look for the distance where a model's markers move up there.",
        fig,
    )


def plot_learning_curves(sweep: Sweep) -> Plot | None:
    if sweep.history[sweep.history["metric"] == "val_accuracy"].empty:
        return None
    fig, axes, cells = _per_distance_grid(sweep, "val_accuracy")
    target = sweep.exp.training.solved_accuracy
    for ax, task, d, rows in cells:
        # markers: a run solved at its first validation has a single point, no line
        sns.lineplot(
            rows, x="step", y="value", hue="model", hue_order=sweep.models,
            palette=sweep.palette, units="seed", estimator=None, lw=1.1, alpha=0.85,
            marker="o", markersize=4, markeredgewidth=0, ax=ax,
        )  # fmt: skip
        chance = sweep.runs.loc[
            (sweep.runs["task"] == task) & (sweep.runs["distance"] == d), "chance_accuracy"
        ].iloc[0]
        ax.axhline(chance, color="k", ls="--", lw=1, label="chance")
        ax.axhline(target, color="0.5", ls=":", lw=1, label=f"solved ({target:g})")
        ax.set(title=f"{task}, distance {d}", xlabel="training step (updates)", ylim=(0, 1.04))
        ax.set_ylabel("validation accuracy (fraction)")
    _legend(fig, axes)
    fig.suptitle("Learning curves: validation accuracy during training")
    return Plot(
        "learning_curves",
        "Learning curves",
        "One line per seed; a model that cannot reach the key stays on the dashed chance line "
        "for the whole budget, one that can climbs to the dotted target and stops.",
        fig,
    )


def plots(sweep: Sweep) -> list[Plot]:
    """Every figure the data allows, in the report's order (absent data: figure left out)."""
    drawn = [plot_accuracy(sweep)]
    drawn += [plot_gradient_curves(sweep, t.task) for t in sweep.exp.tasks]
    drawn += [
        plot_key_share(sweep),
        plot_grad_norm(sweep),
        plot_steps_to_solve(sweep),
        plot_learning_curves(sweep),
    ]
    return [p for p in drawn if p is not None]


# ---- tables ----------------------------------------------------------------------------------


def horizon_table(sweep: Sweep, task: str) -> pd.DataFrame:
    """Per model: init, memory horizon with its seed count, and solved/planned per distance."""
    counts = success_counts(sweep.runs[sweep.runs["task"] == task])
    held = horizons(counts)
    rows = []
    for model in sweep.models:
        mine = counts[counts["model"] == model].set_index("distance")
        h = held[(task, model)]
        row = {
            "model": model,
            "cell": sweep.runs.loc[sweep.runs["model"] == model, "cell"].iloc[0],
            "init": _init_setting(sweep.exp, model),
            "memory horizon": "none" if h is None else f"{h} ({_count(mine.loc[h])} seeds)",
        }
        row |= {f"d={d}": _count(c) for d, c in mine.iterrows()}
        rows.append(row)
    return pd.DataFrame(rows)


def _count(c) -> str:
    """``2/3``: seeds solved of planned, with those that did not finish: ``1/3 (1 unfinished)``."""
    text = f"{int(c['solved'])}/{int(c['planned'])}"
    unfinished = int(c["planned"] - c["finished"])
    return text + (f" ({unfinished} unfinished)" if unfinished else "")


def decay_table(sweep: Sweep, task: str) -> pd.DataFrame:
    """Per model and state: fitted decay rho and e-folding length, init and after training,
    median over the task's probed runs.
    """
    runs = sweep.finished[(sweep.finished["task"] == task) & sweep.finished["probe_data"]]
    rows = []
    for model in sweep.models:
        mine = runs[runs["model"] == model]
        for state in STATES:
            if mine.empty or mine[f"probe_init_{state}_rho"].isna().all():
                continue
            row = {"model": model, "state": state, "probed runs": len(mine)}
            for phase, label in (("init", "at init"), ("final", "after training")):
                rho = median_of(mine, f"probe_{phase}_{state}_rho")
                row[f"rho {label}"] = f"{rho:.3f}" if math.isfinite(rho) else "n/a"
                row[f"e-fold {label} (steps)"] = steps_text(efold(rho))
            rows.append(row)
    return pd.DataFrame(rows)


def share_table(sweep: Sweep, task: str) -> pd.DataFrame:
    """Per model and state: median key share per distance, ``init -> after training``."""
    runs = sweep.finished[(sweep.finished["task"] == task) & sweep.finished["probe_data"]]
    rows = []
    for model in sweep.models:
        mine = runs[runs["model"] == model]
        for state in STATES:
            if mine.empty or mine[f"probe_init_{state}_key_share"].isna().all():
                continue
            row = {"model": model, "state": state}
            for d, at in mine.groupby("distance"):
                init = median_of(at, f"probe_init_{state}_key_share")
                final = median_of(at, f"probe_final_{state}_key_share")
                row[f"d={d}"] = f"{sci(init)} → {sci(final)}"
            rows.append(row)
    return pd.DataFrame(rows)


def problem_table(sweep: Sweep) -> pd.DataFrame:
    """Every run that did not finish cleanly, and every finished run without probe data."""
    runs = sweep.runs
    bad = runs[(runs["status"] != "solved") & (runs["status"] != "unsolved")].copy()
    unprobed = runs[runs["status"].isin(FINISHED) & ~runs["probe_data"]].copy()
    unprobed["note"] = [NO_PROBE if pd.isna(n) else f"{n}; {NO_PROBE}" for n in unprobed["note"]]
    both = pd.concat([bad, unprobed[~unprobed.index.isin(bad.index)]]).sort_index()
    return both[["run_key", "status", "note", "run_id"]].fillna("")


def runs_table(sweep: Sweep) -> pd.DataFrame:
    """Every run, readable: accuracy, steps and key shares (or why there are none)."""
    runs = sweep.runs
    table = runs[["task", "model", "distance", "seed", "status"]].copy()
    table["test accuracy"] = runs["test_accuracy"].map(lambda v: "" if pd.isna(v) else f"{v:.3f}")
    table["steps"] = runs["steps"].astype("string").fillna("")
    table["steps to solve"] = runs["steps_to_solve"].astype("string").fillna("")
    for phase in PHASES:
        shares = runs[f"probe_{phase}_h_key_share"].map(lambda v: "" if pd.isna(v) else sci(v))
        unprobed = runs["status"].isin(FINISHED) & ~runs["probe_data"]
        table[f"key share h {phase}"] = shares.where(~unprobed, NO_PROBE)
    table["run_id"] = runs["run_id"].fillna("")
    return table


# ---- findings ------------------------------------------------------------------------------


def findings(sweep: Sweep) -> list[str]:
    """Sentences written from this run's numbers; where the data contradict the usual story
    (gated cells outlasting the tanh RNN), they say so.
    """
    out = [_outcome_counts(sweep.runs)]
    for task in [t.task for t in sweep.exp.tasks]:
        runs = sweep.runs[sweep.runs["task"] == task]
        counts = success_counts(runs)
        held = horizons(counts)
        prefix = f"{task}: " if len(sweep.exp.tasks) > 1 else ""
        out += [prefix + _model_sentence(counts, model) for model in sweep.models]
        out.append(prefix + _ranking(held, task, sweep))
        out += [prefix + s for s in _gradient_sentences(sweep, task, counts)]
    return out


def _outcome_counts(runs: pd.DataFrame) -> str:
    n = runs["status"].value_counts()
    finished = int(n.reindex(list(FINISHED), fill_value=0).sum())
    text = (
        f"{finished} of {len(runs)} planned runs finished: {n.get('solved', 0)} solved, "
        f"{n.get('unsolved', 0)} unsolved, {n.get('diverged', 0)} diverged."
    )
    other = {s: int(n[s]) for s in ("failed", "stale", "missing") if n.get(s, 0)}
    if other:
        text += " Not finished: " + ", ".join(f"{c} {s}" for s, c in other.items())
        text += " (listed under Problem runs)."
    return text


def _model_sentence(counts: pd.DataFrame, model: str) -> str:
    mine = counts[counts["model"] == model]
    if (mine["solved"] == mine["planned"]).all():
        n = int(mine["planned"].max())
        return f"{model} solved every distance up to {mine['distance'].max()} in {n}/{n} seeds."
    held = horizons(mine)[(mine["task"].iloc[0], model)]
    per = ", ".join(f"{c.distance}: {_count(c._asdict())}" for c in mine.itertuples(index=False))
    verdict = (
        f"{model} solved no distance in at least half its seeds."
        if held is None
        else f"{model} held the dependency up to distance {held}."
    )
    return f"{verdict} Seeds solved per distance: {per}."


def _ranking(held: dict, task: str, sweep: Sweep) -> str:
    """Models ordered by memory horizon, and the LSTM-versus-RNN verdict in plain words."""
    horizon = {m: held[(task, m)] or 0 for m in sweep.models}
    order = sorted(sweep.models, key=lambda m: -horizon[m])
    text = (
        "Memory horizon by model: " + ", ".join(f"{m} {horizon[m] or 'none'}" for m in order) + "."
    )
    cells = sweep.runs.drop_duplicates("model").set_index("model")["cell"]
    lstm = [m for m in sweep.models if cells[m] == "lstm"]
    rnn = [m for m in sweep.models if cells[m] == "rnn"]
    if lstm and rnn:
        best_lstm = max(lstm, key=lambda m: horizon[m])
        best_rnn = max(rnn, key=lambda m: horizon[m])
        a, b = horizon[best_lstm], horizon[best_rnn]
        if a > b:
            text += f" The LSTM beat the RNN: {best_lstm} reached {a}, {best_rnn} {b or 'none'}."
        elif a == b:
            text += (
                f" The LSTM did not beat the RNN in this run: {best_lstm} and {best_rnn} both "
                f"reached {a or 'no distance'}."
            )
        else:
            text += (
                f" The LSTM did not beat the RNN in this run: {best_rnn} reached {b}, the best "
                f"LSTM ({best_lstm}) only {a or 'none'}."
            )
    return text


def parting_distances(counts: pd.DataFrame) -> dict[int, list[str]]:
    """Where the models part ways: each distance at which some model holds the dependency
    (solved in at least half its seeds) and another does not, and the set that holds differs
    from the distance before; mapped to the models that do not hold there but did before (or,
    at the first distance, that do not hold). When the models never part: the largest distance,
    mapped to no model.
    """
    held = (counts["solved"] > 0) & (2 * counts["solved"] >= counts["planned"])
    holding = counts[held].groupby("distance")["model"].agg(frozenset)
    models = frozenset(counts["model"])
    out, before = {}, models
    for d in sorted(counts["distance"].unique()):
        now = holding.get(d, frozenset())
        if now and now != models and now != before:
            out[int(d)] = sorted(before - now) or sorted(models - now)
        before = now
    return out or {int(counts["distance"].max()): []}


def _gradient_sentences(sweep: Sweep, task: str, counts: pd.DataFrame) -> list[str]:
    runs = sweep.finished[(sweep.finished["task"] == task) & sweep.finished["probe_data"]]
    if runs.empty:
        return ["No run of this task has probe data, so the gradient cannot be compared."]
    out = []
    for d, lost in parting_distances(counts).items():
        at = runs[runs["distance"] == d]
        where = f", where {' and '.join(lost)} stopped solving," if lost else ""
        out.append(
            f"At distance {d}{where} the share of the output step's gradient that reached the "
            f"key step (median over seeds) was, before training: {_shares(sweep, at, 'init')}; "
            f"after training: {_shares(sweep, at, 'final')}."
        )
    out.append(_decay_sentence(sweep, runs))
    out.append(_share_predicts(runs))
    return out


def _shares(sweep: Sweep, at: pd.DataFrame, phase: str) -> str:
    """``1.2e-07 for rnn, 6.1e-02 for lstm (cell state c: 8.0e-01)``: medians of the runs ``at``."""
    parts = []
    for model in sweep.models:
        mine = at[at["model"] == model]
        if mine.empty:
            parts.append(f"{NO_PROBE} for {model}")
            continue
        part = f"{sci(median_of(mine, f'probe_{phase}_h_key_share'))} for {model}"
        c = median_of(mine, f"probe_{phase}_c_key_share")
        if math.isfinite(c):
            part += f" (cell state c: {sci(c)})"
        parts.append(part)
    return ", ".join(parts)


def _decay_sentence(sweep: Sweep, runs: pd.DataFrame) -> str:
    parts = []
    for model in sweep.models:
        mine = runs[runs["model"] == model]
        if mine.empty:
            continue
        rho = median_of(mine, "probe_init_h_rho")
        part = f"every {steps_text(efold(rho))} steps for {model} (rho {rho:.3f}"
        c = median_of(mine, "probe_init_c_rho")
        if math.isfinite(c):
            part += f"; cell state c every {steps_text(efold(c))}, rho {c:.3f}"
        parts.append(part + ")")
    return (
        "At initialisation the hidden-state gradient shrank by a factor e "
        + ", ".join(parts)
        + " (fitted per-step decay, median over runs)."
    )


def _share_predicts(runs: pd.DataFrame) -> str:
    """Does the initial key share separate the runs that learned from those that did not?"""
    solved = median_of(runs[runs["status"] == "solved"], "probe_init_h_key_share")
    not_solved = median_of(runs[runs["status"] != "solved"], "probe_init_h_key_share")
    if not (math.isfinite(solved) and math.isfinite(not_solved)):
        return "Every probed run ended the same way, so the key share cannot separate outcomes."
    verdict = (
        "a larger share went with learning the dependency"
        if solved > not_solved
        else "the share at initialisation did not predict which runs learned"
    )
    return (
        f"Runs that solved their distance started with a median key share of {sci(solved)}, "
        f"runs that did not with {sci(not_solved)}: {verdict}."
    )


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
    for task in [t.task for t in exp.tasks]:
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
    inits = "; ".join(f"{m.name}: {m.cell}, {_init_setting(exp, m.name)}" for m in exp.models)
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
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.9):
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
