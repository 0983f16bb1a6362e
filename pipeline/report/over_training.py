"""What the probes and the mechanism show across training: the gradient share and the Jacobian norm
at the key step, W's spectrum and the keep gate's time constants, against the training step.

Each run's probes (``Readout.probe_summary``: one row per probe, at initialisation, every
``probe.every_evals`` validations and after training) draw one line. The figures are small
multiples, one row per model; within a panel a line's colour is its training distance and its
style how the run ended (solid solved, dashed unsolved, dotted diverged), so a reader sees whether
the runs that solved moved differently from those that did not.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from pipeline.report.gradient_figures import JACOBIAN_LABEL, SHARE_LABEL
from pipeline.report.results import KEEP_GATES, Readout
from pipeline.report.style import (
    OUTCOME_STYLES,
    distance_colours,
    distance_outcome_legend,
    figure,
)

# the block of W that plays the Elman W's part, h(t-1) into the tanh that writes the state: W of
# the RNN, the LSTM's candidate g, the GRU's candidate n
SPECTRUM_BLOCK = {"rnn": "W", "lstm": "W_g", "gru": "W_n"}
PROBE_LABELS = {
    "h_key_share": ("gradient share at the key step (h)", SHARE_LABEL),
    "c_key_share": ("gradient share at the key step (c)", SHARE_LABEL.replace("h_", "c_")),
    "h_jacobian_key": ("Jacobian norm to the key step (h)", JACOBIAN_LABEL),
}
THRESHOLD = 1.0  # Pascanu et al. 2013: radius and norm of W on either side of 1 (tanh)
SPECTRUM = (  # the two panels of W: measure, words, axis label
    ("radius", "spectral radius", r"$\rho(W)$"),
    ("sv", "largest singular value", r"$\sigma_1(W)$"),
)


def trajectories(sweep: Readout, task: str) -> pd.DataFrame:
    """The probe rows of ``task``'s finished runs (``Readout.probe_summary``), each with its
    run's ``status`` and ``cell``, in the order taken within each run. A run that stops at its
    budget on a validation step is probed twice there, by that validation and after training,
    with the same weights: the final probe's row is kept. Empty where no run of ``task`` has
    any.
    """
    summary, runs = sweep.probe_summary, sweep.finished
    if summary.empty:
        return summary.assign(status=pd.Series(dtype=object), cell=pd.Series(dtype=object))
    part = summary[(summary["task"] == task) & summary["run_id"].isin(runs["run_id"])]
    by_run = runs.set_index("run_id")
    part = part.assign(
        status=part["run_id"].map(by_run["status"]), cell=part["run_id"].map(by_run["cell"])
    )
    part = part.drop_duplicates(["run_id", "step"], keep="last")
    part = part.assign(order=part.groupby("run_id").cumcount())
    keys = ["model", "distance", "seed", "run_id", "order"]
    return part.sort_values(keys, kind="stable").drop(columns="order").reset_index(drop=True)


def _runs(ax, rows: pd.DataFrame, column: str, colours: dict, positive: bool) -> int:
    """One line per run of ``rows``: ``column`` against step; returns the lines drawn. With
    ``positive``, values of 0 or below are left out (a log axis has no place for them).
    """
    drawn = 0
    for (_, distance, status), run in rows.groupby(["run_id", "distance", "status"], sort=False):
        values = pd.to_numeric(run[column], errors="coerce")
        values = values.where(np.isfinite(values) & ((values > 0) if positive else True))
        if values.isna().all():
            continue
        ax.plot(run["step"], values, color=colours[int(distance)], lw=1.2,
                ls=OUTCOME_STYLES[status], marker=".", markersize=3)  # fmt: skip
        drawn += 1
    return drawn


def plot_probe_over_training(
    sweep: Readout, task: str, measures: tuple[str, ...] = ("h_key_share", "h_jacobian_key")
) -> Figure | None:
    """The probe's ``measures`` (columns of ``probe_summary.csv``: ``h_key_share``,
    ``h_jacobian_key``, ``c_key_share``, ...) against the training step: one row per model
    (the sweep's order), one column per measure, one line per run (log y). None where no run
    of ``task`` has probe summaries.
    """
    rows = trajectories(sweep, task)
    measures = [m for m in measures if m in rows]
    if rows.empty or not measures:
        return None
    models = [m for m in sweep.models if m in set(rows["model"])]
    colours = distance_colours(rows["distance"])
    fig, axes = figure(len(models), len(measures), width=3.4, height=2.5)
    for r, model in enumerate(models):
        mine = rows[rows["model"] == model]
        for c, measure in enumerate(measures):
            ax = axes[r][c]
            title, ylabel = PROBE_LABELS.get(measure, (measure, measure))
            if not _runs(ax, mine, measure, colours, positive=True):
                ax.text(0.5, 0.5, "not measured", ha="center", va="center",
                        transform=ax.transAxes, color="0.4")  # fmt: skip
            else:
                ax.set_yscale("log")
            ax.set(title=f"{model}: {title}", ylabel=ylabel)
            ax.title.set_fontsize(9)
            ax.set_xlabel("training step (updates)" if r == len(models) - 1 else "")
    distance_outcome_legend(fig, colours, rows["status"])
    fig.suptitle(f"{task}: what reaches the key step, probe by probe during training")
    return fig


def plot_mechanism_over_training(
    sweep: Readout, task: str, tau: str = "median", blocks: dict[str, str] | None = None
) -> Figure | None:
    """W's spectral radius and largest singular value (of the block ``blocks`` names for the
    model's cell; by default ``SPECTRUM_BLOCK``'s, the one in the Elman W's place) and the keep
    gate's time constant (``tau``: ``median`` or ``max`` over units; log y) against the
    training step: one row per model, one line per run. The time-constant panel marks each
    training distance as a horizontal line in that distance's colour: a unit keeps its past over
    the gap where its time constant reaches the line. A model without a gate (the RNN) shows no
    time constant. None where no run of ``task`` has the measures.
    """
    blocks = {**SPECTRUM_BLOCK, **(blocks or {})}
    rows = trajectories(sweep, task)
    if rows.empty or not any(f"{b}_radius" in rows for b in blocks.values()):
        return None
    models = [m for m in sweep.models if m in set(rows["model"])]
    cells = rows.drop_duplicates("model").set_index("model")["cell"]
    colours = distance_colours(rows["distance"])
    fig, axes = figure(len(models), 3, width=3.3, height=2.5)
    for r, model in enumerate(models):
        mine, cell = rows[rows["model"] == model], cells[model]
        block = blocks[cell]
        for c, (stat, words, symbol) in enumerate(SPECTRUM):
            ax = axes[r][c]
            column = f"{block}_{stat}"
            if column in mine:
                _runs(ax, mine, column, colours, positive=False)
            ax.axhline(THRESHOLD, color="0.4", ls=":", lw=1)
            ax.set_title(f"{model}: {words} of {block}", fontsize=9)
            ax.set_ylabel(symbol.replace("W", block))  # W_g: a one-letter subscript
        ax = axes[r][2]
        gate = KEEP_GATES.get(cell)
        column = f"{gate}_tau_{tau}"
        if gate is None or column not in mine or not _runs(ax, mine, column, colours, True):
            ax.text(0.5, 0.5, "no keep gate" if gate is None else "not measured", ha="center",
                    va="center", transform=ax.transAxes, color="0.4")  # fmt: skip
            ax.set_xticks([])
            ax.set_yticks([])
        else:
            for d in sorted(mine["distance"].unique()):
                ax.axhline(d, color=colours[int(d)], ls="--", lw=0.9)
            ax.set_yscale("log")
            _span_to_distances(ax, mine["distance"])
            ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.yaxis.set_minor_formatter(NullFormatter())
        words = f"{gate}'s time constant, {tau} over units" if gate else "no keep gate"
        ax.set_title(f"{model}: {words}", fontsize=9)
        for a in axes[r]:
            a.set_xlabel("training step (updates)" if r == len(models) - 1 else "")
        axes[r][2].set_ylabel("time constant (steps)" if gate is not None else "")
    threshold = Line2D([], [], color="0.4", ls=":", label="1 (vanishing below, exploding above)")
    marker = Line2D([], [], color="0.5", ls="--", label="training distance (time constant panel)")
    distance_outcome_legend(fig, colours, rows["status"], [threshold, marker])
    fig.suptitle(f"{task}: the recurrent matrix and the keep gate, probe by probe during training")
    return fig


def _span_to_distances(ax, distances) -> None:
    """Keep every distance's line inside a time-constant panel's log axis."""
    low, high = ax.get_ylim()
    d_low, d_high = float(min(distances)), float(max(distances))
    ax.set_ylim(min(low, d_low / 1.5), max(high, d_high * 1.5, math.e))
