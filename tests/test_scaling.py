"""Time to solve against distance: the censored log-normal fit recovers a known exponent and
horizon, says why it cannot fit, and the pairwise exponent tests are Holm-corrected.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from lifelines import LogNormalAFTFitter
from statsmodels.stats.multitest import multipletests

from pipeline.report.scaling import (
    WIDER_BUDGET,
    censored_times,
    compare_exponents,
    fit_scaling,
)

DISTANCES = (8, 16, 32, 64, 128)
A, SIGMA, BUDGET = 1.0, 0.5, 1500  # log median steps at distance 1; spread of log steps


def synthetic(model, alpha, seed, a=A, budget=BUDGET, distances=DISTANCES, seeds=5):
    """Runs whose steps to solve are log-normal, exp(a + alpha log d + SIGMA eps); a run past
    the budget is unsolved after ``budget`` steps.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for d in distances:
        for s in range(seeds):
            t = math.ceil(math.exp(a + alpha * math.log(d) + SIGMA * rng.standard_normal()))
            ok = t <= budget
            rows.append(
                {
                    "model": model,
                    "distance": d,
                    "seed": s,
                    "status": "solved" if ok else "unsolved",
                    "steps_to_solve": t if ok else None,
                    "steps": t if ok else budget,
                }
            )
    return pd.DataFrame(rows).astype({"steps_to_solve": "Int64", "steps": "Int64"})


def true_horizon(steps, alpha=1.5, a=A):
    return math.exp((math.log(steps) - a) / alpha)


def test_the_fit_recovers_a_known_exponent_from_censored_runs():
    runs = synthetic("lstm", 1.5, seed=2)
    fit = fit_scaling(runs, BUDGET)["lstm"]
    assert fit.fitted and (fit.runs, fit.distances) == (25, DISTANCES)
    assert 0 < fit.runs - fit.solved < fit.runs  # some runs censored, not all
    assert fit.alpha_ci[0] < 1.5 < fit.alpha_ci[1]
    assert fit.alpha_ci[1] - fit.alpha_ci[0] < 0.6
    assert abs(fit.sigma - SIGMA) < 0.2
    # ignoring the censoring (an unsolved run taken as solved at the budget) flattens the
    # exponent out of the interval: the fit does read the censoring
    solved = runs["status"] == "solved"
    naive = np.polyfit(
        np.log(runs["distance"]),
        np.log(np.where(solved, runs["steps_to_solve"].astype(float), BUDGET)),
        1,
    )[0]
    assert naive < fit.alpha_ci[0]


def test_the_horizon_at_the_budget_is_where_the_median_curve_crosses_it():
    fit = fit_scaling(synthetic("lstm", 1.5, seed=2), BUDGET)["lstm"]
    at = fit.at_budget
    assert at.steps == BUDGET and at.bounded and not at.extrapolated
    assert at.low < true_horizon(BUDGET) < at.high
    assert fit.median_steps(at.distance) == pytest.approx(BUDGET)
    assert fit.median_steps(0.9 * at.distance) < BUDGET < fit.median_steps(1.1 * at.distance)
    # lifelines' own median prediction at that distance, from a fit of the same data
    data = censored_times(synthetic("lstm", 1.5, seed=2), BUDGET)
    data["log_distance"] = np.log(data.pop("distance"))
    ref = LogNormalAFTFitter().fit(data, "time", "solved")
    median = ref.predict_median(pd.DataFrame({"log_distance": [math.log(at.distance)]}))
    assert float(np.asarray(median).ravel()[0]) == pytest.approx(BUDGET, rel=1e-3)
    # ten times the budget lies past the longest distance trained: an extrapolation
    wide = fit.at_wider_budget
    assert wide.steps == WIDER_BUDGET * BUDGET and wide.extrapolated
    assert wide.distance > DISTANCES[-1] and wide.low < true_horizon(wide.steps) < wide.high
    assert fit.median_steps(wide.distance) == pytest.approx(wide.steps)


def test_a_median_that_does_not_clearly_grow_gives_no_bounded_horizon():
    fit = fit_scaling(synthetic("gru", 0.0, seed=3, a=6.0), BUDGET)["gru"]
    assert fit.alpha_ci[0] < 0 < fit.alpha_ci[1]
    at = fit.at_budget
    assert not at.bounded and (at.low, at.high) == (0.0, math.inf)
    assert (at.distance is None) == (fit.alpha <= 0) == (at.reason is not None)


def test_a_variant_that_never_solved_has_no_fit_and_says_why():
    runs = synthetic("rnn", 1.5, seed=0, a=12.0)  # a median of e^12 steps: nothing solves
    fit = fit_scaling(runs, BUDGET)["rnn"]
    assert not fit.fitted and fit.alpha is None and fit.at_budget is None
    assert (fit.runs, fit.solved) == (25, 0)
    assert "no run solved" in fit.reason
    with pytest.raises(ValueError, match="no fit"):
        fit.median_steps(10)


def test_solved_runs_at_one_distance_only_identify_no_exponent():
    runs = synthetic("rnn", 1.5, seed=0)
    runs.loc[runs["distance"] > 8, ["status", "steps_to_solve", "steps"]] = (
        "unsolved", pd.NA, BUDGET,
    )  # fmt: skip
    fit = fit_scaling(runs, BUDGET)["rnn"]
    assert not fit.fitted and "one distance only (8)" in fit.reason


def test_a_diverged_run_is_censored_at_the_budget_and_a_failed_one_left_out():
    runs = synthetic("gru", 1.5, seed=2)
    unsolved = runs.index[runs["status"] == "unsolved"]
    diverged = runs.copy()
    diverged.loc[unsolved, ["status", "steps"]] = ("diverged", 40)  # stopped after 40 updates
    data = censored_times(diverged, BUDGET)
    assert (data.loc[data["solved"] == 0, "time"] == BUDGET).all()
    same = fit_scaling(diverged, BUDGET)["gru"]
    assert same.alpha == pytest.approx(fit_scaling(runs, BUDGET)["gru"].alpha)
    failed = runs.copy()
    failed.loc[unsolved, "status"] = "failed"
    fewer = fit_scaling(failed, BUDGET)["gru"]
    assert fewer.runs == 25 - len(unsolved) and fewer.alpha < same.alpha  # censoring dropped


def test_exponents_that_differ_are_told_apart_and_equal_ones_are_not():
    runs = pd.concat(
        [
            synthetic("flat", 0.5, seed=10, a=4.0),
            synthetic("steep", 2.0, seed=11, a=0.0),
            synthetic("steep_too", 2.0, seed=12, a=0.0),
            synthetic("never", 1.5, seed=13, a=12.0),  # no fit: left out of the comparisons
        ]
    )
    fits = fit_scaling(runs, BUDGET)
    assert list(fits) == ["flat", "steep", "steep_too", "never"]
    contrasts = {(c.model_a, c.model_b): c for c in compare_exponents(fits)}
    assert set(contrasts) == {("flat", "steep"), ("flat", "steep_too"), ("steep", "steep_too")}
    clear, null = contrasts[("flat", "steep")], contrasts[("steep", "steep_too")]
    assert clear.difference < 0 and clear.ci[1] < 0 and clear.p_holm < 0.001
    assert null.ci[0] < 0 < null.ci[1] and null.p_holm > 0.05
    # Holm over the three pairs, never below the raw p-values
    raw = [c.p for c in contrasts.values()]
    assert [c.p_holm for c in contrasts.values()] == pytest.approx(
        multipletests(raw, method="holm")[1]
    )
    assert all(c.p_holm >= c.p for c in contrasts.values())
    assert clear.runs_a == clear.runs_b == 25


def test_runs_of_several_tasks_or_without_a_column_are_refused():
    runs = pd.concat([synthetic("lstm", 1.5, seed=0).assign(task=t) for t in ("recall", "copy")])
    with pytest.raises(ValueError, match="one task's runs at a time"):
        fit_scaling(runs, BUDGET)
    with pytest.raises(ValueError, match=r"lack the columns \['steps'\]"):
        fit_scaling(synthetic("lstm", 1.5, seed=0).drop(columns="steps"), BUDGET)
    bad = synthetic("lstm", 1.5, seed=0)
    bad.loc[0, "steps_to_solve"] = pd.NA
    with pytest.raises(ValueError, match="solved, but steps_to_solve"):
        fit_scaling(bad, BUDGET)
