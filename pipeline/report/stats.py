"""The report's statistics: seeds solved per distance, memory horizons, where models part ways."""

from __future__ import annotations

import pandas as pd

from pipeline.report.results import FINISHED


def success_counts(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (task, model, distance): runs ``solved``, ``finished`` and ``planned`` (seeds)."""
    flags = runs.assign(
        is_solved=runs["status"] == "solved", is_finished=runs["status"].isin(FINISHED)
    )
    return (
        flags.groupby(["task", "model", "distance"], sort=False)
        .agg(
            solved=("is_solved", "sum"),
            finished=("is_finished", "sum"),
            planned=("status", "size"),
        )
        .reset_index()
    )


def _holds(counts: pd.DataFrame) -> pd.Series:
    """Per row of ``counts``: solved in at least half the planned seeds (missing: not solved)."""
    return (counts["solved"] > 0) & (2 * counts["solved"] >= counts["planned"])


def horizons(counts: pd.DataFrame) -> dict[tuple[str, str], int | None]:
    """Memory horizon per (task, model): the largest distance solved in at least half of the
    planned seeds (a missing run counts as not solved); None where no distance was.
    """
    held = counts[_holds(counts)]
    out: dict[tuple[str, str], int | None] = {
        (t, m): None for t, m in counts[["task", "model"]].itertuples(index=False)
    }
    for (task, model), group in held.groupby(["task", "model"], sort=False):
        out[(task, model)] = int(group["distance"].max())
    return out


def parting_distances(counts: pd.DataFrame) -> dict[int, list[str]]:
    """Where the models part ways: each distance at which some model holds the dependency
    (solved in at least half its seeds) and another does not, and the set that holds differs
    from the distance before; mapped to the models that do not hold there but did before (or,
    at the first distance, that do not hold). When the models never part: the largest distance,
    mapped to no model.
    """
    holding = counts[_holds(counts)].groupby("distance")["model"].agg(frozenset)
    models = frozenset(counts["model"])
    out, before = {}, models
    for d in sorted(counts["distance"].unique()):
        now = holding.get(d, frozenset())
        if now and now != models and now != before:
            out[int(d)] = sorted(before - now) or sorted(models - now)
        before = now
    return out or {int(counts["distance"].max()): []}
