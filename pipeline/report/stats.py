"""The report's statistics on outcomes: seeds solved per distance, memory horizons (monotone and
fitted), and where models part ways.

- A model *holds* the dependency at a distance when at least half its planned seeds solved it
  (a run that did not finish counts as not solved).
- Its **memory horizon** is the largest distance d at which it holds *and* at which it held at
  every shorter distance of the sweep. A model that holds again at a longer distance after failing
  a shorter one is *non-monotone*: the report says so in words rather than hiding it.
- Its **fitted horizon d50** comes from a logistic regression of solved on log2(distance) over
  every planned run of the (task, model): the distance where the fitted P(solved) crosses 50%,
  with a 90% profile-likelihood interval. Where the data cannot identify it (every run solved,
  none solved, or a clean split between solved and unsolved distances), ``fit_d50`` says so
  instead of returning a number. A *step* (every run solved below one distance, none above it,
  and a mix at that distance) is quasi-separated: the fit's slope runs off to infinity, so
  ``fit_d50`` gives the step's neighbouring distances rather than a point estimate.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm
from scipy import optimize
from scipy.stats import chi2

from pipeline.report.results import FINISHED

LEVEL = 0.90  # the d50 interval's coverage
SEARCH = 4.0  # doublings beyond the sweep's distances searched for an interval's ends


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


def holds(counts: pd.DataFrame) -> pd.Series:
    """Per row of ``counts``: solved in at least half the planned seeds (missing: not solved)."""
    return (counts["solved"] > 0) & (2 * counts["solved"] >= counts["planned"])


@dataclass(frozen=True)
class Horizon:
    """A model's memory horizon on a task: ``distance`` (None: it did not hold at the shortest
    distance), and the longer distances where it held again after failing a shorter one.
    """

    distance: int | None
    held_again: tuple[int, ...] = ()
    failed_at: int | None = None  # the first distance it did not hold at, if any
    longest: int | None = None  # the longest distance it ran at

    @property
    def monotone(self) -> bool:
        return not self.held_again

    @property
    def censored(self) -> bool:
        """Held at the longest distance or failed at the shortest: a bound, not a value."""
        return self.distance is None or self.distance == self.longest


def horizons(counts: pd.DataFrame) -> dict[tuple[str, str], Horizon]:
    """The memory horizon of every (task, model) in ``counts`` (see the module's docstring)."""
    out = {}
    flags = counts.assign(held=holds(counts)).sort_values("distance")
    for (task, model), group in flags.groupby(["task", "model"], sort=False):
        horizon, failed_at = None, None
        for d, held in zip(group["distance"], group["held"], strict=True):
            if not held:
                failed_at = int(d)
                break
            horizon = int(d)
        later = group[group["distance"] > (failed_at or math.inf)]
        again = tuple(int(d) for d in later.loc[later["held"], "distance"])
        out[(task, model)] = Horizon(horizon, again, failed_at, int(group["distance"].max()))
    return out


def parting_distances(counts: pd.DataFrame) -> dict[int, list[str]]:
    """Where the models part ways: each distance at which some model that ran there holds the
    dependency and another does not, and the set that holds differs from what held before (a
    model keeps its last verdict over distances it did not run at: a staircase runs each model
    at its own); mapped to the models that ran there and do not hold but did before (or, where
    none did before, every model that ran there and does not hold). When the models never part:
    the largest distance, mapped to no model.
    """
    holding = counts[holds(counts)].groupby("distance")["model"].agg(frozenset)
    ran = counts.groupby("distance")["model"].agg(frozenset)
    out, before = {}, frozenset(counts["model"])
    for d in sorted(counts["distance"].unique()):
        now, here = holding.get(d, frozenset()), ran[d]
        if now and now != here and now != before & here:
            out[int(d)] = sorted((before & here) - now) or sorted(here - now)
        before = (before - here) | now
    return out or {int(counts["distance"].max()): []}


# ---- the fitted horizon --------------------------------------------------------------------


@dataclass(frozen=True)
class D50:
    """The fitted horizon of one (task, model).

    ``kind``: ``fitted`` (``estimate`` with ``low``/``high``, either of which may be open:
    ``low_open``/``high_open`` when the interval runs past the searched range), ``beyond``
    (every run solved: d50 lies beyond ``high``, the longest distance), ``below`` (none solved:
    d50 lies below ``low``, the shortest), ``between`` (a clean split: every run solved up to
    ``low`` and none from ``high`` on, so the logistic fit has no finite optimum), ``step`` (every
    run solved below distance ``at``, none above it, ``at_solved`` of ``at_planned`` at it: the
    slope is not identifiable and d50 lies between ``low`` and ``high``, the neighbouring
    distances, an end open where ``at`` is the sweep's first or last), or ``rising`` (P(solved)
    grew with distance: no horizon to speak of).
    """

    kind: str
    estimate: float = math.nan
    low: float = math.nan
    high: float = math.nan
    low_open: bool = False
    high_open: bool = False
    n: int = 0
    at: float = math.nan
    at_solved: int = 0
    at_planned: int = 0


def _loglik(x: np.ndarray, solved: np.ndarray, failed: np.ndarray, x50: float) -> float:
    """Maximised log likelihood of logit P(solved) = b (x - x50) over b, x50 held fixed."""
    exog = (x - x50)[:, None]
    if np.allclose(exog, 0):
        p = solved.sum() / (solved.sum() + failed.sum())
        return float(_binomial_ll(solved, failed, np.full(len(x), p)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter far from the optimum
        fit = sm.GLM(np.column_stack([solved, failed]), exog, family=sm.families.Binomial()).fit()
    return float(fit.llf)


def _binomial_ll(solved, failed, p) -> float:
    p = np.clip(p, 1e-300, 1 - 1e-16)
    return float((solved * np.log(p) + failed * np.log1p(-p)).sum())


def _separated(x: np.ndarray, solved: np.ndarray, planned: np.ndarray) -> tuple | None:
    """(last all-solved x, first none-solved x) when every run below a cut solved and none
    above it did; None otherwise (then the logistic fit has a finite optimum). ``x`` ascending.
    """
    for cut in range(1, len(x)):
        if (solved[:cut] == planned[:cut]).all() and (solved[cut:] == 0).all():
            return x[cut - 1], x[cut]
    return None


def _step(solved: np.ndarray, planned: np.ndarray) -> int | None:
    """The index (in distance order) of the one distance with a mix of solved and unsolved runs
    when every run below it solved and none above it did (quasi-complete separation); else None.
    """
    mixed = np.flatnonzero((solved > 0) & (solved < planned))
    if len(mixed) != 1:
        return None
    k = int(mixed[0])
    if (solved[:k] == planned[:k]).all() and (solved[k + 1 :] == 0).all():
        return k
    return None


def fit_d50(counts: pd.DataFrame) -> D50:
    """The fitted horizon from one (task, model)'s rows of ``success_counts``."""
    counts = counts.sort_values("distance")
    distances = counts["distance"].to_numpy(dtype=float)
    x = np.log2(distances)
    solved = counts["solved"].to_numpy(dtype=float)
    planned = counts["planned"].to_numpy(dtype=float)
    failed = planned - solved
    n = int(planned.sum())
    if (failed == 0).all():
        return D50("beyond", high=float(distances.max()), n=n)
    if (solved == 0).all():
        return D50("below", low=float(distances.min()), n=n)
    split = _separated(distances, solved, planned)
    if split is not None:
        return D50("between", low=float(split[0]), high=float(split[1]), n=n)
    k = _step(solved, planned)
    if k is not None:
        last = len(distances) - 1
        return D50(
            "step",
            low=float(distances[k - 1]) if k > 0 else math.nan,
            high=float(distances[k + 1]) if k < last else math.nan,
            low_open=k == 0,
            high_open=k == last,
            n=n,
            at=float(distances[k]),
            at_solved=int(solved[k]),
            at_planned=int(planned[k]),
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = sm.GLM(
            np.column_stack([solved, failed]), sm.add_constant(x), family=sm.families.Binomial()
        ).fit()
    intercept, slope = full.params
    if slope >= 0:
        return D50("rising", n=n)
    x50 = -intercept / slope
    best = full.llf
    cutoff = chi2.ppf(LEVEL, df=1) / 2

    def excess(at: float) -> float:  # > 0 inside the interval, < 0 outside
        return cutoff - (best - _loglik(x, solved, failed, at))

    ends, opened = [], []
    for edge in (min(x.min(), x50) - SEARCH, max(x.max(), x50) + SEARCH):
        if excess(edge) > 0:  # still inside the interval that far out: an open end
            ends.append(edge)
            opened.append(True)
        else:
            ends.append(optimize.brentq(excess, *sorted((x50, edge)), xtol=1e-6))
            opened.append(False)
    return D50(
        "fitted",
        estimate=float(2**x50),
        low=float(2 ** ends[0]),
        high=float(2 ** ends[1]),
        low_open=opened[0],
        high_open=opened[1],
        n=n,
    )


def slope_p(counts: pd.DataFrame) -> float:
    """The likelihood-ratio p-value of the logistic fit's slope (solved on log2 distance against
    a constant P(solved)) for one (task, model); nan where ``fit_d50`` finds nothing to fit.
    """
    if fit_d50(counts).kind not in ("fitted", "rising"):
        return math.nan
    x = np.log2(counts["distance"].to_numpy(dtype=float))
    solved = counts["solved"].to_numpy(dtype=float)
    endog = np.column_stack([solved, counts["planned"].to_numpy(dtype=float) - solved])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = sm.GLM(endog, sm.add_constant(x), family=sm.families.Binomial()).fit()
        null = sm.GLM(endog, np.ones((len(x), 1)), family=sm.families.Binomial()).fit()
    return float(chi2.sf(max(2 * (full.llf - null.llf), 0.0), df=1))


def fitted_curve(counts: pd.DataFrame, distances: np.ndarray) -> np.ndarray | None:
    """The fitted P(solved) at ``distances`` for one (task, model), or None where ``fit_d50``
    finds nothing to fit (every run solved, none, or a clean split).
    """
    if fit_d50(counts).kind not in ("fitted", "rising"):
        return None
    x = np.log2(counts["distance"].to_numpy(dtype=float))
    solved = counts["solved"].to_numpy(dtype=float)
    failed = counts["planned"].to_numpy(dtype=float) - solved
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = sm.GLM(
            np.column_stack([solved, failed]), sm.add_constant(x), family=sm.families.Binomial()
        ).fit()
    grid = sm.add_constant(np.log2(np.asarray(distances, dtype=float)), has_constant="add")
    return fit.predict(grid)
