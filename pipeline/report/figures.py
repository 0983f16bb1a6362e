"""The report's figures, in order (``plots``): the horizons and exponents (``ranking``), a sample
sequence of each task, time to solve and outcomes against distance (accuracy, seeds solved with
the logistic curve where significant), the gradient figures (``gradient_figures``), the probes and
the mechanism during training (``over_training``), length extrapolation (``extrapolation``),
tuning, time to solve as Kaplan-Meier curves, learning curves, and the adding task's error
against its baselines.

Figures are drawn, not saved; ``report`` writes them. Each caption says how to read its figure,
and any number it states is computed from the sweep. Reads a ``results.Readout`` only.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from pipeline import paths
from pipeline.config.runs import grid_label, grid_points
from pipeline.report import extrapolation, over_training
from pipeline.report.compare import ALPHA
from pipeline.report.gradient_figures import (
    per_model_panels,
    plot_grad_norm,
    plot_gradient_curves,
    plot_key_share,
)
from pipeline.report.ranking import plot_horizons, plot_scaling
from pipeline.report.results import FEW_RUNS, Readout, baselines_at
from pipeline.report.stats import fitted_curve, slope_p, success_counts
from pipeline.report.style import (
    Plot,
    by_model,
    distance_axis,
    distance_outcome_legend,
    figure,
    legend,
    model_colours,
    model_dashes,
    model_handles,
    model_markers,
    nudges,
    outcome_handles,
    outcome_points,
)
from pipeline.report.survival import survival_table


def plot_accuracy(sweep: Readout) -> Plot:
    runs, tasks = sweep.finished, sweep.tasks
    fig, axes = figure(2, len(tasks))
    nudge, colours = nudges(sweep), model_colours(sweep)
    markers, dashes = model_markers(sweep), model_dashes(sweep)
    drawn, left_out = [], []
    for col, task in enumerate(tasks):
        part = runs[runs["task"] == task]
        distances = sorted(sweep.runs.loc[sweep.runs["task"] == task, "distance"].unique())
        ax = axes[0][col]
        for model in sweep.models:
            mine = part[part["model"] == model]
            if mine.empty:
                continue
            x = mine["distance"] * nudge[model]
            accuracy = pd.to_numeric(mine["test_accuracy"], errors="coerce")
            median = accuracy.groupby(mine["distance"]).median()
            ax.plot(median.index * nudge[model], median.to_numpy(), color=colours[model],
                    ls=dashes[model], lw=1, alpha=0.6)  # fmt: skip
            outcome_points(ax, x, accuracy, mine["status"], colours[model], markers[model])
        chance = sweep.runs[sweep.runs["task"] == task].groupby("distance")["chance_accuracy"]
        # one distance gives no line to draw: mark the chance level with a short dash instead
        dash = {"marker": "_", "markersize": 24} if len(chance.first()) == 1 else {}
        ax.plot(chance.first().index, chance.first().values, "k--", lw=1, label="chance", **dash)
        distance_axis(ax, distances)
        ax.set(title=f"{task}: test accuracy (test split)", ylabel="test accuracy (fraction)",
               ylim=(-0.03, 1.04))  # fmt: skip
        ax = axes[1][col]
        counts = success_counts(sweep.runs[sweep.runs["task"] == task])
        grid = np.geomspace(distances[0] * 2**-0.5, distances[-1] * 2**0.5, 80)
        for model in sweep.models:
            mine = counts[counts["model"] == model]
            share = mine["solved"] / mine["planned"]
            ax.plot(mine["distance"] * nudge[model], share, ls="none", marker=markers[model],
                    color=colours[model])  # fmt: skip
            p = slope_p(mine)
            if math.isnan(p):
                continue
            if p < ALPHA:
                ax.plot(grid, fitted_curve(mine, grid), ls=dashes[model], color=colours[model],
                        lw=1.4)  # fmt: skip
                drawn.append(f"{model} (p = {p:.2g})")
            else:
                left_out.append(f"{model} (p = {p:.2g})")
        ax.axhline(0.5, color="0.4", ls=":", lw=1, label="half the seeds")
        distance_axis(ax, distances)
        ax.set(title=f"{task}: share of seeds solved (validation)",
               ylabel="share of seeds solved", ylim=(-0.04, 1.04))  # fmt: skip
    legend(fig, axes, model_handles(sweep) + outcome_handles(runs["status"]))
    fig.suptitle("Outcome against distance")
    per = success_counts(sweep.runs)["planned"]
    fits = (
        f"Logistic fits of P(solved) on log2(distance) are drawn only where their slope is "
        f"significant (likelihood-ratio test, p < {ALPHA}): "
        + (", ".join(drawn) if drawn else "none is")
        + "."
        + (f" Not drawn, not significant: {', '.join(left_out)}." if left_out else "")
        + " Where every run solved, none did, or solved and unsolved distances are separated, "
        "there is no fit to draw."
    )
    return Plot(
        "accuracy_vs_distance",
        "Accuracy and seeds solved against distance",
        f"Top: test accuracy on the test split, one point per run (seed): filled where the run "
        "solved, open where it did not within the budget (censored: more updates might have "
        "solved it), a cross where it diverged; a faint line joins each variant's medians. "
        f"{int(per.min())} to {int(per.max())} runs per variant and distance: with this few an "
        "interval estimate would claim more than the data hold, so each run is shown instead. "
        "The dashed line is the accuracy of the best strategy without the key. Bottom: the "
        "share of seeds that solved each distance (solved is decided on validation accuracy). "
        + fits
        + " Distance on a log2 axis; variants are shifted sideways a little so that equal "
        "values stay visible.",
        fig,
    )


def _n_range(ns: list[int]) -> str:
    """``3`` or ``2 to 5``: how many runs each of several estimates rests on."""
    return f"{min(ns)}" if min(ns) == max(ns) else f"{min(ns)} to {max(ns)}"


def plot_survival(sweep: Readout) -> Plot:
    budget = sweep.exp.training.max_steps
    curves = survival_table(sweep.runs, budget)
    tasks = sweep.tasks
    distances = {t: sorted({d for (tt, _, d) in curves if tt == t}) for t in tasks}
    fig, axes = figure(len(tasks), max(len(d) for d in distances.values()), width=3.0)
    colours, dashes = model_colours(sweep), model_dashes(sweep)
    # equal curves (every seed solved at the first check, say) would hide one another: each
    # model's curve is lifted by a small, fixed offset
    n = len(sweep.models)
    lift = {m: 0.012 * (i - (n - 1) / 2) for i, m in enumerate(sweep.models)}
    for row, task in enumerate(tasks):
        for col, d in enumerate(distances[task]):
            ax = axes[row][col]
            for model in sweep.models:
                curve = curves.get((task, model, d))
                if curve is None:
                    continue
                y = np.asarray(curve.unsolved) + lift[model]
                ax.step(curve.times, y, where="post", color=colours[model], ls=dashes[model],
                        lw=1.5, label=model)  # fmt: skip
                if curve.runs > curve.solved:  # censored at the budget: a tick at the end
                    ax.plot([budget], [y[-1]], "|", color=colours[model], ms=9, mew=1.5)
            ax.axhline(0.5, color="0.4", ls=":", lw=1)
            ax.set(title=f"{task}, distance {d}", ylim=(-0.04, 1.04), xlim=(0, budget * 1.02))
            ax.set_xlabel("training step (updates)")
            ax.set_ylabel("share of seeds not yet solved" if col == 0 else "")
        for ax in axes[row][len(distances[task]) :]:
            ax.set_visible(False)
    legend(fig, axes)
    fig.suptitle("Time to solve: Kaplan-Meier curves, censored at the budget")
    t = sweep.exp.training
    return Plot(
        "steps_to_solve",
        "Steps to solve (Kaplan-Meier)",
        f"The share of a model's seeds still unsolved after t updates; solved is checked on "
        f"validation every {t.eval_every} updates. Runs that never solved are censored at the "
        f"{budget}-update budget (diverged runs too; ticks mark censoring), so a curve that "
        "ends above the dotted half line has no median: it is not that the median is the "
        f"budget. Each curve rests on {_n_range([c.runs for c in curves.values()])} runs, too "
        "few for a confidence band: none is drawn (the table of steps to solve gives an "
        f"interval only from {FEW_RUNS} runs). Curves are lifted by up to "
        f"{0.006 * (len(sweep.models) - 1):.2f} so that equal curves stay visible.",
        fig,
    )


def plot_learning_curves(sweep: Readout) -> Plot | None:
    found = per_model_panels(sweep, "val_accuracy", "validation accuracy (fraction)")
    if found is None:
        return None
    fig, cells, colours, history = found
    target = sweep.exp.training.solved_accuracy
    chance = sweep.runs.groupby("task")["chance_accuracy"].median()
    for ax, task, _ in cells:
        ax.axhline(chance[task], color="k", ls="-.", lw=1)
        ax.axhline(target, color="0.5", ls=":", lw=1)
        ax.set_ylim(0, 1.04)
    extra = [Line2D([], [], color="k", ls="-.", label="chance"),
             Line2D([], [], color="0.5", ls=":", label=f"solved ({target:g})")]  # fmt: skip
    distance_outcome_legend(fig, colours, history["status"], extra)
    fig.suptitle("Learning curves: validation accuracy during training (validation split)")
    return Plot(
        "learning_curves",
        "Learning curves",
        "On the validation split. One panel per variant, one line per run: validation accuracy "
        "at each check; a line's colour is the run's training distance, solid where it solved, "
        "dashed where it did not, dotted where it diverged. A run stops when it reaches the "
        "dotted target; the dash-dotted line is the accuracy of the best strategy without the "
        "key.",
        fig,
    )


def plot_adding_error(sweep: Readout) -> Plot | None:
    if not sweep.regression_tasks:
        return None
    task = sweep.regression_tasks[0]  # the adding problem: one such task per experiment
    runs = sweep.finished[sweep.finished["task"] == task]
    fig, axes = figure(1, 1, width=5.0)
    ax = axes[0][0]
    part = runs.assign(x=runs["distance"] * runs["model"].map(nudges(sweep)))
    sns.lineplot(
        part, x="x", y="test_loss", **by_model(sweep), estimator="median",
        errorbar=("pi", 100), marker="o", ax=ax,
    )  # fmt: skip
    distances = sorted(sweep.runs.loc[sweep.runs["task"] == task, "distance"].unique())
    lines = [baselines_at(sweep, task, d) for d in distances]
    # one distance gives no line to draw: a short dash marks each baseline instead
    dash = {"marker": "_", "markersize": 24} if len(distances) == 1 else {}
    for i, (name, style) in enumerate(zip(lines[0], (("k", "--"), ("0.4", ":")), strict=False)):
        values = [list(at.values())[i] for at in lines]
        ax.plot(distances, values, color=style[0], ls=style[1], lw=1.2,
                label=f"{values[0]:.3g}: {name}", **dash)  # fmt: skip
    ax.set_yscale("log")
    distance_axis(ax, distances)
    ax.set(title="adding: test mean squared error", ylabel="test MSE")
    legend(fig, axes)
    fig.suptitle("Adding problem: error against the memoryless baselines")
    return Plot(
        "adding_mse",
        "Adding problem: test error against its baselines",
        "Median test MSE over seeds (band: range), against the MSE of the memoryless "
        "strategies: no memory (dashed) and remembering one value (dotted). Below the dotted "
        "line a model uses both values.",
        fig,
    )


def plot_sensitivity(sweep: Readout) -> Plot | None:
    """Outcome against the tuned setting, per variant, at each task's tuning distance."""
    if not sweep.selections or sweep.tuning is None:
        return None
    tuning = sweep.exp.tuning
    field = next(iter(tuning.grid))
    numeric = all(isinstance(v, int | float) for v in tuning.grid[field])
    runs = sweep.tuning[sweep.tuning["status"].isin(("solved", "unsolved", "diverged"))].copy()
    if runs.empty:
        return None
    values = {grid_label(p): dict(p)[field] for p in grid_points(sweep.exp)}
    runs["setting"] = runs["grid"].map(values)
    budget = sweep.exp.training.max_steps
    runs["steps used"] = runs["steps_to_solve"].astype("Float64").fillna(budget).astype(float)
    tasks = [t for t in sweep.tasks if t in set(runs["task"])]
    fig, axes = figure(len(tasks), 2, width=3.8)
    chosen = {(s.task, s.model): dict(s.chosen)[field] for s in sweep.selections}
    colours = model_colours(sweep)
    for row, task in enumerate(tasks):
        part = runs[runs["task"] == task]
        for col, (column, label) in enumerate(
            [("best_val_accuracy", "best validation accuracy"), ("steps used", "steps to solve")]
        ):
            ax = axes[row][col]
            sns.lineplot(
                part, x="setting", y=column, **by_model(sweep), estimator="mean", errorbar=None,
                marker="o", ax=ax,
            )  # fmt: skip
            for model in sweep.models:
                pick = chosen.get((task, model))
                mine = part[(part["model"] == model) & (part["setting"] == pick)]
                if pick is not None and not mine.empty:
                    ax.plot([pick], [mine[column].mean()], marker="*", ms=13, ls="none",
                            color=colours[model], markeredgecolor="k")  # fmt: skip
            if numeric:
                ax.set_xscale("log")
            if column == "steps used":
                ax.axhline(budget, color="k", ls="--", lw=1, label=f"budget ({budget})")
            d = sweep.exp.tuning_distance(next(t for t in sweep.exp.tasks if t.task == task))
            ax.set(title=f"{task}, tuning distance {d}", xlabel=field, ylabel=label)
    legend(fig, axes)
    fig.suptitle("Sensitivity to the tuned setting (tuning runs, validation data)")
    return Plot(
        "tuning_sensitivity",
        "Outcome against the tuned setting",
        f"On the validation split (the tuning runs are never scored on test data). Each "
        f"variant's tuning runs at each {field} of the grid, mean over the tuning seeds "
        f"{tuning.seeds}: best validation accuracy (left) and steps to solve, an unsolved run "
        "counting as the budget (right). Stars mark the setting each variant's evaluation runs "
        "used. A flat line means the variant's outcome did not depend on the setting.",
        fig,
    )


SHOWN = 14  # steps of a sample drawn at most: the key's neighbourhood and the output's


def sample_line(sweep: Readout, task: str) -> tuple[int, int, str] | None:
    """(distance, seed, first line of samples.txt) of ``task``'s shortest distance run, from the
    data folder the data stage wrote (its readable samples); None where none is on disk.
    """
    runs = sweep.runs[sweep.runs["task"] == task].sort_values(["distance", "seed"])
    for run in runs.drop_duplicates(["distance", "seed"]).itertuples():
        path = (
            paths.data_dir(sweep.exp.name) / task / f"d{run.distance}_s{run.seed}" / "samples.txt"
        )
        if path.is_file():
            lines = path.read_text().splitlines()
            if lines:
                return int(run.distance), int(run.seed), lines[0]
    return None


def _shown_steps(length: int, key: int, out: int) -> list[int | None]:
    """The steps drawn of a sequence of ``length``: all when few, else the start up to just after
    the key and the steps before the output, None where steps are left out.
    """
    if length <= SHOWN:
        return list(range(length))
    head = list(range(min(key + 3, length)))
    tail = list(range(max(out - 4, head[-1] + 1), length))
    return head + ([None] if tail and tail[0] > head[-1] + 1 else []) + tail


def plot_samples(sweep: Readout) -> Plot | None:
    """One sample sequence of each task, as the data stage wrote it, with the key step, the
    output step and the distance between them marked.
    """
    found = {t: sample_line(sweep, t) for t in sweep.tasks}
    found = {t: f for t, f in found.items() if f is not None}
    if not found:
        return None
    longest = max(len(line.split("->")[0].split()) for _, _, line in found.values())
    width = 0.75 * (min(longest, SHOWN + 1) + 6)  # the boxes, and the target beside them
    fig = Figure(figsize=(width, 1.5 * len(found) + 0.4), layout="constrained")
    axes = fig.subplots(len(found), 1, squeeze=False)[:, 0]
    said = []
    for ax, (task, (d, seed, line)) in zip(axes, found.items(), strict=True):
        built = next(t for t in sweep.exp.tasks if t.task == task).build()
        words, target = (part.strip() for part in line.split("->", 1))
        tokens = words.split()
        key, out = built.key_step(d), built.scored_step(d)
        x = 0
        where = {}
        for step in _shown_steps(len(tokens), key, min(out, len(tokens) - 1)):
            colour = "#ff7f0e" if step == key else "#1f77b4" if step == out else "white"
            text = "…" if step is None else tokens[step]
            ax.add_patch(Rectangle((x, 0), 0.92, 1, facecolor=colour, alpha=0.35 if step in
                                   (key, out) else 1, edgecolor="0.5"))  # fmt: skip
            ax.text(x + 0.46, 0.5, text, ha="center", va="center", fontsize=8)
            if step is not None:
                where[step] = x
                ax.text(x + 0.46, 1.12, str(step), ha="center", fontsize=6, color="0.5")
            x += 1
        ax.text(x + 0.2, 0.5, f"→ target: {target}", va="center", fontsize=8)
        if key in where and out in where:
            ax.annotate("", (where[out] + 0.46, -0.15), (where[key] + 0.46, -0.15),
                        arrowprops={"arrowstyle": "->", "color": "0.3"})  # fmt: skip
            ax.text((where[key] + where[out]) / 2 + 0.46, -0.55, f"distance {d}",
                    ha="center", fontsize=8)  # fmt: skip
        ax.set_xlim(-0.2, x + 6)
        ax.set_ylim(-0.9, 1.4)
        ax.set_axis_off()
        ax.set_title(f"{task} at distance {d} (seed {seed})", fontsize=9, loc="left")
        said.append(f"{task}: data/{sweep.exp.name}/{task}/d{d}_s{seed}/samples.txt")
    return Plot(
        "samples",
        "One sample sequence of each task",
        "One validation sequence per task, as the data stage rendered it ("
        + "; ".join(said)
        + "). Orange: the key step, the input that carries what the output needs; blue: the "
        "output step scored on it, the distance later (small numbers: the step); the target is "
        "on the right. Long sequences are drawn with their middle left out (…).",
        fig,
    )


def plots(sweep: Readout) -> list[Plot]:
    """Every figure the data allows, in the report's order (absent data: figure left out),
    drawn in the report's style.
    """
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.9):
        drawn = [plot_horizons(sweep), plot_samples(sweep)]
        drawn += [plot_scaling(sweep), plot_accuracy(sweep), plot_adding_error(sweep)]
        drawn.append(plot_key_share(sweep))
        for task in sweep.tasks:
            drawn += [over_training.probe_plot(sweep, task)]
            drawn += [over_training.mechanism_plot(sweep, task)]
        drawn.append(extrapolation.extrapolation_plot(sweep))
        drawn.append(plot_sensitivity(sweep))
        drawn += [plot_gradient_curves(sweep, task) for task in sweep.tasks]
        drawn += [plot_grad_norm(sweep), plot_survival(sweep), plot_learning_curves(sweep)]
    return [p for p in drawn if p is not None]
