"""The report's tables, each a ``pd.DataFrame`` of formatted text, from one ``Readout``."""

from __future__ import annotations

import math

import pandas as pd

from pipeline.config.runs import grid_label
from pipeline.report.results import (
    FEW_RUNS,
    NO_PROBE,
    PHASES,
    STATES,
    Readout,
    distance_text,
    efold_text,
    init_setting,
    is_unprobed,
    num,
    spread_text,
    values_of,
)
from pipeline.report.stats import D50, Horizon, fit_d50, horizons, success_counts
from pipeline.report.survival import survival_table

NOT_RUN = "not run"  # a per-distance cell of a variant that no run reached at that distance


def by_distance(rows: list[dict]) -> pd.DataFrame:
    """Rows with ``d=<distance>`` columns as a table: those columns in increasing distance after
    the others (a staircase visits distances out of order), and a distance a variant never ran
    at written ``not run`` rather than left empty.
    """
    table = pd.DataFrame(rows)
    per = sorted((c for c in table.columns if str(c).startswith("d=")), key=lambda c: int(c[2:]))
    table = table[[c for c in table.columns if c not in per] + per]
    return table.fillna({c: NOT_RUN for c in per})


def count_text(c) -> str:
    """``2/3``: seeds solved of planned, with those that did not finish: ``1/3 (1 unfinished)``."""
    text = f"{int(c['solved'])}/{int(c['planned'])}"
    unfinished = int(c["planned"] - c["finished"])
    return text + (f" ({unfinished} unfinished)" if unfinished else "")


def horizon_text(h: Horizon) -> str:
    """The monotone horizon in words, censored ends as bounds (``≥ 40``: held at the longest
    distance run; ``< 10``: failed at the shortest), with any later distance held after a
    failure.
    """
    if h.distance is None:
        text = f"< {h.failed_at} (did not hold at the shortest distance)"
    elif h.distance == h.longest:
        text = f"≥ {h.distance} (held at the longest distance run)"
    else:
        text = str(h.distance)
    if h.held_again:
        again = ", ".join(map(str, h.held_again))
        text += f"; non-monotone: held again at {again} after failing at {h.failed_at}"
    return text


def d50_text(d: D50, shortest: float, longest: float) -> str:
    """The fitted horizon in words: a number with its 90% interval only where it is identified,
    and said to be extrapolated where it lies outside the sweep's distances.
    """
    if d.kind == "beyond":
        return f"beyond the longest distance ({distance_text(d.high)}): every run solved"
    if d.kind == "below":
        return f"below the shortest distance ({distance_text(d.low)}): no run solved"
    if d.kind == "between":
        return (
            f"between {distance_text(d.low)} and {distance_text(d.high)} (not identifiable: "
            "every seed solved up to the one, none from the other)"
        )
    if d.kind == "step":
        share = f"{d.at_solved}/{d.at_planned} seeds solved at {distance_text(d.at)}"
        if d.low_open:
            bound = f"below {distance_text(d.high)}"
            rest = f"{share}, none from {distance_text(d.high)} on"
        elif d.high_open:
            bound = f"above {distance_text(d.low)}"
            rest = f"every seed solved up to {distance_text(d.low)}, {share}"
        else:
            bound = f"between {distance_text(d.low)} and {distance_text(d.high)}"
            low, high = distance_text(d.low), distance_text(d.high)
            rest = f"every seed solved up to {low}, {share}, none from {high}"
        return f"{bound} (a step, no finite fit: {rest})"
    if d.kind == "rising":
        return "not estimable: the share of seeds solved rose with distance"
    if d.low_open and d.high_open:
        interval = "90% interval unbounded"
    elif d.low_open:
        interval = f"90% interval below {distance_text(d.high)}"
    elif d.high_open:
        interval = f"90% interval above {distance_text(d.low)}"
    else:
        interval = f"90% interval {distance_text(d.low)} to {distance_text(d.high)}"
    if d.estimate < shortest:
        side = f"below the shortest distance {distance_text(shortest)}"
    elif d.estimate > longest:
        side = f"beyond the longest distance {distance_text(longest)}"
    else:
        return f"{distance_text(d.estimate)} ({interval}; n={d.n} runs)"
    return f"{side}, by extrapolation (fit {distance_text(d.estimate)}; {interval}; n={d.n} runs)"


def horizon_table(sweep: Readout, task: str) -> pd.DataFrame:
    """Per model: init, the horizons, and seeds solved/planned per distance. Without a staircase:
    the monotone horizon and the fitted d50. With one, the bracket is the horizon (in the
    staircase's table): the d50 column is kept, flagged, and given only where the bracket is
    not censored (a logistic fit past a censored end would print a bound as a value).
    """
    counts = success_counts(sweep.runs[sweep.runs["task"] == task])
    held = horizons(counts)
    rows = []
    for model in sweep.models:
        mine = counts[counts["model"] == model]
        d50 = d50_text(fit_d50(mine), mine["distance"].min(), mine["distance"].max())
        row = {
            "model": model,
            "cell": sweep.runs.loc[sweep.runs["model"] == model, "cell"].iloc[0],
            "init": init_setting(sweep.exp, model),
        }
        if sweep.brackets:
            b = sweep.brackets.get((task, model))
            censored = b is None or b.beyond_cap or b.below_min
            row["fitted d50 (descriptive only)"] = (
                f"not given: the bracket is censored ({short_bracket(b)})" if censored else d50
            )
        else:
            row["memory horizon"] = horizon_text(held[(task, model)])
            row["fitted horizon d50"] = d50
        row |= {f"d={c.distance}": count_text(c._asdict()) for c in mine.itertuples(index=False)}
        rows.append(row)
    return by_distance(rows)


def short_horizon(h: Horizon) -> str:
    """``12``, ``≥ 40`` or ``< 10``: a monotone horizon with its censoring, without words."""
    if h.distance is None:
        return f"< {h.failed_at}"
    return f"≥ {h.distance}" if h.distance == h.longest else str(h.distance)


def short_bracket(b) -> str:
    """``12 to 17``, ``≥ 24``, ``< 6`` or ``incomplete``: a bracket without words."""
    if b is None:
        return "incomplete"
    if b.below_min:
        return f"< {b.upper}"
    return f"≥ {b.lower}" if b.beyond_cap else f"{b.lower} to {b.upper}"


def decay_table(sweep: Readout, task: str) -> pd.DataFrame:
    """Per model and state: the e-folding length at initialisation per distance (the fit window
    is k = 1..distance, the same for every model in a column), or why there is none.
    """
    runs = sweep.probed(task)
    rows = []
    for model in sweep.models:
        mine = runs[runs["model"] == model]
        for state in STATES:
            column = f"probe_init_{state}_rho"
            if mine.empty or values_of(mine, column).empty:
                continue
            row = {"model": model, "state": state}
            for d, at in mine.groupby("distance"):
                rho = values_of(at, column).median()
                r2 = values_of(at, f"probe_init_{state}_rho_r2").median()
                row[f"d={d}"] = efold_text(rho, r2, int(d))
            rows.append(row)
    return by_distance(rows)


def measure_table(sweep: Readout, task: str, stat: str) -> pd.DataFrame:
    """Per model and state: a probe summary ``stat`` (``key_share`` or ``jacobian_key``) per
    distance, median over seeds with its range, at initialisation and after training; for the
    key share also the quartiles over each run's probe samples (their median over seeds).
    """
    runs = sweep.probed(task)
    rows = []
    for model in sweep.models:
        mine = runs[runs["model"] == model]
        for state in STATES:
            if mine.empty or values_of(mine, f"probe_init_{state}_{stat}").empty:
                continue
            for phase in PHASES:
                row = {"model": model, "state": state, "when": _WHEN[phase]}
                for d, at in mine.groupby("distance"):
                    name = f"probe_{phase}_{state}_{stat}"
                    row[f"d={d}"] = spread_text(values_of(at, name))
                    if stat == "key_share" and f"{name}_q25" in at:
                        q25, q75 = values_of(at, f"{name}_q25"), values_of(at, f"{name}_q75")
                        if not (q25.empty or q75.empty):
                            row[f"d={d}"] += (
                                f"; samples' quartiles {num(q25.median())} to {num(q75.median())}"
                            )
                rows.append(row)
    return by_distance(rows)


_WHEN = {"init": "at initialisation", "final": "after training"}


def survival_text(curve) -> str:
    """``300 (2/4 solved; no interval from 4 runs)``, or with ``FEW_RUNS`` runs or more
    ``300 (95% CI 100 to 500; 9/12 solved)``; ``not reached`` where fewer than half solved.
    """
    solved = f"{curve.solved}/{curve.runs} solved"
    if math.isnan(curve.median):
        return f"not reached ({solved})"
    low, high = curve.median_ci
    if curve.runs < FEW_RUNS:
        return f"{curve.median:.0f} ({solved}; no interval from {curve.runs} runs)"
    if math.isnan(low):
        return f"{curve.median:.0f} ({solved})"
    upper = "past the budget" if math.isinf(high) else f"{high:.0f}"
    return f"{curve.median:.0f} (95% CI {low:.0f} to {upper}; {solved})"


def steps_table(sweep: Readout, task: str) -> pd.DataFrame:
    """Per model: the Kaplan-Meier median steps to solve per distance, where defined."""
    budget = sweep.exp.training.max_steps
    curves = survival_table(sweep.runs[sweep.runs["task"] == task], budget)
    rows = []
    for model in sweep.models:
        row = {"model": model}
        for (t, m, d), curve in sorted(curves.items(), key=lambda kv: kv[0][2]):
            if t == task and m == model:
                row[f"d={d}"] = survival_text(curve)
        rows.append(row)
    return by_distance(rows)


def mse_table(sweep: Readout, task: str) -> pd.DataFrame:
    """Per model: test MSE per distance (median over seeds, with its range)."""
    runs = sweep.finished[sweep.finished["task"] == task]
    rows = []
    for model in sweep.models:
        mine = runs[runs["model"] == model]
        row = {"model": model}
        for d, at in mine.groupby("distance"):
            row[f"d={d}"] = spread_text(values_of(at, "test_loss"), fmt=lambda v: f"{v:.4f}")
        rows.append(row)
    return by_distance(rows)


def models_table(sweep: Readout, task: str) -> pd.DataFrame:
    """Per variant: family, initialisation, size and parameters, and the settings it trained
    with (the ones its tuning chose, when the experiment tunes).
    """
    runs = sweep.runs[sweep.runs["task"] == task]
    chosen = {(s.task, s.model): grid_label(s.chosen) for s in sweep.selections}
    rows = []
    for m in sweep.exp.models:
        mine = runs[runs["model"] == m.name]
        row = {
            "model": m.name,
            "cell": m.cell,
            "init": m.describe_init(),
            "hidden size": int(values_of(mine, "hidden_size").max()),
            "parameters": f"{int(values_of(mine, 'parameters').max()):,}",
        }
        if sweep.exp.tuning is not None:
            row["tuning chose"] = chosen.get((task, m.name), "tuning unfinished")
        rows.append(row)
    return pd.DataFrame(rows)


def tuning_table(sweep: Readout, task: str) -> pd.DataFrame:
    """Per variant and grid point, what tuning saw on validation data (the rule's inputs)."""
    rows = []
    for s in sweep.selections:
        if s.task != task:
            continue
        row = {"model": s.model}
        for sc in s.scores:
            mark = " (chosen)" if sc.point == s.chosen else ""
            row[sc.label] = (
                f"{sc.solved}/{sc.runs} solved, {sc.mean_steps:.0f} steps, best val acc "
                f"{sc.mean_best_val_accuracy:.3f}{mark}"
            )
        rows.append(row)
    return pd.DataFrame(rows)


def tuning_caveats(sweep: Readout, task: str) -> str:
    """Where a variant's tuning choice says less than "at its best": no grid point solved a
    tuning seed (the choice then rests on validation accuracy alone), or a numeric setting was
    chosen at the grid's edge (its best may lie outside the grid).
    """
    numeric = {
        field: sorted(values)
        for field, values in (sweep.exp.tuning.grid.items() if sweep.exp.tuning else [])
        if len(values) >= 3 and all(isinstance(v, int | float) for v in values)
    }
    noise, edge = [], []
    for s in sweep.selections:
        if s.task != task:
            continue
        if not any(sc.solved for sc in s.scores):
            accs = [sc.mean_best_val_accuracy for sc in s.scores]
            noise.append(f"{s.model} (best validation accuracy {min(accs):.3f} to {max(accs):.3f})")
        for field, value in s.chosen:
            if field in numeric and value in (numeric[field][0], numeric[field][-1]):
                side = "smallest" if value == numeric[field][0] else "largest"
                edge.append(f"{s.model} ({field} {value:g}, the {side})")
    said = []
    if noise:
        said.append(
            "No grid point solved a tuning seed for " + ", ".join(noise) + ": the choice rests "
            f"on best validation accuracy alone, over {len(sweep.exp.tuning.seeds)} tuning "
            "seed(s), where a small difference can be noise."
        )
    if edge:
        said.append(
            "Chosen at the edge of the grid: " + ", ".join(edge) + "; a setting outside the "
            "grid may do better, so these variants are at their best within the grid only."
        )
    return " ".join(said) or "Every variant's choice solved a tuning seed, inside the grid."


def problem_table(sweep: Readout) -> pd.DataFrame:
    """Every run that did not finish cleanly, and every finished run without probe data (tuning
    runs included).
    """
    runs = sweep.runs if sweep.tuning is None else pd.concat([sweep.tuning, sweep.runs])
    runs = runs.reset_index(drop=True)
    bad = runs[(runs["status"] != "solved") & (runs["status"] != "unsolved")].copy()
    unprobed = runs[is_unprobed(runs)].copy()
    unprobed["note"] = [NO_PROBE if pd.isna(n) else f"{n}; {NO_PROBE}" for n in unprobed["note"]]
    both = pd.concat([bad, unprobed[~unprobed.index.isin(bad.index)]]).sort_index()
    return both[["run_key", "status", "note", "run_id"]].fillna("")


def runs_table(sweep: Readout) -> pd.DataFrame:
    """Every run, readable: accuracy, steps and key shares (or why there are none)."""
    runs = sweep.runs
    table = runs[["task", "model", "distance", "seed", "status"]].copy()
    table["test accuracy"] = runs["test_accuracy"].map(lambda v: "" if pd.isna(v) else f"{v:.3f}")
    table["test loss"] = runs["test_loss"].map(lambda v: "" if pd.isna(v) else f"{v:.4f}")
    table["steps"] = runs["steps"].astype("string").fillna("")
    table["steps to solve"] = runs["steps_to_solve"].astype("string").fillna("")
    unprobed = is_unprobed(runs)
    for phase in PHASES:
        shares = runs[f"probe_{phase}_h_key_share"].map(lambda v: "" if pd.isna(v) else num(v))
        table[f"key share h {phase}"] = shares.where(~unprobed, NO_PROBE)
    table["run_id"] = runs["run_id"].fillna("")
    return table
