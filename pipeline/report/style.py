"""The look every figure of the report shares: a ``Plot`` (file stem, title, caption, figure), one
colour, marker and dash per model (a cell's variants in distinct hues of one side of the colour
wheel), a log2 distance axis, and one legend per figure at its right.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from pipeline.report.results import Readout

FEW = 4  # distances drawn in the per-distance figures (spread over the experiment's range)
# each cell's variants take distinct hues from one side of the colour wheel (cool for the RNN,
# green to olive for the GRU, warm for the LSTM: Tableau's colours), so a family stands together
# and its variants still differ at a glance; a family's later variants also differ in marker and
# dash
FAMILIES = {
    "rnn": ("#1f77b4", "#9467bd", "#17becf", "#393b79"),
    "gru": ("#2ca02c", "#bcbd22", "#006d2c"),
    "lstm": ("#ff7f0e", "#d62728", "#8c564b", "#e377c2"),
}
MARKERS = ("o", "s", "^", "D")
# how a run ended, as a line style, where a line's colour is its training distance
OUTCOME_STYLES = {"solved": "-", "unsolved": (0, (4, 2)), "diverged": (0, (1, 1.5))}


@dataclass
class Plot:
    """A figure of the report: file stem, title, and a caption that says how to read it (and
    states only numbers computed from the sweep). ``svg``: also saved as SVG, for figures whose
    many decades a reader zooms into.
    """

    name: str
    title: str
    caption: str
    figure: Figure
    svg: bool = False


def _rank_in_family(sweep: Readout) -> dict[str, tuple[str, int]]:
    """Per model: its cell and its place among that cell's variants (0 for the first)."""
    cells = {m.name: m.cell for m in sweep.exp.models}
    out, seen = {}, {}
    for model in sweep.models:
        out[model] = (cells[model], seen.get(cells[model], 0))
        seen[cells[model]] = out[model][1] + 1
    return out


def model_colours(sweep: Readout) -> dict[str, str]:
    """One colour per model: a distinct hue of its cell's family for each variant."""
    return {
        model: FAMILIES[cell][index % len(FAMILIES[cell])]
        for model, (cell, index) in _rank_in_family(sweep).items()
    }


def model_markers(sweep: Readout) -> dict[str, str]:
    """One marker per model: a family's variants differ in marker as well as hue."""
    return {m: MARKERS[i % len(MARKERS)] for m, (_, i) in _rank_in_family(sweep).items()}


def model_dashes(sweep: Readout) -> dict[str, object]:
    """One line style per model: a family's variants differ by dash as well as hue, so curves
    that coincide (equal counts give equal fits) stay distinguishable by their ends.
    """
    styles = ["-", (0, (5, 2)), (0, (1, 1.5)), (0, (5, 2, 1, 2))]
    return {m: styles[i % len(styles)] for m, (_, i) in _rank_in_family(sweep).items()}


def by_model(sweep: Readout) -> dict:
    """Seaborn's hue arguments: one colour per model, the same in every figure."""
    return {"hue": "model", "hue_order": sweep.models, "palette": model_colours(sweep)}


def few(distances, n: int = FEW) -> list[int]:
    """Up to ``n`` of the sorted ``distances``, spread over the range, first and last included."""
    distances = sorted(set(int(d) for d in distances))
    if len(distances) <= n:
        return distances
    picks = np.linspace(0, len(distances) - 1, n).round().astype(int)
    return [distances[i] for i in sorted(set(picks))]


def figure(rows: int, cols: int, width: float = 3.6, height: float = 2.9):
    # +2 inches for the legend on the right; at least 7 wide so a one-panel title fits
    size = (max(width * cols + 2.0, 7.0), height * rows + 0.7)
    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.subplots(rows, cols, squeeze=False)


def distance_axis(ax, distances) -> None:
    """Distances usually double from one to the next: a log axis spaces them evenly."""
    distances = sorted(int(d) for d in distances)
    ax.set_xscale("log", base=2)
    ax.set_xticks(distances, [str(d) for d in distances])
    ax.minorticks_off()
    # the same margin whatever the number of distances (a single one would fill the panel)
    ax.set_xlim(distances[0] * 2**-0.5, distances[-1] * 2**0.5)
    ax.set_xlabel("distance (steps, key to output)")


def legend(fig: Figure, axes, extra: list | None = None) -> None:
    """One legend for the figure instead of one per panel: every label once, in first-seen
    order (a panel may lack a model that another has), then the ``extra`` handles.
    """
    entries: dict[str, object] = {}
    for ax in np.ravel(axes):
        if ax.get_legend() is not None:
            for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
                entries.setdefault(label, handle)
            ax.get_legend().remove()
        else:
            for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
                if not label.startswith("_"):
                    entries.setdefault(label, handle)
    for handle in extra or []:
        entries.setdefault(handle.get_label(), handle)
    if entries:
        figure_legend(fig, list(entries.values()), list(entries))


def model_handles(sweep: Readout) -> list:
    """Legend entries, one per model: its colour, marker and dash."""
    colours, markers, dashes = model_colours(sweep), model_markers(sweep), model_dashes(sweep)
    return [
        Line2D([], [], color=colours[m], marker=markers[m], ls=dashes[m], label=m)
        for m in sweep.models
    ]


def nudges(sweep: Readout) -> dict[str, float]:
    """Factors that shift each model sideways by a few percent of a distance (the axis is
    logarithmic), so models that score the same (all at 1.0, say) do not hide one another.
    """
    n = len(sweep.models)
    return {m: 2 ** (0.07 * (i - (n - 1) / 2)) for i, m in enumerate(sweep.models)}


def figure_legend(fig: Figure, handles: list, labels: list) -> None:
    """Right of the panels, one column, centred so its top stays clear of the figure's title."""
    fig.legend(handles, labels, loc="outside right center", frameon=False)


def log_span(ax, decades: float = 2.0) -> None:
    """Widen a log y axis to at least ``decades`` decades, so it carries labelled ticks."""
    low, high = ax.get_ylim()
    if high / low < 10**decades:
        middle = math.sqrt(low * high)
        ax.set_ylim(middle / 10 ** (decades / 2), middle * 10 ** (decades / 2))


def hide_unused(axes, used: int) -> None:
    for ax in np.ravel(axes)[used:]:
        ax.set_visible(False)


def distance_colours(distances) -> dict[int, tuple]:
    """One colour per training distance, darker for longer, the same in every panel: spread
    over a sequential palette's whole range, so that two distances differ at a glance.
    """
    distances = sorted({int(d) for d in distances})
    cmap = sns.color_palette("crest", as_cmap=True)
    spread = np.linspace(0.15, 1.0, len(distances)) if len(distances) > 1 else [0.7]
    return {d: cmap(x) for d, x in zip(distances, spread, strict=True)}


def distance_outcome_legend(
    fig: Figure, colours: dict, statuses, extra: list | None = None
) -> None:
    """A figure's legend for lines coloured by distance and styled by outcome, then ``extra``."""
    handles = [Line2D([], [], color=c, lw=2, label=f"distance {d}") for d, c in colours.items()]
    handles += [
        Line2D([], [], color="0.2", ls=OUTCOME_STYLES[s], label=s)
        for s in OUTCOME_STYLES
        if s in set(statuses)
    ]
    handles += extra or []
    figure_legend(fig, handles, [h.get_label() for h in handles])


def outcome_points(ax, x, y, status, colour, marker: str = "o", size: float = 26) -> None:
    """One point per run at (``x``, ``y``): filled where it solved, open where it did not within
    the budget (censored: more updates might have solved it), a cross where it diverged.
    """
    x, y, status = np.asarray(x, float), np.asarray(y, float), np.asarray(status)
    for kind, style in (
        ("solved", {"color": colour, "marker": marker}),
        ("unsolved", {"facecolors": "none", "edgecolors": colour, "marker": marker}),
        ("diverged", {"color": colour, "marker": "x"}),
    ):
        mine = status == kind
        if mine.any():
            ax.scatter(x[mine], y[mine], s=size, lw=1.1, zorder=3, **style)


def outcome_handles(statuses=("solved", "unsolved", "diverged")) -> list:
    """Legend entries for ``outcome_points``, for the outcomes among ``statuses``."""
    handles = {
        "solved": Line2D([], [], ls="none", marker="o", color="0.3", label="solved"),
        "unsolved": Line2D([], [], ls="none", marker="o", mfc="none", color="0.3",
                           label="unsolved in the budget (censored)"),
        "diverged": Line2D([], [], ls="none", marker="x", color="0.3", label="diverged"),
    }  # fmt: skip
    return [h for s, h in handles.items() if s in set(statuses)]


def panels(n: int, cols: int = 3, width: float = 3.2, height: float = 2.6):
    """Small multiples: ``n`` panels in rows of ``cols`` (fewer when ``n`` is smaller); returns
    (figure, the ``n`` axes in reading order); the grid's unused panels are hidden.
    """
    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    fig, axes = figure(rows, cols, width=width, height=height)
    flat = list(np.ravel(axes))
    hide_unused(flat, n)
    return fig, flat[:n]
