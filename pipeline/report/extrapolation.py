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
from pipeline.report.results import Readout, num, spread_text
from pipeline.report.style import Plot, few, figure, legend, model_colours, model_dashes

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


# ---- what the run shows, in numbers --------------------------------------------------------

# how much of its above-chance accuracy a run keeps at four times its distance, as a share of the
# way from chance to perfect: at least HOLDS, a latch that holds at longer gaps; at most TIED, a
# solution tied to its own length (back at chance); between, partly
HOLDS, TIED = 0.9, 0.1
LONGEST = max(EXTRAPOLATION_FACTORS)


def retained(long: pd.DataFrame) -> pd.Series:
    """Per row of ``accuracy_by_factor``: (accuracy - chance) / (1 - chance), 1 at perfect and 0
    at chance."""
    return (long["accuracy"] - long["chance_accuracy"]) / (1 - long["chance_accuracy"])


def summary_table(sweep: Readout, task: str) -> pd.DataFrame:
    """Per variant on ``task``, over its runs that solved their own distance (a run that did not
    says nothing about another length): n, the median accuracy at each factor with its range,
    and what it learned (``_verdict``) from the median share kept at four times the distance.
    """
    runs = sweep.finished[(sweep.finished["task"] == task) & (sweep.finished["status"] == "solved")]
    long = accuracy_by_factor(runs)
    rows = []
    for model in sweep.models:
        mine = long[long["model"] == model]
        if mine.empty:
            continue
        row = {"model": model, "solved runs": int((mine["factor"] == 1.0).sum())}
        for factor in FACTORS:
            at = mine.loc[mine["factor"] == factor, "accuracy"]
            row[f"accuracy at {factor:g}x"] = spread_text(at) if not at.empty else "not scored"
        kept = retained(mine[mine["factor"] == LONGEST])
        row["what it learned"] = _verdict(kept.median()) if not kept.empty else "not scored"
        rows.append(row)
    return pd.DataFrame(rows)


def _verdict(kept: float) -> str:
    if kept >= HOLDS:
        return f"a latch that holds at {LONGEST:g}x"
    if kept <= TIED:
        return "tied to its own length"
    return f"partly ({kept:.0%} of the way from chance at {LONGEST:g}x)"


def extrapolation_sentence(sweep: Readout, task: str) -> str:
    """Which variants learned a latch that holds at longer gaps and which a solution tied to
    their own length, from ``summary_table``, with the median accuracies and n."""
    table = summary_table(sweep, task)
    if table.empty or (table["what it learned"] == "not scored").all():
        return ""
    groups: dict[str, list[str]] = {}
    for row in table.to_dict("records"):
        kind = row["what it learned"].split(" (")[0]
        groups.setdefault(kind, []).append(
            f"{row['model']}, median {row[f'accuracy at {LONGEST:g}x']}"
        )
    said = "; ".join(f"{kind}: {', '.join(members)}" for kind, members in groups.items())
    return (
        f"Length extrapolation, over the runs that solved their own distance, scored at "
        f"{LONGEST:g} times it (median accuracy, range, n): {said}. A latch that holds keeps at "
        f"least {HOLDS:.0%} of the way from chance to perfect there; tied to its own length, at "
        f"most {TIED:.0%}."
    )


def extrapolation_plot(sweep: Readout) -> Plot | None:
    """``plot_extrapolation`` as a figure of the report, with this run's numbers in its caption."""
    fig = plot_extrapolation(sweep)
    if fig is None:
        return None
    said = " ".join(s for t in sweep.tasks if (s := extrapolation_sentence(sweep, t)))
    return Plot(
        "extrapolation",
        "Length extrapolation",
        "Each trained run scored on fresh sequences at half, twice and four times its training "
        "distance, as many as its test split (1x: its test accuracy). A panel per training "
        "distance (a few of them); a line per variant: the median over its finished runs, "
        "the band their range; chance dotted. " + said,
        fig,
    )


def detail_table(sweep: Readout) -> pd.DataFrame:
    """``extrapolation_table`` as the report prints it: each factor's median accuracy with the
    distance it was scored at, every finished run counted."""
    table = extrapolation_table(sweep)
    out = table[["task", "model", "distance", "n"]].copy()
    for factor in FACTORS:
        label = factor_label(factor)
        accuracy, tested = table[f"accuracy_x{label}"], table[f"distance_x{label}"]
        out[f"{factor:g}x"] = [
            "not scored" if pd.isna(a) else f"{num(a)} (d={int(d)})"
            for a, d in zip(accuracy, tested, strict=True)
        ]
    return out
