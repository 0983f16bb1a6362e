"""Length extrapolation: each trained model's accuracy at half, twice and four times its training
distance (``RunResult.extrapolation``), beside its test accuracy at its own distance.

A model that learned where the key is holds its accuracy at other distances; one that learned to
count steps back from the output falls to chance away from its own distance. Each factor is
scored on fresh sequences of that distance, as many as the test split.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure

from pipeline.config.runs import EXTRAPOLATION_FACTORS, extrapolation_column, factor_label
from pipeline.report.results import Readout
from pipeline.report.style import few, figure, legend, model_colours, model_dashes

FACTORS = tuple(sorted((1.0, *EXTRAPOLATION_FACTORS)))  # 1: the run's own distance
LONG_COLUMNS = ["task", "model", "distance", "seed", "status", "factor", "tested", "accuracy",
                "chance_accuracy"]  # fmt: skip


def accuracy_by_factor(runs: pd.DataFrame) -> pd.DataFrame:
    """Long format, one row per (finished run, factor) with an accuracy: ``factor`` (0.5, 1, 2,
    4), ``tested`` (the distance it was scored at), ``accuracy`` and ``chance_accuracy`` there.
    At factor 1 these are the run's test accuracy and chance at its own distance; a factor the
    run was not scored at (its result file has none) has no row.
    """
    parts = [_scored(runs, 1.0, "distance", "test_accuracy", "chance_accuracy")]
    for factor in EXTRAPOLATION_FACTORS:
        label = factor_label(factor)
        columns = [extrapolation_column(f, label) for f in ("distance", "accuracy",
                                                           "chance_accuracy")]  # fmt: skip
        if set(columns) <= set(runs):
            parts.append(_scored(runs, factor, *columns))
    long = pd.concat(parts, ignore_index=True)
    for column in ("tested", "accuracy", "chance_accuracy"):
        long[column] = pd.to_numeric(long[column], errors="coerce")
    return long.dropna(subset=["accuracy"]).reset_index(drop=True)


def _scored(runs: pd.DataFrame, factor: float, tested: str, accuracy: str, chance: str):
    """``runs`` at one factor, in ``LONG_COLUMNS``, from the named columns of the results."""
    return runs[LONG_COLUMNS[:5]].assign(
        factor=factor, tested=runs[tested], accuracy=runs[accuracy], chance_accuracy=runs[chance]
    )


def extrapolation_table(sweep: Readout) -> pd.DataFrame:
    """Per task, model (the sweep's order) and training distance: ``n`` (finished runs, the
    seeds), the median accuracy over them at each factor (``accuracy_x0.5``, ``accuracy_x1``,
    ``accuracy_x2``, ``accuracy_x4``; x1 is the test accuracy) and the distance each factor
    tested (``distance_x0.5``, ...). A factor no run was scored at is NaN.
    """
    long = accuracy_by_factor(sweep.finished)
    keys = ["task", "model", "distance"]
    grouped = long.groupby([*keys, "factor"])
    columns = [sweep.finished.groupby(keys).size().rename("n")]
    for name, values in (("accuracy", grouped["accuracy"].median()),
                         ("distance", grouped["tested"].first().astype("Int64"))):  # fmt: skip
        wide = values.unstack("factor").reindex(columns=list(FACTORS))
        columns.append(wide.rename(columns=lambda f, name=name: f"{name}_x{factor_label(f)}"))
    table = pd.concat(columns, axis=1).reset_index()
    order = {"task": sweep.tasks, "model": sweep.models}  # the experiment file's order
    return table.sort_values(
        keys,
        key=lambda c: c.map({v: i for i, v in enumerate(order[c.name])}) if c.name in order else c,
        kind="stable",
    ).reset_index(drop=True)


def plot_extrapolation(sweep: Readout) -> Figure | None:
    """Accuracy against the factor of the training distance it was scored at (log2 axis; 1 is
    the test accuracy): one row per task, one column per training distance (a few of them,
    spread over the range), one line per model (its colour and dash as in every figure; the
    median over seeds, the band their range), chance as a grey dotted line. None where no run
    was scored at another distance.
    """
    long = accuracy_by_factor(sweep.finished)
    if not (long["factor"] != 1.0).any():
        return None
    tasks = [t for t in sweep.tasks if t in set(long.loc[long["factor"] != 1.0, "task"])]
    picks = {t: few(long.loc[long["task"] == t, "distance"].unique()) for t in tasks}
    fig, axes = figure(len(tasks), max(len(p) for p in picks.values()), width=3.2)
    colours, dashes = model_colours(sweep), model_dashes(sweep)
    for row, task in enumerate(tasks):
        for col, d in enumerate(picks[task]):
            ax = axes[row][col]
            part = long[(long["task"] == task) & (long["distance"] == d)]
            spread = part.groupby(["model", "factor"])["accuracy"].agg(["median", "min", "max"])
            for model in [m for m in sweep.models if m in set(part["model"])]:
                line = spread.loc[model]
                ax.fill_between(line.index, line["min"], line["max"], color=colours[model],
                                alpha=0.15, lw=0)  # fmt: skip
                ax.plot(line.index, line["median"], color=colours[model], ls=dashes[model],
                        marker="o", markersize=4, lw=1.4, label=model)  # fmt: skip
            chance = part.groupby("factor")["chance_accuracy"].median()
            ax.plot(chance.index, chance.to_numpy(), color="0.5", ls=":", lw=1.2, label="chance")
            ax.axvline(1.0, color="0.8", lw=0.8, zorder=0)
            ax.set_xscale("log", base=2)
            ax.set_xticks(list(FACTORS), [f"{f:g}x" for f in FACTORS])
            ax.minorticks_off()
            ax.set_ylim(-0.03, 1.03)
            tested = part.groupby("factor")["tested"].first()
            distances = ", ".join(str(int(tested[f])) for f in FACTORS if f in tested)
            ax.set_title(f"{task}, trained at distance {d}\n(scored at {distances})", fontsize=9)
            ax.set_xlabel("factor of the training distance")
            ax.set_ylabel("accuracy" if col == 0 else "")
        for ax in axes[row][len(picks[task]) :]:
            ax.set_visible(False)
    legend(fig, axes)
    fig.suptitle("Length extrapolation: accuracy at other distances than the training one")
    return fig
