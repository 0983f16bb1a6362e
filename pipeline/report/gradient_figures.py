"""The report's gradient figures: the norm against steps back, the share and the Jacobian norm that
reach the key step against distance, and the training gradient norm.
"""

from __future__ import annotations

import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from pipeline.report.results import PHASES, STATES, Readout, values_of
from pipeline.report.style import (
    Plot,
    by_model,
    distance_axis,
    few,
    figure,
    figure_legend,
    hide_unused,
    legend,
    log_span,
)

SHARE_LABEL = r"$\|\partial L/\partial h_{key}\| \;/\; \|\partial L/\partial h_{out}\|$"
JACOBIAN_LABEL = r"$\|\partial h_{out}/\partial h_{key}\|_F/\sqrt{H}$"


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
    rel = rel[rel["norm"] > 0]  # an exact 0 (a path that does not exist) has no log
    keys = ["model", "distance", "phase", "state", "k"]
    return rel.groupby(keys, sort=False)["norm"].median().reset_index()


def plot_gradient_curves(sweep: Readout, task: str) -> Plot | None:
    rel = _relative_curves(sweep.curves, task)
    if rel.empty:
        return None
    models = [m for m in sweep.models if m in set(rel["model"])]
    distances = few(rel["distance"].unique())
    fig, axes = figure(len(models), len(distances), width=3.0, height=2.3)
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
            a.set_ylim(max(low, 1e-300), 5)
    handles = [
        Line2D([], [], color=colours["h"], label="hidden state h"),
        Line2D([], [], color=colours["c"], label="cell state c (LSTM)"),
        Line2D([], [], color="k", ls=styles["init"], label="at initialisation"),
        Line2D([], [], color="k", ls=styles["final"], label="after training"),
        Line2D([], [], color="0.3", ls=":", label="key step (k = distance)"),
    ]
    figure_legend(fig, handles, [h.get_label() for h in handles])
    fig.suptitle(rf"{task}: gradient norm $\|\partial L/\partial h_{{s-k}}\|$ against steps back k")
    return Plot(
        f"gradient_vs_k_{task}",
        f"Gradient norm against steps back ({task})",
        "Per probe, the median over samples of the gradient's norm k steps before the output, "
        "divided by its value at the output; the median of that over seeds (log scale, float64); "
        "after training means at each run's last update (when it solved, or at the budget). "
        "A straight falling line is geometric decay; read each curve's height at the dotted key "
        "step (the table of e-folding lengths gives the fitted slopes and their R²).",
        fig,
        svg=True,
    )


def plot_key_share(sweep: Readout) -> Plot | None:
    runs = sweep.finished[sweep.finished["probe_data"]]
    if runs.empty:
        return None
    tasks = [t for t in sweep.tasks if t in set(runs["task"])]
    panels = [
        ("probe_init_h_key_share", "gradient share, at initialisation", SHARE_LABEL),
        ("probe_final_h_key_share", "gradient share, after training", SHARE_LABEL),
        ("probe_init_h_jacobian_key", "Jacobian norm, at initialisation", JACOBIAN_LABEL),
    ]
    fig, axes = figure(len(tasks), len(panels), width=3.3)
    for row, task in enumerate(tasks):
        part = runs[runs["task"] == task]
        distances = sorted(part["distance"].unique())
        for col, (column, label, ylabel) in enumerate(panels):
            ax = axes[row][col]
            data = part[pd.to_numeric(part[column], errors="coerce") > 0]
            if data.empty:
                ax.set_visible(False)
                continue
            sns.lineplot(
                data, x="distance", y=column, **by_model(sweep), estimator="median",
                errorbar=("pi", 100), marker="o", ax=ax,
            )  # fmt: skip
            ax.set_yscale("log")
            log_span(ax)
            ax.set(title=f"{task}: {label}", ylabel=ylabel)
            distance_axis(ax, distances)
    legend(fig, axes)
    fig.suptitle("What reaches the key step, against distance (hidden state h)")
    return Plot(
        "key_share_vs_distance",
        "Gradient share and Jacobian norm at the key step",
        "Per run, the median over probe samples of each sample's ratio of the gradient norm at "
        "the key step to that at the output step; lines: median over seeds, band: range over "
        "seeds (log scale, float64). 'After training' is each run's last update: where it "
        "solved for a run that solved, at the budget for one that did not, so the middle panel "
        "mixes training lengths. The right-hand panel measures the same path without the "
        "loss: the norm of dh_out/dh_key, so the output residual cannot explain it. Compare "
        "with the accuracy figure at the same distances." + _zero_note(runs),
        fig,
    )


def _zero_note(runs: pd.DataFrame) -> str:
    """A caption's note on shares of exactly 0 (no point on a log axis), if any."""
    zeros = sum(int((values_of(runs, f"probe_{p}_h_key_share") == 0).sum()) for p in PHASES)
    if not zeros:
        return ""
    return f" {zeros} share(s) of exactly 0 (no path from the key step) are not drawn."


def per_distance_grid(sweep: Readout, metric: str):
    """(figure, axes, [(axis, task, distance, rows)]) for a metric history at a few distances."""
    hist = sweep.history[sweep.history["metric"] == metric]
    tasks = [t for t in sweep.tasks if t in set(hist["task"])]
    picks = {t: few(hist.loc[hist["task"] == t, "distance"].unique()) for t in tasks}
    fig, axes = figure(len(tasks), max(len(p) for p in picks.values()), width=3.2)
    cells = []
    for row, task in enumerate(tasks):
        for col, d in enumerate(picks[task]):
            rows = hist[(hist["task"] == task) & (hist["distance"] == d)]
            cells.append((axes[row][col], task, d, rows))
        hide_unused(axes[row], len(picks[task]))
    return fig, axes, cells


def plot_grad_norm(sweep: Readout) -> Plot | None:
    history = sweep.history[sweep.history["metric"] == "grad_norm"]
    if history.empty:
        return None
    fig, axes, cells = per_distance_grid(sweep, "grad_norm")
    t = sweep.exp.training
    for ax, task, d, rows in cells:
        sns.lineplot(
            rows, x="step", y="value", **by_model(sweep), estimator="median", errorbar=None,
            lw=1.2, marker=".", markersize=4, markeredgewidth=0, ax=ax,
        )  # fmt: skip
        if t.grad_clip is not None and t.clip_mode == "norm":
            ax.axhline(t.grad_clip, color="k", ls="--", lw=1, label=f"clip ({t.grad_clip:g})")
        ax.set_yscale("log")
        ax.set(title=f"{task}, distance {d}", xlabel="training step (updates)")
        ax.set_ylabel("pre-clip gradient norm (L2)")
    legend(fig, axes)
    fig.suptitle("Global gradient norm during training, before clipping")
    caption = (
        f"Each point: the mean over a {t.log_every}-step window of the global gradient norm "
        "before clipping; lines: median over the seeds still training at that step (a run "
        "that solved stops, so later steps can hold fewer seeds). A window mean above the "
        "dashed line means clipping shortened at least some of its steps; it does not show "
        "single spikes."
    )
    if t.grad_clip is not None and t.clip_mode == "value":
        caption = (
            f"Each point: the mean over a {t.log_every}-step window of the global gradient norm "
            f"before clipping; lines: median over the seeds still training at that step. Each "
            f"update's gradient had every "
            f"element clamped to [-{t.grad_clip:g}, {t.grad_clip:g}], which the norm does not "
            "show: no threshold is drawn."
        )
    elif t.grad_clip is not None:
        above = (history["value"] > t.grad_clip).mean()
        caption += (
            f" Over every run of the sweep, {above:.0%} of the {len(history)} window means lie "
            f"above the clip threshold {t.grad_clip:g}."
        )
    return Plot("grad_norm_training", "Gradient norm during training", caption, fig)
