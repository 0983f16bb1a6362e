"""The report's gradient figures: the norm against steps back, the share and the Jacobian norm that
reach the key step against distance, and the training gradient norm.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from pipeline.report.results import PHASES, STATES, Readout, values_of
from pipeline.report.style import (
    OUTCOME_STYLES,
    Plot,
    distance_axis,
    distance_colours,
    distance_outcome_legend,
    few,
    figure,
    figure_legend,
    hide_unused,
    log_span,
    model_colours,
    model_dashes,
    model_handles,
    model_markers,
    nudges,
    outcome_handles,
    outcome_points,
    panels,
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
    # each model's own distances (a staircase gives each variant its own), a few of them
    distances = {m: few(rel.loc[rel["model"] == m, "distance"].unique()) for m in models}
    cols = max(len(d) for d in distances.values())
    fig, axes = figure(len(models), cols, width=3.0, height=2.3)
    colours = {"h": "#1f4e9c", "c": "#d55e00"}
    styles = {"init": (0, (3, 2)), "final": "-"}
    for row, model in enumerate(models):
        mine = rel[rel["model"] == model]
        for col, d in enumerate(distances[model]):
            ax = axes[row][col]
            for (phase, state), line in mine[mine["distance"] == d].groupby(["phase", "state"]):
                ax.plot(line["k"], line["norm"], color=colours[state], ls=styles[phase], lw=1.4)
            ax.axvline(d, color="0.3", ls=":", lw=1)
            ax.set_yscale("log")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_title(f"{model}, trained at distance {d}", fontsize=9)
            ax.set_xlabel("k (steps back from output)")
            ax.set_ylabel("norm / norm at k=0" if col == 0 else "")
            # one y range per model, from its data, so its panels compare across distances; 1
            # (the output step) always inside
            ax.set_ylim(max(float(mine["norm"].min()), 1e-300) / 2, max(mine["norm"].max(), 1) * 2)
        hide_unused(axes[row], len(distances[model]))
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
        ("probe_final_h_jacobian_key", "Jacobian norm, after training", JACOBIAN_LABEL),
    ]
    fig, axes = figure(len(tasks), len(panels), width=3.1)
    colours, markers, dashes = model_colours(sweep), model_markers(sweep), model_dashes(sweep)
    nudge = nudges(sweep)
    for row, task in enumerate(tasks):
        part = runs[runs["task"] == task]
        distances = sorted(part["distance"].unique())
        for col, (column, label, ylabel) in enumerate(panels):
            ax = axes[row][col]
            values = pd.to_numeric(part[column], errors="coerce")
            data = part.assign(value=values)[values > 0]
            if data.empty:
                ax.set_visible(False)
                continue
            for model in sweep.models:
                mine = data[data["model"] == model]
                if mine.empty:
                    continue
                median = mine.groupby("distance")["value"].median()
                ax.plot(median.index * nudge[model], median.to_numpy(), color=colours[model],
                        ls=dashes[model], lw=1.1, alpha=0.7)  # fmt: skip
                outcome_points(ax, mine["distance"] * nudge[model], mine["value"],
                               mine["status"], colours[model], markers[model], size=18)  # fmt: skip
            ax.axhline(1.0, color="0.5", ls=":", lw=1)
            ax.set_yscale("log")
            log_span(ax)
            ax.set(title=f"{task}: {label}", ylabel=ylabel)
            ax.title.set_fontsize(9)
            distance_axis(ax, distances)
    figure_legend(fig, *_labelled(model_handles(sweep) + outcome_handles(runs["status"])))
    fig.suptitle("What reaches the key step, against distance (hidden state h)")
    return Plot(
        "key_share_vs_distance",
        "Gradient share and Jacobian norm at the key step",
        "Probes on validation sequences. One point per run (the median over its probe samples "
        "of each sample's ratio of the gradient norm at the key step to that at the output "
        "step); filled: the run solved, open: it did not within the budget, a cross: it "
        "diverged; lines join each variant's medians over seeds (log scale, float64). "
        "'After training' is each run's last update: where it solved for a run that solved, at "
        "the budget for one that did not, so those panels mix training lengths. The Jacobian "
        "panels measure the same path without the loss, the norm of dh_out/dh_key, so the "
        "output residual cannot explain them; above the dotted line at 1 the path grows going "
        "back. Variants are shifted sideways a little so that equal values stay visible."
        + _zero_note(runs),
        fig,
    )


def _labelled(handles: list) -> tuple[list, list]:
    return handles, [h.get_label() for h in handles]


def _zero_note(runs: pd.DataFrame) -> str:
    """A caption's note on shares of exactly 0 (no point on a log axis), if any."""
    zeros = sum(int((values_of(runs, f"probe_{p}_h_key_share") == 0).sum()) for p in PHASES)
    if not zeros:
        return ""
    return f" {zeros} share(s) of exactly 0 (no path from the key step) are not drawn."


def per_model_panels(sweep: Readout, metric: str, ylabel: str):
    """Small multiples of a metric history: one panel per (task, model), one line per run, its
    colour its training distance and its style how it ended (``OUTCOME_STYLES``). Returns
    (figure, [(axis, task, model)], colours) or None without the metric.
    """
    hist = sweep.history[sweep.history["metric"] == metric]
    if hist.empty:
        return None
    status = sweep.runs.set_index("run_id")["status"]
    hist = hist.assign(status=hist["run_id"].map(status))
    cells = [(t, m) for t in sweep.tasks for m in sweep.models
             if not hist[(hist["task"] == t) & (hist["model"] == m)].empty]  # fmt: skip
    fig, axes = panels(len(cells))
    colours = distance_colours(hist["distance"])
    out = []
    for ax, (task, model) in zip(axes, cells, strict=True):
        mine = hist[(hist["task"] == task) & (hist["model"] == model)]
        for (_, d, how), run in mine.groupby(["run_id", "distance", "status"], sort=False):
            ax.plot(run["step"], run["value"], color=colours[int(d)], ls=OUTCOME_STYLES[how],
                    lw=1.1, marker=".", markersize=3)  # fmt: skip
        prefix = f"{task}, " if len(sweep.tasks) > 1 else ""
        ax.set_title(f"{prefix}{model}", fontsize=9)
        ax.set(xlabel="training step (updates)", ylabel=ylabel)
        out.append((ax, task, model))
    return fig, out, colours, hist


def plot_grad_norm(sweep: Readout) -> Plot | None:
    found = per_model_panels(sweep, "grad_norm", "pre-clip gradient norm (L2)")
    if found is None:
        return None
    fig, cells, colours, history = found
    t = sweep.exp.training
    clip = t.grad_clip is not None and t.clip_mode == "norm"
    for ax, _, _ in cells:
        if clip:
            ax.axhline(t.grad_clip, color="k", ls="--", lw=1)
        ax.set_yscale("log")
    extra = [Line2D([], [], color="k", ls="--", label=f"clip ({t.grad_clip:g})")] if clip else []
    distance_outcome_legend(fig, colours, history["status"], extra)
    fig.suptitle("Global gradient norm during training, before clipping (training batches)")
    caption = (
        f"On training batches. One panel per variant, one line per run: the mean over each "
        f"{t.log_every}-step window of the global gradient norm before clipping; a line's "
        "colour is the run's training distance, solid where it solved, dashed where it did "
        "not, dotted where it diverged (a run that solved stops there). "
    )
    if clip:
        above = (history["value"] > t.grad_clip).mean()
        caption += (
            "A window mean above the dashed line means clipping shortened at least some of its "
            f"steps; it does not show single spikes. Over every run, {above:.0%} of the "
            f"{len(history)} window means lie above the clip threshold {t.grad_clip:g}."
        )
    elif t.grad_clip is not None:
        caption += (
            f"Each update's gradient had every element clamped to [-{t.grad_clip:g}, "
            f"{t.grad_clip:g}], which the norm does not show: no threshold is drawn."
        )
    else:
        caption += "Gradients were not clipped."
    return Plot("grad_norm_training", "Gradient norm during training", caption, fig)
