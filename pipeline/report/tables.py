"""The report's tables, each a ``pd.DataFrame`` of formatted text, from one ``Sweep``."""

from __future__ import annotations

import math

import pandas as pd

from pipeline.decay import efold
from pipeline.report.results import (
    NO_PROBE,
    PHASES,
    STATES,
    Sweep,
    init_setting,
    is_unprobed,
    median_of,
    sci,
    steps_text,
)
from pipeline.report.stats import horizons, success_counts


def horizon_table(sweep: Sweep, task: str) -> pd.DataFrame:
    """Per model: init, memory horizon with its seed count, and solved/planned per distance."""
    counts = success_counts(sweep.runs[sweep.runs["task"] == task])
    held = horizons(counts)
    rows = []
    for model in sweep.models:
        mine = counts[counts["model"] == model].set_index("distance")
        h = held[(task, model)]
        row = {
            "model": model,
            "cell": sweep.runs.loc[sweep.runs["model"] == model, "cell"].iloc[0],
            "init": init_setting(sweep.exp, model),
            "memory horizon": "none" if h is None else f"{h} ({_count(mine.loc[h])} seeds)",
        }
        row |= {f"d={d}": _count(c) for d, c in mine.iterrows()}
        rows.append(row)
    return pd.DataFrame(rows)


def _count(c) -> str:
    """``2/3``: seeds solved of planned, with those that did not finish: ``1/3 (1 unfinished)``."""
    text = f"{int(c['solved'])}/{int(c['planned'])}"
    unfinished = int(c["planned"] - c["finished"])
    return text + (f" ({unfinished} unfinished)" if unfinished else "")


def decay_table(sweep: Sweep, task: str) -> pd.DataFrame:
    """Per model and state: fitted decay rho and e-folding length, init and after training,
    median over the task's probed runs.
    """
    runs = sweep.probed(task)
    rows = []
    for model in sweep.models:
        mine = runs[runs["model"] == model]
        for state in STATES:
            if mine.empty or mine[f"probe_init_{state}_rho"].isna().all():
                continue
            row = {"model": model, "state": state, "probed runs": len(mine)}
            for phase, label in (("init", "at init"), ("final", "after training")):
                rho = median_of(mine, f"probe_{phase}_{state}_rho")
                row[f"rho {label}"] = f"{rho:.3f}" if math.isfinite(rho) else "n/a"
                row[f"e-fold {label} (steps)"] = steps_text(efold(rho))
            rows.append(row)
    return pd.DataFrame(rows)


def share_table(sweep: Sweep, task: str) -> pd.DataFrame:
    """Per model and state: median key share per distance, ``init -> after training``."""
    runs = sweep.probed(task)
    rows = []
    for model in sweep.models:
        mine = runs[runs["model"] == model]
        for state in STATES:
            if mine.empty or mine[f"probe_init_{state}_key_share"].isna().all():
                continue
            row = {"model": model, "state": state}
            for d, at in mine.groupby("distance"):
                init = median_of(at, f"probe_init_{state}_key_share")
                final = median_of(at, f"probe_final_{state}_key_share")
                row[f"d={d}"] = f"{sci(init)} → {sci(final)}"
            rows.append(row)
    return pd.DataFrame(rows)


def problem_table(sweep: Sweep) -> pd.DataFrame:
    """Every run that did not finish cleanly, and every finished run without probe data."""
    runs = sweep.runs
    bad = runs[(runs["status"] != "solved") & (runs["status"] != "unsolved")].copy()
    unprobed = runs[is_unprobed(runs)].copy()
    unprobed["note"] = [NO_PROBE if pd.isna(n) else f"{n}; {NO_PROBE}" for n in unprobed["note"]]
    both = pd.concat([bad, unprobed[~unprobed.index.isin(bad.index)]]).sort_index()
    return both[["run_key", "status", "note", "run_id"]].fillna("")


def runs_table(sweep: Sweep) -> pd.DataFrame:
    """Every run, readable: accuracy, steps and key shares (or why there are none)."""
    runs = sweep.runs
    table = runs[["task", "model", "distance", "seed", "status"]].copy()
    table["test accuracy"] = runs["test_accuracy"].map(lambda v: "" if pd.isna(v) else f"{v:.3f}")
    table["steps"] = runs["steps"].astype("string").fillna("")
    table["steps to solve"] = runs["steps_to_solve"].astype("string").fillna("")
    unprobed = is_unprobed(runs)
    for phase in PHASES:
        shares = runs[f"probe_{phase}_h_key_share"].map(lambda v: "" if pd.isna(v) else sci(v))
        table[f"key share h {phase}"] = shares.where(~unprobed, NO_PROBE)
    table["run_id"] = runs["run_id"].fillna("")
    return table
