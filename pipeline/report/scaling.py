"""How training time grows with distance: a censored regression of steps to solve on distance.

Per model variant, an accelerated-failure-time model (lifelines' ``LogNormalAFTFitter``)::

    log T = a + alpha * log d + sigma * eps,    eps ~ N(0, 1)

T: the updates a run takes to solve, d: its distance, both logs natural so that the median steps
to solve is exp(a) * d ** alpha: ``alpha`` is the exponent of the power law, with its 95% Wald
interval. Runs enter as:

- **solved**: an event at ``steps_to_solve`` (a multiple of ``eval_every``: validation is checked
  that often, and the fit reads the check that first passed as the time);
- **unsolved**: right-censored at ``steps``, the updates it took (the budget; ``max_steps`` when
  missing): it is only known to need more;
- **diverged**: right-censored at the budget ``max_steps``, as ``survival`` does. Under this
  protocol it would never have solved within the budget, which is what censoring at the budget
  says; censoring at the step it diverged would treat divergence as an uninformative drop-out and
  let the solved runs stand in for it, making a variant that often diverges look faster;
- any other status (failed, stale, missing): left out, it has no outcome.

**Log-normal, not Weibull.** The exponent alpha means the same in both (an AFT model scales time
by d ** alpha either way); they differ in the spread around it. Time to solve is skewed and its
hazard rises and then falls (few runs solve early, most within a window, a tail of stragglers),
which the log-normal allows and the Weibull's monotone hazard does not. And the log-normal's
median is exp(a + alpha log d), free of sigma, so a horizon and its interval need only (a, alpha)
and their covariance; with nothing censored the fit is least squares on log steps.

**Horizon at a budget.** The distance where the fitted median steps to solve equals the budget B:
log d = (log B - a) / alpha, at ``max_steps`` and at 10 x ``max_steps``, each with a 95% Fieller
interval (the distances whose fitted median is not significantly different from B, from the fit's
covariance of a and alpha). Fieller's rather than the delta method's: the ratio's interval is
asymmetric, and unbounded when alpha is not clearly above 0, which Fieller says and the delta
method hides. A horizon outside the distances trained is flagged as an extrapolation.

**Comparisons.** Each pair of fitted variants' exponents by a Wald z-test on the difference (the
fits share no run, so the variances add), Holm-corrected over all pairs. Separate fits rather
than one pooled model with an interaction: each variant keeps its own sigma.

No fit (``reason`` says why) when no run finished, none solved, or runs solved at fewer than two
distances (the exponent is then not identified), or when the fit does not converge.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from lifelines import LogNormalAFTFitter
from lifelines.exceptions import ConvergenceError
from scipy.stats import norm
from statsmodels.stats.multitest import multipletests

from pipeline.report.results import FINISHED

LEVEL = 0.95  # every interval's coverage
Z = float(norm.ppf(0.5 + LEVEL / 2))
WIDER_BUDGET = 10  # the second horizon: at this many times the budget
COLUMNS = ("model", "distance", "seed", "status", "steps_to_solve", "steps")


@dataclass(frozen=True)
class Crossing:
    """Where the fitted median steps to solve reaches ``steps``: ``distance`` with its 95%
    Fieller interval [``low``, ``high``] (0 and inf: unbounded), ``extrapolated`` when the
    distance lies outside those trained. ``distance`` is None, with ``reason``, when the median
    does not grow with distance (alpha <= 0).
    """

    steps: float
    distance: float | None
    low: float = 0.0
    high: float = math.inf
    extrapolated: bool = False
    reason: str | None = None

    @property
    def bounded(self) -> bool:
        return self.low > 0 and math.isfinite(self.high)


@dataclass(frozen=True)
class Scaling:
    """One variant's fit: ``runs`` finished runs (``solved`` of them) at ``distances``; when it
    fits, the exponent ``alpha`` (standard error ``alpha_se``, 95% interval ``alpha_ci``), the
    intercept ``a`` (log median steps at distance 1), their covariance ``cov_a_alpha``, the
    spread ``sigma`` of log steps, and the horizons ``at_budget`` and ``at_wider_budget``
    (``WIDER_BUDGET`` x the budget). Without a fit all of those are None and ``reason`` says why.
    """

    model: str
    runs: int
    solved: int
    distances: tuple[int, ...]
    budget: int
    alpha: float | None = None
    alpha_se: float | None = None
    alpha_ci: tuple[float, float] | None = None
    a: float | None = None
    a_se: float | None = None
    cov_a_alpha: float | None = None
    sigma: float | None = None
    at_budget: Crossing | None = None
    at_wider_budget: Crossing | None = None
    reason: str | None = None

    @property
    def fitted(self) -> bool:
        return self.reason is None

    def median_steps(self, distance: float | np.ndarray) -> float | np.ndarray:
        """The fitted median steps to solve at ``distance``: exp(a) * distance ** alpha."""
        if not self.fitted:
            raise ValueError(f"{self.model}: no fit ({self.reason})")
        return np.exp(self.a + self.alpha * np.log(distance))


@dataclass(frozen=True)
class Contrast:
    """Two variants' exponents compared: ``difference`` = alpha of ``model_a`` - alpha of
    ``model_b``, its standard error and 95% interval, the Wald ``z``, the two-sided ``p`` and
    ``p_holm`` (Holm-corrected over every pair compared), and each side's runs.
    """

    model_a: str
    model_b: str
    difference: float
    se: float
    ci: tuple[float, float]
    z: float
    p: float
    p_holm: float
    runs_a: int
    runs_b: int


def censored_times(runs: pd.DataFrame, max_steps: int) -> pd.DataFrame:
    """One row per finished run of ``runs``: ``distance``, ``time`` and ``solved`` (the event
    flag), with the censoring of the module's docstring. Raises ValueError for a solved run
    without a positive ``steps_to_solve``.
    """
    finished = runs[runs["status"].isin(FINISHED)]
    solved = (finished["status"] == "solved").to_numpy()
    to_solve = pd.to_numeric(finished["steps_to_solve"], errors="coerce").to_numpy(dtype=float)
    steps = pd.to_numeric(finished["steps"], errors="coerce").to_numpy(dtype=float)
    steps = np.where(np.isfinite(steps), steps, max_steps)
    censored_at = np.where(finished["status"] == "diverged", max_steps, steps)
    time = np.where(solved, to_solve, censored_at)
    bad = solved & ~(time > 0)  # NaN fails the comparison too
    if bad.any():
        row = finished[bad].iloc[0]
        raise ValueError(
            f"{row['model']} at distance {row['distance']}, seed {row['seed']}: solved, but "
            f"steps_to_solve is {row['steps_to_solve']!r}"
        )
    return pd.DataFrame(
        {
            "distance": finished["distance"].to_numpy(dtype=float),
            "time": time,
            "solved": solved.astype(int),
        }
    )


def fit_scaling(runs: pd.DataFrame, max_steps: int) -> dict[str, Scaling]:
    """Per model of ``runs`` (one task's runs, columns ``COLUMNS``), in order of appearance, its
    fit under the budget ``max_steps``. Raises ValueError for a missing column or several tasks.
    """
    missing = [c for c in COLUMNS if c not in runs.columns]
    if missing:
        raise ValueError(f"runs lack the columns {missing}")
    if "task" in runs.columns and runs["task"].nunique() > 1:
        raise ValueError(
            f"runs of {runs['task'].nunique()} tasks: fit one task's runs at a time "
            "(distances of different tasks do not measure the same thing)"
        )
    if max_steps < 1:
        raise ValueError(f"max_steps: {max_steps} is not a positive budget")
    return {
        str(model): fit_model(str(model), group, max_steps)
        for model, group in runs.groupby("model", sort=False)
    }


def fit_model(model: str, runs: pd.DataFrame, max_steps: int) -> Scaling:
    """The fit of one variant's runs (see ``fit_scaling``)."""
    data = censored_times(runs, max_steps)
    base = {
        "model": model,
        "runs": len(data),
        "solved": int(data["solved"].sum()),
        "distances": tuple(sorted(int(d) for d in data["distance"].unique())),
        "budget": max_steps,
    }
    solved_at = sorted(int(d) for d in data.loc[data["solved"] == 1, "distance"].unique())
    if data.empty:
        return Scaling(**base, reason="no finished run")
    if not solved_at:
        return Scaling(**base, reason="no run solved: every time is censored")
    if len(solved_at) < 2:
        return Scaling(
            **base,
            reason=f"runs solved at one distance only ({solved_at[0]}): the exponent is not "
            "identified",
        )
    frame = pd.DataFrame(
        {"log_distance": np.log(data["distance"]), "time": data["time"], "solved": data["solved"]}
    )
    fitter = LogNormalAFTFitter(alpha=1 - LEVEL)
    try:
        with warnings.catch_warnings():
            # lifelines' advice on step sizes and collinearity; a bad fit shows in its covariance
            warnings.simplefilter("ignore")
            fitter.fit(frame, duration_col="time", event_col="solved")
    except ConvergenceError as e:
        first = (str(e).splitlines() or [type(e).__name__])[0]
        return Scaling(**base, reason=f"the fit did not converge ({first})")
    params, cov = fitter.params_, fitter.variance_matrix_
    mu_a, mu_alpha = ("mu_", "Intercept"), ("mu_", "log_distance")
    a, alpha = float(params[mu_a]), float(params[mu_alpha])
    var_a, var_alpha = float(cov.loc[mu_a, mu_a]), float(cov.loc[mu_alpha, mu_alpha])
    cov_a_alpha = float(cov.loc[mu_a, mu_alpha])
    if not (np.isfinite([a, alpha, var_a, var_alpha, cov_a_alpha]).all() and var_alpha > 0):
        return Scaling(**base, reason="the fit's covariance is not finite or not positive")
    se = math.sqrt(var_alpha)
    crossings = [
        _crossing(budget, a, alpha, var_a, var_alpha, cov_a_alpha, base["distances"])
        for budget in (max_steps, WIDER_BUDGET * max_steps)
    ]
    return Scaling(
        **base,
        alpha=alpha,
        alpha_se=se,
        alpha_ci=(alpha - Z * se, alpha + Z * se),
        a=a,
        a_se=math.sqrt(var_a),
        cov_a_alpha=cov_a_alpha,
        sigma=float(np.exp(params[("sigma_", "Intercept")])),  # lifelines fits log sigma
        at_budget=crossings[0],
        at_wider_budget=crossings[1],
    )


def _crossing(
    steps: float,
    a: float,
    alpha: float,
    var_a: float,
    var_alpha: float,
    cov: float,
    distances: tuple[int, ...],
) -> Crossing:
    """Where a + alpha x = log ``steps`` (x = log d), with Fieller's interval: the x at which
    (a + alpha x - log steps)^2 <= Z^2 Var(a + alpha x), a quadratic A x^2 + B x + C <= 0.
    """
    if alpha <= 0:
        return Crossing(steps, None, reason="the median steps to solve do not grow with distance")
    c = a - math.log(steps)
    x = -c / alpha
    distance = math.exp(x)
    extrapolated = not distances[0] <= distance <= distances[-1]
    A = alpha**2 - Z**2 * var_alpha
    B = 2 * (alpha * c - Z**2 * cov)
    C = c**2 - Z**2 * var_a
    disc = B**2 - 4 * A * C
    if A <= 0 or disc < 0:  # alpha not clearly above 0: the set is unbounded
        return Crossing(steps, distance, extrapolated=extrapolated)
    root = math.sqrt(disc)
    lo, hi = sorted(((-B - root) / (2 * A), (-B + root) / (2 * A)))
    return Crossing(steps, distance, math.exp(lo), math.exp(hi), extrapolated)


def compare_exponents(fits: Mapping[str, Scaling]) -> list[Contrast]:
    """Every pair of fitted variants in ``fits`` (in its order; variants without a fit are left
    out), their exponents' difference with a Wald z-test, p-values Holm-corrected over the pairs.
    """
    fitted = [s for s in fits.values() if s.fitted]
    pairs = list(itertools.combinations(fitted, 2))
    if not pairs:
        return []
    rows = []
    for x, y in pairs:
        diff = x.alpha - y.alpha
        se = math.hypot(x.alpha_se, y.alpha_se)  # independent fits: variances add
        z = diff / se
        rows.append((x, y, diff, se, z, float(2 * norm.sf(abs(z)))))
    holm = multipletests([row[5] for row in rows], method="holm")[1]
    return [
        Contrast(
            model_a=x.model,
            model_b=y.model,
            difference=diff,
            se=se,
            ci=(diff - Z * se, diff + Z * se),
            z=z,
            p=p,
            p_holm=float(p_holm),
            runs_a=x.runs,
            runs_b=y.runs,
        )
        for (x, y, diff, se, z, p), p_holm in zip(rows, holm, strict=True)
    ]
