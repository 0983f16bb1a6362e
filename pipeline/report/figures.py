"""The report's figures, in order (``plots``): outcomes against distance (accuracy, seeds solved
with the fitted logistic curve), the gradient figures (``gradient_figures``), time to solve as
Kaplan-Meier curves, learning curves, and the adding task's error against its baselines.

Figures are drawn, not saved; ``report`` writes them. Each caption says how to read its figure,
and any number it states is computed from the sweep. Reads a ``results.Readout`` only.
"""

from __future__ import annotations

import numpy as np
import seaborn as sns

from pipeline.config.runs import grid_label, grid_points
from pipeline.report.gradient_figures import (
    per_distance_grid,
    plot_grad_norm,
    plot_gradient_curves,
    plot_key_share,
)
from pipeline.report.ranking import plot_scaling
from pipeline.report.results import Readout, baselines_at
from pipeline.report.stats import LEVEL, fitted_curve, success_counts
from pipeline.report.style import (
    Plot,
    by_model,
    distance_axis,
    figure,
    legend,
    model_colours,
    model_dashes,
)
from pipeline.report.survival import survival_table


def _nudge(sweep: Readout) -> dict[str, float]:
    """Models that score the same (all at 1.0, say) would hide one another: each is shifted
    sideways by a few percent of a distance (the axis is logarithmic).
    """
    n = len(sweep.models)
    return {m: 2 ** (0.07 * (i - (n - 1) / 2)) for i, m in enumerate(sweep.models)}


def plot_accuracy(sweep: Readout) -> Plot:
    runs, tasks = sweep.finished, sweep.tasks
    fig, axes = figure(2, len(tasks))
    nudge, colours, dashes = _nudge(sweep), model_colours(sweep), model_dashes(sweep)
    for col, task in enumerate(tasks):
        part = runs[runs["task"] == task].assign(x=lambda r: r["distance"] * r["model"].map(nudge))
        distances = sorted(sweep.runs.loc[sweep.runs["task"] == task, "distance"].unique())
        ax = axes[0][col]
        sns.lineplot(
            part, x="x", y="test_accuracy", **by_model(sweep), errorbar=("pi", 100),
            marker="o", ax=ax,
        )  # fmt: skip
        chance = sweep.runs[sweep.runs["task"] == task].groupby("distance")["chance_accuracy"]
        # one distance gives no line to draw: mark the chance level with a short dash instead
        dash = {"marker": "_", "markersize": 24} if len(chance.first()) == 1 else {}
        ax.plot(chance.first().index, chance.first().values, "k--", lw=1, label="chance", **dash)
        distance_axis(ax, distances)
        ax.set(title=f"{task}: test accuracy", ylabel="test accuracy (fraction)", ylim=(0, 1.04))
        ax = axes[1][col]
        counts = success_counts(sweep.runs[sweep.runs["task"] == task])
        grid = np.geomspace(distances[0] * 2**-0.5, distances[-1] * 2**0.5, 80)
        for model in sweep.models:
            mine = counts[counts["model"] == model]
            share = mine["solved"] / mine["planned"]
            ax.plot(mine["distance"] * nudge[model], share, "o", color=colours[model], label=model)
            curve = fitted_curve(mine, grid)
            if curve is not None:
                ax.plot(grid, curve, ls=dashes[model], color=colours[model], lw=1.4)
        ax.axhline(0.5, color="0.4", ls=":", lw=1, label="half the seeds")
        distance_axis(ax, distances)
        ax.set(title=f"{task}: seeds solved", ylabel="share of seeds solved", ylim=(-0.04, 1.04))
    legend(fig, axes)
    fig.suptitle("Outcome against distance")
    n_seeds = len(sweep.exp.seeds)
    return Plot(
        "accuracy_vs_distance",
        "Accuracy and seeds solved against distance",
        f"Top: test accuracy, mean over {n_seeds} seed(s), band: the range over the seeds (with "
        "this few seeds an interval estimate would claim more than the data hold); the dashed "
        "line is the accuracy of the best strategy without the key. "
        "Bottom: the share of seeds that solved each distance (solved is decided on validation "
        "accuracy) and, where the data identify one, the logistic fit of P(solved) on "
        f"log2(distance) whose 50% crossing is the fitted horizon d50 (its {LEVEL:.0%} interval "
        "is in the horizon table; a family's variants differ in shade and dash). Models are "
        "shifted sideways a little so that equal values stay visible.",
        fig,
    )


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
        f"budget. Curves are lifted by up to {0.006 * (len(sweep.models) - 1):.2f} so that "
        "equal curves stay visible.",
        fig,
    )


def plot_learning_curves(sweep: Readout) -> Plot | None:
    if sweep.history[sweep.history["metric"] == "val_accuracy"].empty:
        return None
    fig, axes, cells = per_distance_grid(sweep, "val_accuracy")
    target = sweep.exp.training.solved_accuracy
    for ax, task, d, rows in cells:
        # markers: a run solved at its first validation has a single point, no line
        sns.lineplot(
            rows, x="step", y="value", **by_model(sweep), units="seed", estimator=None,
            lw=1.1, alpha=0.85, marker="o", markersize=4, markeredgewidth=0, ax=ax,
        )  # fmt: skip
        chance = sweep.runs.loc[
            (sweep.runs["task"] == task) & (sweep.runs["distance"] == d), "chance_accuracy"
        ].iloc[0]
        ax.axhline(chance, color="k", ls="--", lw=1, label="chance")
        ax.axhline(target, color="0.5", ls=":", lw=1, label=f"solved ({target:g})")
        ax.set(title=f"{task}, distance {d}", xlabel="training step (updates)", ylim=(0, 1.04))
        ax.set_ylabel("validation accuracy (fraction)")
    legend(fig, axes)
    fig.suptitle("Learning curves: validation accuracy during training")
    return Plot(
        "learning_curves",
        "Learning curves",
        "One line per seed: validation accuracy at each check. A run stops when it reaches the "
        "dotted target; the dashed line is the accuracy of the best strategy without the key.",
        fig,
    )


def plot_adding_error(sweep: Readout) -> Plot | None:
    if not sweep.regression_tasks:
        return None
    task = sweep.regression_tasks[0]  # the adding problem: one such task per experiment
    runs = sweep.finished[sweep.finished["task"] == task]
    nudge = _nudge(sweep)
    fig, axes = figure(1, 1, width=5.0)
    ax = axes[0][0]
    part = runs.assign(x=runs["distance"] * runs["model"].map(nudge))
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
        f"Each variant's tuning runs at each {field} of the grid, mean over the tuning seeds "
        f"{tuning.seeds}: best validation accuracy (left) and steps to solve, an unsolved run "
        "counting as the budget (right). Stars mark the setting each variant's evaluation runs "
        "used. A flat line means the variant's outcome did not depend on the setting.",
        fig,
    )


def plots(sweep: Readout) -> list[Plot]:
    """Every figure the data allows, in the report's order (absent data: figure left out),
    drawn in the report's style.
    """
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.9):
        drawn = [plot_accuracy(sweep), plot_scaling(sweep), plot_adding_error(sweep)]
        drawn.append(plot_sensitivity(sweep))
        drawn += [plot_gradient_curves(sweep, task) for task in sweep.tasks]
        drawn += [
            plot_key_share(sweep),
            plot_grad_norm(sweep),
            plot_survival(sweep),
            plot_learning_curves(sweep),
        ]
    return [p for p in drawn if p is not None]
