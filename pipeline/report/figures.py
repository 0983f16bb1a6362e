"""The report's figures: accuracy, gradient norms and the key step's share against distance,
drawn from one sweep.

Owns every figure (``plots`` lists them in the report's order, each a ``Plot``: file stem,
title, caption, matplotlib figure) and the look they share: one colour per model, a log2
distance axis, one legend per figure at its right. Figures are drawn, not saved; ``report``
writes them. Reads a ``findings.Sweep`` only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from pipeline.report.results import PHASES, STATES, Sweep

FEW = 4  # distances drawn in the per-distance figures (spread over the experiment's range)
SHARE_LABEL = r"$\|\partial L/\partial h_{key}\| \;/\; \|\partial L/\partial h_{out}\|$"


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


def _by_model(sweep: Sweep) -> dict:
    """Seaborn's hue arguments: one colour per model, the same in every figure."""
    colours = sns.color_palette("colorblind", len(sweep.models))
    palette = dict(zip(sweep.models, colours, strict=True))
    return {"hue": "model", "hue_order": sweep.models, "palette": palette}


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
    runs, tasks = sweep.finished, sweep.tasks
    fig, axes = _figure(1, len(tasks))
    # models that score the same (all at 1.0, say) would hide one another: each is nudged
    # sideways by a few percent of a distance (the axis is logarithmic)
    nudge = {m: 2 ** (0.07 * (i - (len(sweep.models) - 1) / 2)) for i, m in enumerate(sweep.models)}
    for ax, task in zip(axes[0], tasks, strict=True):
        part = runs[runs["task"] == task].assign(x=lambda r: r["distance"] * r["model"].map(nudge))
        sns.lineplot(
            part, x="x", y="test_accuracy", **_by_model(sweep), errorbar=("ci", 95),
            seed=0, n_boot=1000, marker="o", ax=ax,
        )  # fmt: skip
        chance = sweep.runs[sweep.runs["task"] == task].groupby("distance")["chance_accuracy"]
        # one distance gives no line to draw: mark the chance level with a short dash instead
        dash = {"marker": "_", "markersize": 24} if len(chance.first()) == 1 else {}
        ax.plot(chance.first().index, chance.first().values, "k--", lw=1, label="chance", **dash)
        distances = sorted(part["distance"].unique())
        _distance_axis(ax, distances)
        # the same margin whatever the number of distances (a single one would fill the panel)
        ax.set_xlim(distances[0] * 2**-0.5, distances[-1] * 2**0.5)
        ax.set(title=task, ylabel="test accuracy (fraction correct)", ylim=(0, 1.04))
    _legend(fig, axes)
    fig.suptitle("Test accuracy against distance")
    n_seeds = len(sweep.exp.seeds)
    return Plot(
        "accuracy_vs_distance",
        "Accuracy against distance",
        f"Mean over {n_seeds} seed(s), band: 95% bootstrap interval (seeded); models are "
        "nudged sideways so that equal scores stay visible. Look for the distance where each "
        "model falls to the dashed chance line.",
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
    tasks = [t for t in sweep.tasks if t in set(runs["task"])]
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
                data, x="distance", y=column, **_by_model(sweep), estimator="median",
                errorbar=("pi", 100), marker="o", ax=ax,
            )  # fmt: skip
            ax.set_yscale("log")
            _log_span(ax)
            ax.set(title=f"{task}: {label}", ylabel=SHARE_LABEL)
            _distance_axis(ax, distances)
        ax = axes[row][2]
        sns.lineplot(
            part, x="distance", y="test_accuracy", **_by_model(sweep), errorbar=("ci", 95),
            seed=0, marker="o", ax=ax,
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
    tasks = [t for t in sweep.tasks if t in set(hist["task"])]
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
            rows, x="step", y="value", **_by_model(sweep), estimator="median", errorbar=None,
            lw=1.2, marker=".", markersize=4, markeredgewidth=0, ax=ax,
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
    runs, tasks = sweep.finished, sweep.tasks
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
            part, x="x", y="y", **_by_model(sweep), style="outcome",
            style_order=["solved", "not solved", "diverged"],
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
            rows, x="step", y="value", **_by_model(sweep), units="seed", estimator=None,
            lw=1.1, alpha=0.85, marker="o", markersize=4, markeredgewidth=0, ax=ax,
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
    """Every figure the data allows, in the report's order (absent data: figure left out),
    drawn in the report's style.
    """
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.9):
        drawn = [plot_accuracy(sweep)]
        drawn += [plot_gradient_curves(sweep, task) for task in sweep.tasks]
        drawn += [
            plot_key_share(sweep),
            plot_grad_norm(sweep),
            plot_steps_to_solve(sweep),
            plot_learning_curves(sweep),
        ]
    return [p for p in drawn if p is not None]
