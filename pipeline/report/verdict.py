"""The central comparison, like with like: cell families (RNN, GRU, LSTM) compared twice.

- **PyTorch defaults**: each family's variant that keeps PyTorch's own initialisation (a tanh
  RNN, a GRU, an LSTM with PyTorch's forget-gate bias), so no family gets an initialisation
  chosen for the task;
- **each family at its best**: each family's variant that held the dependency furthest. This
  choice is made on the evaluation results themselves, so a family with more variants has more
  chances: the sentence says how many each had.

Both compare variants trained under the same tuning budget (when the experiment tunes: the same
grid, seeds and distance) and name the parameter counts, which differ at equal hidden size.
"""

from __future__ import annotations

import math

import pandas as pd

from pipeline.report.results import Readout, values_of
from pipeline.report.stats import D50, fit_d50, horizons, success_counts
from pipeline.report.tables import short_horizon

FAMILY = {"rnn": "RNN", "gru": "GRU", "lstm": "LSTM"}


def _d50_rank(d: D50) -> float:
    """A number that orders fitted horizons: beyond the sweep > any estimate > below it."""
    if d.kind == "beyond":
        return math.inf
    if d.kind == "fitted":
        return d.estimate
    if d.kind == "between":
        return math.sqrt(d.low * d.high)
    if d.kind == "step":
        return d.at
    return 0.0


def standing(sweep: Readout, task: str) -> pd.DataFrame:
    """Per model on ``task``: family, whether PyTorch-default, horizon, d50, parameters, mean
    best validation accuracy; sorted best first (horizon, then d50, then validation accuracy:
    picking a family's best variant reads no test number).
    """
    runs = sweep.runs[sweep.runs["task"] == task]
    counts = success_counts(runs)
    held = horizons(counts)
    configs = {m.name: m for m in sweep.exp.models}
    rows = []
    for model in sweep.models:
        mine = counts[counts["model"] == model]
        d50 = fit_d50(mine)
        mine_runs = runs[runs["model"] == model]
        rows.append(
            {
                "model": model,
                "family": FAMILY[configs[model].cell],
                "default": configs[model].pytorch_default,
                "horizon": held[(task, model)].distance or 0,
                "horizon_of": held[(task, model)],
                "d50": d50,
                "d50_rank": _d50_rank(d50),
                "parameters": int(values_of(mine_runs, "parameters").max()),
                "hidden_size": values_of(mine_runs, "hidden_size").max(),  # nan: unknown
                "val_accuracy": values_of(mine_runs, "best_val_accuracy").mean(),
                "shortest": mine["distance"].min(),
                "longest": mine["distance"].max(),
            }
        )
    table = pd.DataFrame(rows)
    return table.sort_values(
        ["horizon", "d50_rank", "val_accuracy"], ascending=False, kind="stable"
    )


def _describe(row) -> str:
    """``gru (horizon ≥ 40; 1,988 parameters)``: the horizon as a bound where it is censored."""
    return f"{row.model} (horizon {short_horizon(row.horizon_of)}; {row.parameters:,} parameters)"


def _d50_span(d: D50) -> tuple[float, float]:
    """The range the data leave for d50: the 90% interval (open ends unbounded), or the side of
    the sweep it lies on.
    """
    if d.kind == "beyond":
        return d.high, math.inf
    if d.kind == "below":
        return -math.inf, d.low
    if d.kind in ("fitted", "between", "step"):
        low = -math.inf if d.low_open or math.isnan(d.low) else d.low
        high = math.inf if d.high_open or math.isnan(d.high) else d.high
        return low, high
    return -math.inf, math.inf


def _overlap(a: D50, b: D50) -> bool:
    """Whether the data leave room for ``a`` and ``b`` to have the same d50."""
    a_low, a_high = _d50_span(a)
    b_low, b_high = _d50_span(b)
    return a_low < b_high and b_low < a_high


def _tiers(picked: pd.DataFrame) -> list[list]:
    """``picked`` (one variant per family, best first) in places: a family shares the place of
    the one ranked before it when their d50 ranges overlap (with a handful of seeds a horizon
    one distance apart is not a separation).
    """
    tiers: list[list] = []
    for row in picked.itertuples():
        if tiers and _overlap(row.d50, tiers[-1][0].d50):
            tiers[-1].append(row)
        else:
            tiers.append([row])
    return tiers


def _compare(picked: pd.DataFrame) -> str:
    """Which family held furthest among ``picked`` (one variant per family, best first), with
    the whole order in places (``_tiers``).
    """
    tiers = _tiers(picked)
    order = " > ".join(
        " = ".join(f"{r.family} (horizon {short_horizon(r.horizon_of)})" for r in tier)
        for tier in tiers
    )
    lead = tiers[0]
    if len(lead) == 1:
        head = f"the {lead[0].family} held the dependency furthest"
    else:
        names = [r.family for r in lead]
        head = f"the data do not separate {', '.join(names[:-1])} and {names[-1]}"
        if all(r.horizon == r.longest for r in lead):
            head += " (each held to the longest distance: the sweep is too short to rank them)"
    return (
        f"{head}; ranked by memory horizon, families sharing a place where their d50 ranges "
        f"overlap: {order}"
    )


def compact(sweep: Readout, task: str) -> str:
    """``PyTorch defaults: GRU > RNN = LSTM; at its best: ...``: both comparisons in one line,
    empty with fewer than two families.
    """
    table = standing(sweep, task)
    if table["family"].nunique() < 2:
        return ""
    said = []
    for label, picked in (
        ("PyTorch defaults", table[table["default"]].drop_duplicates("family")),
        ("each family at its best", table.drop_duplicates("family")),
    ):
        if picked["family"].nunique() >= 2:
            order = " > ".join(" = ".join(r.family for r in tier) for tier in _tiers(picked))
            said.append(f"{label}: {order}")
    return (
        "Families (by memory horizon, '=' where the d50 ranges overlap): " + "; ".join(said) + "."
    )


def _sizes(picked: pd.DataFrame) -> str:
    """How the compared models' sizes relate: equal width means unequal parameter counts."""
    widths, counts = set(picked["hidden_size"]), set(picked["parameters"])
    if len(widths) == 1 and len(counts) > 1 and not math.isnan(width := widths.pop()):
        return (
            f", at the same hidden width ({width:g}), so with different parameter counts "
            f"({min(counts):,} to {max(counts):,})"
        )
    return ""


def _budget(sweep: Readout) -> str:
    tuning = sweep.exp.tuning
    if tuning is None:
        t = sweep.exp.training
        settings = f"{t.optimizer}, learning rate {t.learning_rate:g}"
        return f"all with the same settings ({settings}, untuned)"
    grid = "; ".join(f"{field} {values}" for field, values in tuning.grid.items())
    return (
        f"each tuned with the same budget (grid {grid} on tuning seed(s) {tuning.seeds}, chosen "
        "on validation data)"
    )


def verdicts(sweep: Readout, task: str) -> list[str]:
    """The two family comparisons on ``task``, in words; empty with fewer than two families."""
    table = standing(sweep, task)
    if table["family"].nunique() < 2:
        return []
    out = []
    defaults = table[table["default"]].drop_duplicates("family")
    if defaults["family"].nunique() >= 2:
        out.append(
            "PyTorch defaults, each family's cell with PyTorch's own initialisation, "
            f"{_budget(sweep)}{_sizes(defaults)}: "
            + "; ".join(_describe(r) for r in defaults.itertuples())
            + f". Among these, {_compare(defaults)}."
        )
    else:
        out.append(
            "No defaults-against-defaults comparison: fewer than two families have a variant "
            "with PyTorch's own initialisation in this experiment."
        )
    best = table.drop_duplicates("family")
    sizes = table.groupby("family", sort=False)["model"].count()
    counted = ", ".join(f"{family} {n}" for family, n in sizes.items())
    out.append(
        f"Each family at its best, {_budget(sweep)}; the best variant is picked on these same "
        f"results, so families with more variants had more chances (variants: {counted}): "
        + "; ".join(_describe(r) for r in best.itertuples())
        + f". Among these, {_compare(best)}."
    )
    return out
