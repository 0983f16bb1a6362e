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
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from pipeline.report.gradient_figures import JACOBIAN_LABEL, SHARE_LABEL
from pipeline.report.results import KEEP_GATES, Readout, num
from pipeline.report.style import (
    OUTCOME_STYLES,
    Plot,
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


# ---- what the run shows, in numbers --------------------------------------------------------


def _column(runs: pd.DataFrame, phase: str, measure: str) -> pd.Series:
    """Per run, a result-file measure (``probe_<phase>_h_<measure>`` for a probe summary,
    ``mech_<phase>_<block>_<stat>`` or ``mech_<phase>_<gate>_tau_<stat>`` for the mechanism)."""
    if measure in ("key_share", "jacobian_key"):
        return pd.to_numeric(runs[f"probe_{phase}_h_{measure}"], errors="coerce")
    return pd.to_numeric(runs[f"mech_{phase}_{measure}"], errors="coerce")


def _block_measure(cell: str, stat: str) -> str:
    """``W_g_radius``: the measure of the block in the Elman W's place for ``cell``."""
    return f"{SPECTRUM_BLOCK[cell]}_{stat}"


def _probed_runs(sweep: Readout, task: str) -> pd.DataFrame:
    runs = sweep.finished[sweep.finished["task"] == task]
    return runs[runs["probe_data"].astype(bool)]


def _from_to(runs: pd.DataFrame, measure: str) -> str:
    """``0.0123 -> 0.234 (n=12)``: a measure's median at initialisation and after training."""
    init, final = _column(runs, "init", measure), _column(runs, "final", measure)
    n = int((init.notna() & final.notna()).sum())
    if n == 0:
        return "n/a"
    return f"{num(init.median())} → {num(final.median())} (n={n})"


def mechanism_table(sweep: Readout, task: str) -> pd.DataFrame:
    """Per variant and outcome (solved, not solved), over its probed runs: the median key share,
    Jacobian norm, spectral radius of the block in the Elman W's place, and (for a gated cell)
    the keep gate's longest time constant over units, each at initialisation -> after training,
    and how many runs' longest time constant reached their distance after training.
    """
    runs = _probed_runs(sweep, task)
    rows = []
    for model in sweep.models:
        mine = runs[runs["model"] == model]
        if mine.empty:
            continue
        cell = mine["cell"].iloc[0]
        gate = KEEP_GATES.get(cell)
        for outcome, part in (
            ("solved", mine[mine["status"] == "solved"]),
            ("not solved", mine[mine["status"] != "solved"]),
        ):
            if part.empty:
                continue
            row = {
                "model": model,
                "outcome": outcome,
                "runs": len(part),
                "distances": ", ".join(str(d) for d in sorted(part["distance"].unique())),
                "key share": _from_to(part, "key_share"),
                "Jacobian norm": _from_to(part, "jacobian_key"),
                "spectral radius (block in W's place)": (
                    f"{SPECTRUM_BLOCK[cell]}: {_from_to(part, _block_measure(cell, 'radius'))}"
                ),
            }
            row["keep gate: longest time constant (steps)"] = (
                _from_to(part, f"{gate}_tau_max") if gate else "no keep gate"
            )
            row["longest time constant ≥ distance, after training"] = (
                _reached_text(part, gate) if gate else "no keep gate"
            )
            rows.append(row)
    return pd.DataFrame(rows)


def _reached(runs: pd.DataFrame, gate: str, phase: str = "final") -> tuple[int, int]:
    """(runs whose keep gate's longest time constant reached their distance, runs measured)."""
    tau = _column(runs, phase, f"{gate}_tau_max")
    measured = tau.notna()
    return int((tau[measured] >= runs.loc[measured, "distance"]).sum()), int(measured.sum())


def _reached_text(runs: pd.DataFrame, gate: str) -> str:
    k, n = _reached(runs, gate)
    return f"{k} of {n}" if n else "n/a"


def mechanism_sentences(sweep: Readout, task: str) -> list[str]:
    """What the probes and the mechanism show across training on ``task``, computed: the key
    share at initialisation and after training of solved and unsolved runs; the spectral radius
    of the RNN variants' W; whether gated runs' keep gates reached their distance. Each with n;
    pooled over variants and distances where said (which confounds both with the outcome).
    """
    runs = _probed_runs(sweep, task)
    if runs.empty:
        return []
    out = [_share_sentence(sweep, task)]
    rnn = runs[runs["cell"] == "rnn"]
    if not rnn.empty:
        out.append(_radius_sentence(rnn))
    out.append(_gate_sentence(sweep, task))
    return [s for s in out if s]


@dataclass(frozen=True)
class Change:
    """A measure's change over training in ``runs`` runs of one outcome: the medians over runs
    at initialisation and after training, and the median of each run's ratio (final / init).
    """

    runs: int
    init: float
    final: float
    ratio: float


def share_changes(sweep: Readout, task: str) -> dict[str, Change]:
    """The key share's change over training, per outcome (``solved``, ``unsolved``: every
    finished run that did not solve), over the probed runs with a positive share at both ends,
    pooled over variants and distances.
    """
    runs = _probed_runs(sweep, task)
    out = {}
    for name, part in (
        ("solved", runs[runs["status"] == "solved"]),
        ("unsolved", runs[runs["status"] != "solved"]),
    ):
        init, final = _column(part, "init", "key_share"), _column(part, "final", "key_share")
        both = init.notna() & final.notna() & (init > 0) & (final > 0)
        if both.any():
            out[name] = Change(
                int(both.sum()),
                float(init[both].median()),
                float(final[both].median()),
                float((final[both] / init[both]).median()),
            )
    return out


def _share_sentence(sweep: Readout, task: str) -> str:
    changes = share_changes(sweep, task)
    if not changes:
        return ""
    parts = [
        f"in the {c.runs} {name} runs from {num(c.init)} to {num(c.final)} (per run, a median "
        f"{num(c.ratio)}-fold {'rise' if c.ratio > 1 else 'change'})"
        for name, c in changes.items()
    ]
    verb = "rose" if all(c.ratio > 1 for c in changes.values()) else "changed"
    return (
        f"Over training the key share {verb} (medians over runs, at initialisation and after "
        "training): " + "; ".join(parts) + ". Pooled over variants and distances, which differ "
        "between the outcomes."
    )


def _radius_sentence(rnn: pd.DataFrame) -> str:
    init, final = _column(rnn, "init", "W_radius"), _column(rnn, "final", "W_radius")
    measured = init.notna() & final.notna()
    if not measured.any():
        return ""
    parts = []
    for name, mine in (
        ("solved", rnn["status"] == "solved"),
        ("unsolved", rnn["status"] != "solved"),
    ):
        keep = measured & mine
        if keep.any():
            above = int((final[keep] > THRESHOLD).sum())
            parts.append(
                f"{num(init[keep].median())} → {num(final[keep].median())} in the "
                f"{int(keep.sum())} {name} runs ({above} above 1 after training)"
            )
    return (
        "In the RNN variants (W of h(t-1) into the tanh or ReLU), the spectral radius of W went "
        + " and ".join(parts)
        + " (median over runs): below 1 the long-term gradient components vanish, above 1 they "
        "can explode (Pascanu et al. 2013)."
    )


def gate_reach(sweep: Readout, task: str) -> dict[str, tuple[int, int, int, int]]:
    """Per outcome (``solved``, ``unsolved``), over the gated runs: (runs whose keep gate's
    longest time constant reached their distance after training, runs measured; the same at
    initialisation).
    """
    runs = _probed_runs(sweep, task)
    gated = runs[runs["cell"].isin(list(KEEP_GATES))]
    out = {}
    for name, mine in (
        ("solved", gated[gated["status"] == "solved"]),
        ("unsolved", gated[gated["status"] != "solved"]),
    ):
        totals = [0, 0, 0, 0]
        for cell, part in mine.groupby("cell"):
            final, init = _reached(part, KEEP_GATES[cell]), _reached(part, KEEP_GATES[cell], "init")
            totals = [a + b for a, b in zip(totals, (*final, *init), strict=True)]
        if totals[1]:
            out[name] = tuple(totals)
    return out


def _gate_sentence(sweep: Readout, task: str) -> str:
    reach = gate_reach(sweep, task)
    if not reach:
        return ""
    parts = [
        f"{k} of {n} {name} runs after training ({k0} of {n0} at initialisation)"
        for name, (k, n, k0, n0) in reach.items()
    ]
    return (
        "The keep gate's longest time constant over units (the LSTM's f, the GRU's z: a unit "
        "that can carry its state over the gap) reached the run's distance in "
        + " and in ".join(parts)
        + "."
    )


def probe_plot(sweep: Readout, task: str) -> Plot | None:
    """``plot_probe_over_training`` as a figure of the report, its caption with this run's
    numbers.
    """
    fig = plot_probe_over_training(sweep, task)
    if fig is None:
        return None
    every = sweep.exp.probe.every_evals
    when = "never during training" if every == 0 else f"every {every} validation(s)"
    said = [_share_sentence(sweep, task)]
    return Plot(
        f"probe_over_training_{task}",
        f"What reaches the key step during training ({task})",
        f"Probes on validation sequences at initialisation, {when} and after training. One row "
        "per variant; one line per run, its colour the run's training distance, solid where it "
        "solved, dashed where it did not, dotted where it diverged (log y). Left: the key "
        "share (gradient norm at the key step over that at the output step); right: the "
        "Jacobian norm from the key step to the output, without the loss. "
        + " ".join(s for s in said if s),
        fig,
    )


def mechanism_plot(sweep: Readout, task: str) -> Plot | None:
    """``plot_mechanism_over_training`` (longest time constant over units) as a figure of the
    report, its caption with this run's numbers.
    """
    fig = plot_mechanism_over_training(sweep, task, tau="max")
    if fig is None:
        return None
    rnn = _probed_runs(sweep, task)
    rnn = rnn[rnn["cell"] == "rnn"]
    said = [_radius_sentence(rnn) if not rnn.empty else "", _gate_sentence(sweep, task)]
    return Plot(
        f"mechanism_over_training_{task}",
        f"The recurrent matrix and the keep gate during training ({task})",
        "Measured with every probe. One row per variant; one line per run (colour: its training "
        "distance; solid solved, dashed not, dotted diverged). Left and middle: the spectral "
        "radius and the largest singular value of the block of W in the Elman W's place (W "
        "of the RNN, the LSTM's candidate block W_g, the GRU's W_n), with 1 dotted. Right: the "
        "keep gate's longest time constant over units (LSTM f, GRU z), each training distance "
        "a dashed line in its colour: a unit keeps its state over the gap where its time "
        "constant reaches the line. " + " ".join(s for s in said if s),
        fig,
    )
