"""Time to solve, censored: Kaplan-Meier curves of the share of seeds still unsolved after t steps.

A run that solved gives an event at its ``steps_to_solve`` (validation is checked every
``eval_every`` updates, so times are multiples of it). A run that did not solve within the budget
is *censored*: it is only known to take longer than the budget. A diverged run never solves in
the budget either and is censored at the budget too (it stopped early, but not because it had
solved). Medians are reported only where the curve falls to one half within the budget, with
their 95% interval (an end past the budget is open).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from statsmodels.duration.survfunc import SurvfuncRight

from pipeline.report.results import FINISHED

CI_ALPHA = 0.05  # the median's interval: 95%, statsmodels' (log-log transformed) interval


@dataclass(frozen=True)
class Survival:
    """One Kaplan-Meier curve: ``times`` and ``unsolved`` (the step function's values after each
    time; it starts at 1 at t = 0), the number of runs and of events, and the median steps to
    solve (nan where the curve stays above one half within the budget).
    """

    times: list[float]
    unsolved: list[float]
    runs: int
    solved: int
    median: float
    median_ci: tuple[float, float] = (math.nan, math.nan)  # 95%; inf: not bounded in the budget


def durations(runs: pd.DataFrame, budget: int) -> tuple[np.ndarray, np.ndarray]:
    """(time, solved flag) per finished run: steps to solve, or the budget (censored)."""
    finished = runs[runs["status"].isin(FINISHED)]
    solved = (finished["status"] == "solved").to_numpy()
    steps = pd.to_numeric(finished["steps_to_solve"], errors="coerce").to_numpy(dtype=float)
    return np.where(solved, steps, float(budget)), solved.astype(int)


def kaplan_meier(runs: pd.DataFrame, budget: int) -> Survival | None:
    """The curve of ``runs`` (one group: a model at one distance), or None without runs."""
    time, event = durations(runs, budget)
    if len(time) == 0:
        return None
    if event.sum() == 0:  # nothing solved: the curve stays at 1
        return Survival([0.0, float(budget)], [1.0, 1.0], len(time), 0, math.nan)
    fit = SurvfuncRight(time, event)
    times = [0.0, *fit.surv_times.tolist()]
    unsolved = [1.0, *fit.surv_prob.tolist()]
    if times[-1] < budget:  # carry the last value to the end of the budget
        times.append(float(budget))
        unsolved.append(unsolved[-1])
    # the median: the first time the curve is at or below one half (rounding aside)
    below = [t for t, s in zip(times, unsolved, strict=True) if s <= 0.5 + 1e-9]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # log(0) where the curve reaches 0: an open end
        low, high = fit.quantile_ci(0.5, alpha=CI_ALPHA)
    ci = (float(low), float(high) if np.isfinite(high) and high <= budget else math.inf)
    median = below[0] if below else math.nan
    return Survival(times, unsolved, len(time), int(event.sum()), median, ci)


def survival_table(runs: pd.DataFrame, budget: int) -> dict[tuple[str, str, int], Survival]:
    """Per (task, model, distance), the Kaplan-Meier curve of its finished runs."""
    out = {}
    for (task, model, distance), group in runs.groupby(["task", "model", "distance"], sort=False):
        curve = kaplan_meier(group, budget)
        if curve is not None:
            out[(task, model, int(distance))] = curve
    return out
