"""The report's statistics and claims on synthetic sweeps (no training): horizons, the fitted d50,
share against outcome within a distance, time to solve with censoring, and captions and
findings that change when the data do.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pipeline import config
from pipeline.config.runs import evaluation_runs
from pipeline.report import (
    compare,
    figures,
    findings,
    gradient_figures,
    ranking,
    stats,
    style,
    survival,
)
from pipeline.report.reading import RESULT_COLUMNS
from pipeline.report.results import Readout
from pipeline.report.tables import d50_text, horizon_text, survival_text

# ---- hand-made count tables ------------------------------------------------------------------


def counts(rows: list[tuple[str, int, int, int]]) -> pd.DataFrame:
    """(model, distance, solved, planned) -> a success_counts frame of task ``t``."""
    frame = pd.DataFrame(rows, columns=["model", "distance", "solved", "planned"])
    return frame.assign(task="t", finished=frame["planned"])


def test_horizon_needs_every_shorter_distance_held():
    table = counts(
        [
            ("a", 10, 3, 3),
            ("a", 20, 1, 3),  # 1 of 3: below half
            ("a", 40, 2, 3),  # held again after failing 20: non-monotone, not the horizon
            ("b", 10, 0, 3),
            ("c", 10, 1, 2),  # exactly half counts
            ("c", 20, 0, 2),
        ]
    )
    held = stats.horizons(table)
    assert held[("t", "a")] == stats.Horizon(10, held_again=(40,), failed_at=20, longest=40)
    assert not held[("t", "a")].monotone
    assert held[("t", "b")].distance is None
    assert held[("t", "c")] == stats.Horizon(10, (), 20, longest=20)
    text = horizon_text(held[("t", "a")])
    assert text.startswith("10") and "non-monotone" in text and "40" in text and "20" in text
    assert horizon_text(held[("t", "b")]).startswith("< 10")  # failed at the shortest: a bound


def test_a_horizon_at_the_sweeps_edge_is_a_bound_not_a_value():
    table = counts([("a", 10, 3, 3), ("a", 20, 3, 3), ("b", 10, 3, 3), ("b", 20, 0, 3)])
    held = stats.horizons(table)
    assert held[("t", "a")].censored and not held[("t", "b")].censored
    assert horizon_text(held[("t", "a")]) == "≥ 20 (held at the longest distance run)"
    assert horizon_text(held[("t", "b")]) == "10"


def test_a_variant_that_did_not_run_at_a_distance_does_not_part_there():
    """A staircase runs each variant at its own distances: b never ran at 15, so a holding there
    alone is no parting, and b is not said to have stopped holding at 15.
    """
    table = counts(
        [("a", 10, 3, 3), ("a", 15, 3, 3), ("a", 20, 0, 3), ("b", 10, 3, 3), ("b", 20, 3, 3)]
    )
    assert stats.parting_distances(table) == {20: ["a"]}


def test_parting_distances_are_where_the_holding_models_change():
    table = counts(
        [
            ("rnn", 10, 3, 3),
            ("rnn", 20, 0, 3),
            ("rnn", 40, 0, 3),
            ("rnn", 80, 0, 3),
            ("lstm", 10, 3, 3),
            ("lstm", 20, 3, 3),
            ("lstm", 40, 2, 3),
            ("lstm", 80, 1, 3),  # below half: from 80 on, no model holds
        ]
    )
    assert stats.parting_distances(table) == {20: ["rnn"]}
    same = table.assign(solved=0)
    assert stats.parting_distances(same) == {80: []}  # never part: the longest distance


def test_d50_of_data_symmetric_about_a_distance_is_that_distance():
    table = counts([("m", 10, 3, 3), ("m", 20, 2, 3), ("m", 40, 1, 3), ("m", 80, 0, 3)])
    d = stats.fit_d50(table)
    assert d.kind == "fitted" and d.n == 12
    assert d.estimate == pytest.approx(math.sqrt(20 * 40), rel=1e-4)  # midway in log2
    assert d.low * d.high == pytest.approx(800, rel=1e-3)  # the interval is symmetric too
    assert 10 < d.low < d.estimate < d.high < 80
    more = counts([("m", 10, 30, 30), ("m", 20, 20, 30), ("m", 40, 10, 30), ("m", 80, 0, 30)])
    tighter = stats.fit_d50(more)
    assert tighter.high - tighter.low < d.high - d.low  # ten times the seeds: narrower


@pytest.mark.parametrize(
    ("rows", "kind", "said"),
    [
        ([(10, 3, 3), (20, 3, 3)], "beyond", "beyond the longest distance (20)"),
        ([(10, 0, 3), (20, 0, 3)], "below", "below the shortest distance (10)"),
        ([(10, 3, 3), (20, 3, 3), (40, 0, 3), (80, 0, 3)], "between", "between 20 and 40"),
        ([(10, 0, 3), (20, 1, 3), (40, 3, 3)], "rising", "not estimable"),
        ([(10, 3, 3), (20, 1, 3), (40, 0, 3)], "step", "between 10 and 40 (a step, no finite"),
        ([(10, 3, 3), (20, 3, 3), (40, 2, 3)], "step", "above 20 (a step"),
        ([(10, 1, 3), (20, 0, 3), (40, 0, 3)], "step", "below 20 (a step"),
    ],
)
def test_d50_says_where_it_cannot_be_identified(rows, kind, said):
    table = counts([("m", *r) for r in rows])
    d = stats.fit_d50(table)
    assert d.kind == kind and math.isnan(d.estimate)
    text = d50_text(d, table["distance"].min(), table["distance"].max())
    assert said in text
    assert stats.fitted_curve(table, np.array([10.0, 20.0])) is None or kind == "rising"


def test_d50_outside_the_sweep_is_called_extrapolated():
    table = counts([("m", 10, 1, 3), ("m", 20, 1, 3), ("m", 40, 0, 3), ("m", 80, 0, 3)])
    d = stats.fit_d50(table)
    assert d.kind == "fitted" and d.estimate < 10
    text = d50_text(d, 10, 80)
    assert text.startswith("below the shortest distance 10, by extrapolation")


def test_the_fitted_curve_crosses_half_at_d50():
    table = counts([("m", 10, 3, 3), ("m", 20, 2, 3), ("m", 40, 1, 3), ("m", 80, 0, 3)])
    d = stats.fit_d50(table)
    curve = stats.fitted_curve(table, np.array([d.estimate / 2, d.estimate, d.estimate * 2]))
    assert curve[1] == pytest.approx(0.5, abs=1e-6)
    assert curve[0] > 0.5 > curve[2]


@pytest.mark.parametrize(
    ("x", "text"),
    [(0.0342, "0.0342"), (0.9996, "1.00"), (154.2, "154"), (12345, "12,300"), (2.31e-7, "2.31e-07"),
     (0.00099, "9.90e-04"), (-3.2, "-3.20"), (0, "0"), (math.inf, "∞"), (math.nan, "n/a")],
)  # fmt: skip
def test_numbers_have_three_significant_digits_and_plain_notation_where_it_fits(x, text):
    from pipeline.report.results import num

    assert num(x) == text


def test_few_distances_keep_both_ends():
    assert style.few([10, 20, 40]) == [10, 20, 40]
    assert style.few([10, 20, 40, 80, 160, 320], 4) == [10, 40, 80, 320]


# ---- synthetic sweeps ----------------------------------------------------------------------

SEEDS = [0, 1, 2, 3]
DISTANCES = [10, 20, 40, 80]


def synthetic_sweep(outcome: dict[tuple[str, int], list[str]], shares=None) -> Readout:
    """A sweep of two models (rnn, lstm) on recall without training: ``outcome[(model, d)]`` is
    the status of each seed; ``shares[(model, d)]`` each seed's initial key share.
    """
    exp = config.Experiment(
        name="synthetic",
        tasks=[{"task": "recall", "distances": DISTANCES}],
        models=[{"name": "rnn", "cell": "rnn"}, {"name": "lstm", "cell": "lstm"}],
        seeds=SEEDS,
    )
    rows = []
    for spec in evaluation_runs(exp):
        status = outcome[(spec.model.name, spec.distance)][SEEDS.index(spec.seed)]
        share = (shares or {}).get((spec.model.name, spec.distance))
        share = share[SEEDS.index(spec.seed)] if share else 10.0 ** (-spec.distance / 10)
        solved = status == "solved"
        rows.append(
            {
                **{k: v for k, v in spec.identity().items() if k in RESULT_COLUMNS},
                "hidden_size": spec.hidden_size,
                "parameters": 1000 if spec.model.cell == "rnn" else 4000,
                "status": status,
                "solved": solved,
                "test_accuracy": 1.0 if solved else 0.125,
                "test_loss": 0.01 if solved else 2.08,
                "chance_accuracy": 0.125,
                "baseline_loss": 2.08,
                "steps": 100 * (1 + SEEDS.index(spec.seed)) if solved else 2000,
                "steps_to_solve": 100 * (1 + SEEDS.index(spec.seed)) if solved else None,
                "probe_data": True,
                "probe_init_h_key_share": share,
                "probe_final_h_key_share": share,
                "probe_init_h_rho": 0.5,
                "probe_init_h_rho_r2": 0.99,
                "probe_init_h_jacobian_key": share,
                "environment": "test machine",
                "run_id": f"id-{spec.key}",
            }
        )
    runs = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    runs = runs.astype({"steps": "Int64", "steps_to_solve": "Int64", "solved": "boolean"})
    runs = runs.copy()  # one block per type, as reading's frame (no fragmentation warning)
    history = pd.DataFrame(columns=["run_id", "task", "model", "distance", "seed", "metric"])
    curves = pd.DataFrame(columns=["run_id", "task", "model", "distance", "phase", "k"])
    return Readout(exp, "1", "sqlite:///none", runs, curves, history.assign(step=[], value=[]))


def all_(status: str) -> list[str]:
    return [status] * len(SEEDS)


RNN_SHORT = {  # the RNN holds to 10, the LSTM to 40
    **{("rnn", d): all_("solved" if d <= 10 else "unsolved") for d in DISTANCES},
    **{("lstm", d): all_("solved" if d <= 40 else "unsolved") for d in DISTANCES},
}
LSTM_SHORT = {(("lstm" if m == "rnn" else "rnn"), d): v for (m, d), v in RNN_SHORT.items()}


def test_opposite_outcomes_give_opposite_claims():
    one, other = synthetic_sweep(RNN_SHORT), synthetic_sweep(LSTM_SHORT)
    said_one, said_other = findings.findings(one), findings.findings(other)
    ranking = [s for s in said_one if s.startswith("Memory horizon by model")][0]
    assert ranking.index("lstm 40") < ranking.index("rnn 10")
    ranking = [s for s in said_other if s.startswith("Memory horizon by model")][0]
    assert ranking.index("rnn 40") < ranking.index("lstm 10")
    captions = {p.name: p.caption for p in figures.plots(one)}
    assert {p.name: p.caption for p in figures.plots(other)} == captions  # how to read: same
    for caption in captions.values():  # no caption states an outcome
        assert "falls to chance" not in caption and "clipping cuts" not in caption


def test_share_is_compared_within_a_distance_not_pooled():
    """Pooled over distances, solved runs have far larger shares (short distances solve and have
    large shares); within each distance the shares do not differ. The report must not claim the
    pooled association.
    """
    shares = {(m, d): [10.0 ** (-d / 10) * f for f in (1, 2, 3, 4)] for m in ("rnn", "lstm")
              for d in DISTANCES}  # fmt: skip
    mixed = dict(RNN_SHORT)
    mixed[("rnn", 20)] = ["solved", "unsolved", "solved", "unsolved"]  # both outcomes at 20
    sweep = synthetic_sweep(mixed, shares)
    pooled_solved = sweep.runs.loc[sweep.runs["status"] == "solved", "probe_init_h_key_share"]
    pooled_unsolved = sweep.runs.loc[sweep.runs["status"] != "solved", "probe_init_h_key_share"]
    assert pooled_solved.median() > 100 * pooled_unsolved.median()  # the confound is there
    sentence = next(s for s in findings.findings(sweep) if "Compared within" in s)
    assert "larger initial share went with learning" not in sentence
    assert "No difference holds after Holm" in sentence
    for c in compare.share_against_outcome(sweep.runs):  # every count is quoted
        assert f"{c.n_solved} solved run(s)" in sentence
        assert f"{c.n_unsolved} unsolved" in sentence


def test_a_within_distance_difference_is_reported_with_its_counts():
    statuses = ["solved"] * 6 + ["unsolved"] * 6
    runs = pd.DataFrame(
        {
            "distance": [20] * 12,
            "model": ["m"] * 12,
            "status": statuses,
            "probe_init_h_key_share": [1e-2 * (1 + i) for i in range(6)]
            + [1e-6 * (1 + i) for i in range(6)],
        }
    )
    (c,) = compare.share_against_outcome(runs)
    assert (c.n_solved, c.n_unsolved) == (6, 6)
    assert c.p < 0.01 and c.significant and c.larger_in_solved
    assert compare.smallest_p(1, 2) == pytest.approx(2 / 3)


def test_no_distance_with_both_outcomes_says_the_data_cannot_separate():
    same = {(m, d): all_("solved" if d <= 20 else "unsolved") for m in ("rnn", "lstm")
            for d in DISTANCES}  # fmt: skip
    sweep = synthetic_sweep(same)
    sentence = next(s for s in findings.findings(sweep) if s.startswith("At no distance"))
    assert "cannot separate" in sentence


def test_time_to_solve_censors_unsolved_runs_at_the_budget():
    runs = pd.DataFrame(
        {
            "status": ["solved", "solved", "unsolved", "diverged"],
            "steps_to_solve": [100, 300, None, None],
        }
    )
    curve = survival.kaplan_meier(runs, budget=2000)
    assert (curve.runs, curve.solved) == (4, 2)
    assert curve.unsolved[0] == 1.0 and curve.unsolved[-1] == pytest.approx(0.5)
    assert curve.median == 300  # half solved by 300
    assert curve.median_ci[0] <= 300 and math.isinf(curve.median_ci[1])  # 4 runs: open above
    # four runs: the median with its n, no interval (the accuracy figure refuses one as well)
    assert survival_text(curve) == "300 (2/4 solved; no interval from 4 runs)"
    many = pd.concat([runs] * 3, ignore_index=True)  # 12 runs: enough for statsmodels' interval
    assert survival_text(survival.kaplan_meier(many, 2000)).startswith("300 (95% CI ")
    quick = survival.kaplan_meier(runs.assign(status="solved", steps_to_solve=[2, 3, 4, 5]), 10)
    assert quick.median_ci[1] <= 10  # every run solved: the interval closes in the budget
    late = survival.kaplan_meier(runs.assign(status=["solved"] + ["unsolved"] * 3), 2000)
    assert math.isnan(late.median)  # a quarter solved: no median, not "2000"
    none = survival.kaplan_meier(runs.assign(status="unsolved"), 2000)
    assert none.solved == 0 and math.isnan(none.median)


def test_synthetic_sweep_draws_every_figure_with_an_outcome():
    sweep = synthetic_sweep(RNN_SHORT)
    drawn = figures.plots(sweep)
    names = [p.name for p in drawn]
    assert "accuracy_vs_distance" in names and "steps_to_solve" in names
    assert "adding_mse" not in names  # no adding task: no adding figure


def family_sweep(outcome: dict[str, int]) -> Readout:
    """Five variants over three families: ``outcome[model]`` is the longest distance at which all
    its seeds solve (0: none).
    """
    models = [
        {"name": "rnn", "cell": "rnn"},
        {"name": "irnn", "cell": "rnn", "nonlinearity": "relu", "recurrent_init": "identity"},
        {"name": "gru", "cell": "gru"},
        {"name": "lstm_default", "cell": "lstm", "forget_bias": "pytorch"},
        {"name": "lstm", "cell": "lstm"},
    ]
    base = synthetic_sweep(RNN_SHORT)
    exp = config.Experiment(
        name="families", tasks=[{"task": "recall", "distances": DISTANCES}], models=models,
        seeds=SEEDS,
    )  # fmt: skip
    rows = []
    for spec in evaluation_runs(exp):
        solved = spec.distance <= outcome[spec.model.name]
        rows.append(
            {
                **{k: v for k, v in spec.identity().items() if k in RESULT_COLUMNS},
                "hidden_size": 64,
                "parameters": {"rnn": 9000, "gru": 27000, "lstm": 35000}[spec.model.cell],
                "status": "solved" if solved else "unsolved",
                "test_accuracy": 1.0 if solved else 0.125,
                "steps_to_solve": 100 if solved else None,
                "run_id": spec.key,
            }
        )
    runs = pd.DataFrame(rows, columns=RESULT_COLUMNS).copy()
    return Readout(exp, "1", "sqlite:///none", runs, base.curves, base.history)


def test_verdicts_compare_defaults_with_defaults_and_best_with_best():
    from pipeline.report.verdict import verdicts

    sweep = family_sweep({"rnn": 10, "irnn": 40, "gru": 20, "lstm_default": 10, "lstm": 20})
    defaults, best = verdicts(sweep, "recall")
    assert defaults.startswith("PyTorch defaults")
    for name in ("rnn (horizon 10", "gru (horizon 20", "lstm_default (horizon 10"):
        assert name in defaults
    assert "irnn" not in defaults and "lstm (" not in defaults  # not PyTorch defaults
    assert "the GRU held the dependency furthest" in defaults
    assert "35,000 parameters" in defaults and "9,000 parameters" in defaults
    assert "at the same hidden width (64), so with different parameter counts (9,000 to" in defaults
    assert "irnn (horizon 40" in best and "lstm (horizon 20" in best
    assert "the RNN held the dependency furthest" in best  # the IRNN, at its best
    assert "variants: RNN 2" in best and "LSTM 2" in best and "GRU 1" in best
    flipped = family_sweep({"rnn": 10, "irnn": 10, "gru": 20, "lstm_default": 40, "lstm": 40})
    defaults, best = verdicts(flipped, "recall")
    assert "the LSTM held the dependency furthest" in defaults
    assert "the LSTM held the dependency furthest" in best


def test_seeds_of_one_model_are_compared_where_they_ended_both_ways():
    mixed = dict(RNN_SHORT)
    mixed[("rnn", 20)] = ["solved", "unsolved", "solved", "unsolved"]
    shares = {("rnn", 20): [1e-3, 1e-6, 2e-3, 2e-6]}
    sentence = next(
        s for s in findings.findings(synthetic_sweep(mixed, shares)) if "Within one model" in s
    )
    assert "rnn at 20: 2 solved (median 0.00150) against 2 unsolved (1.50e-06" in sentence
    assert "in 4 of 4 solved-unsolved pairs" in sentence
    assert "cannot give p below 0.333" in sentence  # 2 against 2: the smallest p is 1/3
    assert "went with learning" not in sentence
    said = findings.findings(synthetic_sweep(RNN_SHORT))
    assert not any("Within one model" in s for s in said)
    assert any(s.startswith("No model ended both ways at one distance") for s in said)


def test_within_model_strata_combine_into_one_verdict_the_pooled_view_cannot_give():
    """Across models the solved runs have the larger share (the model confounds it); within each
    model the solved seeds have the smaller one, in three strata of 2 against 2: combined, the
    permutation test finds it (p = 2/216), while no stratum alone could (p >= 1/3).
    """
    mixed = dict(RNN_SHORT)
    shares = {}
    for d in (20, 40, 80):
        mixed[("rnn", d)] = ["solved", "unsolved", "solved", "unsolved"]
        shares[("rnn", d)] = [1e-6, 1e-3, 2e-6, 2e-3]
    sentence = next(
        s for s in findings.findings(synthetic_sweep(mixed, shares)) if "Within one model" in s
    )
    assert "Combined over these 3 strata (6 solved, 6 unsolved seeds)" in sentence
    assert "in 0 of 12 solved-unsolved pairs" in sentence
    assert "p = 0.00926" in sentence  # 2 extreme labellings of 6^3
    assert sentence.endswith("a smaller initial share went with learning.")


def test_seeds_that_both_start_with_a_share_of_zero_tie():
    """A share of exactly 0 (the probe underflowed) ties with another 0: a half, like any tie."""
    runs = pd.DataFrame(
        {
            "model": "rnn",
            "distance": 40,
            "status": ["solved", "solved", "unsolved", "unsolved"],
            compare.SHARE: [0.0, 0.7, 0.0, 0.5],
        }
    )
    combined = compare.stratified(runs)
    assert (combined.pairs, combined.larger) == (4, 2.5)  # 0-0 a half, 0.7 beats both


@pytest.mark.parametrize("variant", ["fixed", "hochreiter"])
def test_adding_sentences_use_the_variants_baselines(variant):
    from pipeline.report.document import method

    distance = 99
    exp = config.Experiment(
        name="adding", tasks=[{"task": "adding", "distances": [distance], "variant": variant}],
        models=[{"name": "lstm", "cell": "lstm"}], seeds=[0, 1],
    )  # fmt: skip
    rows = [
        {
            **{k: v for k, v in spec.identity().items() if k in RESULT_COLUMNS},
            "status": "unsolved",
            "test_loss": 0.015,
            "parameters": 609,
            "run_id": spec.key,
        }
        for spec in evaluation_runs(exp)
    ]
    base = synthetic_sweep(RNN_SHORT)
    sweep = Readout(exp, "1", "sqlite:///none", pd.DataFrame(rows, columns=RESULT_COLUMNS).copy(),
                  base.curves, base.history)  # fmt: skip
    no_memory, one = exp.tasks[0].build().baselines(distance).values()
    sentence = next(s for s in findings.findings(sweep) if s.startswith("Test MSE"))
    assert f"lstm at {distance}: 0.0150 (" in sentence
    assert f"below {one:.4g})" in sentence and f"{no_memory:.4g}: predict" in sentence
    said = next(s for s in method(sweep) if s.startswith("Adding problem"))
    assert f"variant {variant}" in said and f"{one:.4g}" in said
    if variant == "hochreiter":
        assert "2/2 below" in sentence  # 0.015 < 0.9/48: its MSEs are on a quarter's scale
        assert "as Hochreiter & Schmidhuber (1997), who used 0.04" in said
    else:
        assert "2/2 below 0.08333" in sentence and "0.16 on this scale" in said


def test_verdicts_do_not_rank_families_the_data_do_not_separate():
    from pipeline.report.verdict import verdicts

    # IRNN and GRU solve every distance (d50 beyond 80 for both); the LSTM stops at 20
    sweep = family_sweep({"rnn": 10, "irnn": 80, "gru": 80, "lstm_default": 10, "lstm": 20})
    _, best = verdicts(sweep, "recall")
    assert "the data do not separate RNN and GRU (each held to the longest" in best
    assert "furthest" not in best
    assert "RNN (horizon ≥ 80) = GRU (horizon ≥ 80) > LSTM (horizon 20)" in best
    assert "horizon 80" not in best and "d50" not in best.split("ranked")[0]


def test_an_e_folding_length_past_its_fit_window_is_not_printed_as_a_number():
    from pipeline.report.results import efold_text

    assert efold_text(math.exp(-1 / 10), 0.99, 40).startswith("10.0 steps")
    longer = efold_text(math.exp(-1 / 73), 0.95, 40)
    assert longer.startswith("longer than the 40-step window") and "73" not in longer
    assert efold_text(0.5, 0.5, 40).startswith("not geometric (R² 0.50)")


def test_tuning_caveats_flag_choices_at_the_grid_edge_and_on_no_solved_seed():
    from types import SimpleNamespace

    from pipeline.config.tuning import Score, Selection
    from pipeline.report.tables import tuning_caveats

    grid = {"learning_rate": [0.001, 0.003, 0.01]}
    sweep = SimpleNamespace(exp=SimpleNamespace(tuning=SimpleNamespace(grid=grid, seeds=[100])))

    def selection(model, solved, chosen):
        scores = tuple(
            Score((("learning_rate", lr),), 1, solved, 2000.0, acc, 1.0)
            for lr, acc in zip(grid["learning_rate"], (0.15, 0.14, 0.16), strict=True)
        )
        return Selection("recall", model, scores, (("learning_rate", chosen),))

    sweep.selections = [selection("rnn", 0, 0.01), selection("gru", 1, 0.003)]
    said = tuning_caveats(sweep, "recall")
    assert "No grid point solved a tuning seed for rnn (best validation accuracy 0.140 to " in said
    assert "over 1 tuning seed(s)" in said and "gru (" not in said
    assert "Chosen at the edge of the grid: rnn (learning_rate 0.01, the largest)" in said
    sweep.selections = [selection("gru", 1, 0.003)]
    assert tuning_caveats(sweep, "recall").startswith("Every variant's choice solved")


def seeds_solved(n: int) -> list[str]:
    return ["solved"] * n + ["unsolved"] * (len(SEEDS) - n)


def test_the_accuracy_figure_draws_each_seed_and_a_fitted_curve_only_where_it_is_significant():
    """The RNN's share of seeds solved wanders (3, 2, 3, 1 of 4: slope p = 0.25), the LSTM's falls
    (4, 3, 1, 0: p < 0.001): only the LSTM's logistic curve is drawn, and the caption says so.
    """
    outcome = {("rnn", d): seeds_solved(n) for d, n in zip(DISTANCES, (3, 2, 3, 1), strict=True)}
    outcome |= {("lstm", d): seeds_solved(n) for d, n in zip(DISTANCES, (4, 3, 1, 0), strict=True)}
    plot = figures.plot_accuracy(synthetic_sweep(outcome))
    top, bottom = plot.figure.axes[:2]
    points = sum(len(c.get_offsets()) for c in top.collections)
    assert points == 2 * len(DISTANCES) * len(SEEDS)  # each run a point
    curves = [line for line in bottom.get_lines() if len(line.get_xdata()) > len(DISTANCES)]
    assert len(curves) == 1
    colours = style.model_colours(synthetic_sweep(outcome))
    assert curves[0].get_color() == colours["lstm"]
    assert "significant (likelihood-ratio test, p < 0.05): lstm (p = " in plot.caption
    assert "Not drawn, not significant: rnn (p = 0.25)" in plot.caption
    assert "test split" in plot.caption and "validation" in plot.caption
    assert top.get_xscale() == "log"


def test_the_gradient_figure_scales_to_its_data_so_a_growing_curve_stays_on_the_panel():
    """An IRNN-like curve grows to 20 times its output-step norm going back: the panel's y range
    reaches past it (it was capped at 5).
    """
    sweep = synthetic_sweep(RNN_SHORT)
    rows = []
    for run in sweep.runs[sweep.runs["distance"] == 10].itertuples():
        for k in range(11):
            norm = 20 ** (k / 10) if run.model == "rnn" else 0.5**k  # 1 at the output step
            for phase in ("init", "final"):
                rows.append({"run_id": run.run_id, "task": "recall", "model": run.model,
                             "distance": 10, "phase": phase, "k": k,
                             "h_median": norm})  # fmt: skip
    sweep.curves = pd.DataFrame(rows)
    plot = gradient_figures.plot_gradient_curves(sweep, "recall")
    rnn_panel = plot.figure.axes[0]
    assert rnn_panel.get_title().startswith("rnn")
    assert rnn_panel.get_ylim()[1] > 20
    drawn = max(max(line.get_ydata()) for line in rnn_panel.get_lines()[:-1])
    assert drawn == pytest.approx(20)


def test_the_method_says_which_split_each_number_uses_and_that_seeds_differ_in_data():
    from pipeline.report.document import method

    mixed = dict(RNN_SHORT)
    mixed[("rnn", 20)] = ["solved", "unsolved", "solved", "unsolved"]
    sweep = synthetic_sweep(mixed)
    said = " ".join(method(sweep))
    assert "figures and tables are on the separate test split" not in said
    which = next(s for s in method(sweep) if s.startswith("Which data."))
    assert "Test split: test accuracy" in which and "Validation split: solved" in which
    assert "learning curves" in which.split("Validation split")[1].split("Training")[0]
    assert "Training batches: the training gradient norm" in which
    assert "its own data set" in said
    within = next(s for s in findings.findings(sweep) if "Within one model" in s)
    assert "differ only in" not in within and "data set" in within


# ---- a staircase sweep -----------------------------------------------------------------------

STAIR_MODELS = [
    {"name": "rnn", "cell": "rnn"},
    {"name": "irnn", "cell": "rnn", "nonlinearity": "relu", "recurrent_init": "identity"},
    {"name": "gru", "cell": "gru"},
    {"name": "lstm", "cell": "lstm", "forget_bias": "pytorch"},
]


def staircase_sweep(solved: dict, shares: dict, grad_norm: dict, jacobian: dict) -> Readout:
    """Four variants on a staircase from 10, capped at 40, three seeds: ``solved[model]`` maps
    each distance it ran at to its seeds solved; ``shares[model]`` is its initial key share at
    every distance, ``grad_norm[model]`` its runs' mean pre-clip gradient norm and
    ``jacobian[model]`` its Jacobian norm after training. Brackets follow the rule.
    """
    from pipeline.config.staircase import Bracket, Level

    exp = config.Experiment(
        name="stairs", tasks=[{"task": "recall"}], models=STAIR_MODELS, seeds=[0, 1, 2],
        staircase={"start": 10, "cap": 40},
    )  # fmt: skip
    rows, brackets = [], {}
    for m in exp.models:
        levels = []
        for d, n in sorted(solved[m.name].items()):
            levels.append(Level(d, n, 3))
            for seed in range(3):
                ok = seed < n
                rows.append(
                    {"task": "recall", "model": m.name, "cell": m.cell, "distance": d,
                     "seed": seed, "status": "solved" if ok else "unsolved", "solved": ok,
                     "steps": 100 * (seed + 1) * d // 10 if ok else 2000,
                     "steps_to_solve": 100 * (seed + 1) * d // 10 if ok else None,
                     "test_accuracy": 1.0 if ok else 0.25, "chance_accuracy": 0.25,
                     "parameters": {"rnn": 900, "gru": 2000, "lstm": 2500}[m.cell],
                     "hidden_size": 16, "probe_data": True,
                     "probe_init_h_key_share": shares[m.name],
                     "probe_final_h_jacobian_key": jacobian[m.name],
                     "mean_grad_norm": grad_norm[m.name], "run_id": f"{m.name}-{d}-{seed}"}
                )  # fmt: skip
        held = [lv.distance for lv in levels if lv.holds]
        failed = [lv.distance for lv in levels if not lv.holds]
        lower = max(held) if held else None
        upper = min((d for d in failed if lower is None or d > lower), default=None)
        brackets[("recall", m.name)] = Bracket(lower, upper, tuple(levels))
    runs = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    runs = runs.astype({"steps": "Int64", "steps_to_solve": "Int64", "solved": "boolean"}).copy()
    empty = pd.DataFrame(columns=["run_id", "task", "model", "distance", "metric", "step", "value"])
    return Readout(exp, "1", "sqlite:///none", runs, pd.DataFrame(), empty, brackets=brackets)


STAIRS = {  # rnn 10 to 20, irnn >= 40 (at the cap), gru >= 40, lstm < 10 (went down to 5)
    "rnn": {10: 3, 20: 0, 40: 0},
    "irnn": {10: 3, 20: 3, 40: 3},
    "gru": {10: 3, 20: 3, 40: 3},
    "lstm": {5: 0, 10: 0},
}


def test_a_bracket_censored_horizon_is_never_printed_as_a_bare_number():
    sweep = staircase_sweep(STAIRS, dict.fromkeys(STAIRS, 0.01), dict.fromkeys(STAIRS, 0.5),
                            dict.fromkeys(STAIRS, 0.5))  # fmt: skip
    said = findings.findings(sweep)
    text = " ".join(said)
    assert "irnn ≥ 40" in text and "gru ≥ 40" in text and "lstm < 5" in text
    for bare in ("horizon 40", "horizon 5", "d50"):  # no monotone horizon or d50 as a value
        assert bare not in text, bare
    defaults, best = ranking.family_verdicts(sweep, "recall")
    assert defaults.startswith("PyTorch defaults: GRU (gru ≥ 40, 2,000 parameters) > RNN (rnn")
    assert "> LSTM (lstm < 5, 2,500 parameters)" in defaults
    assert "No control at shared settings was run" in defaults
    assert best.startswith("Each family at its best: RNN (irnn ≥ 40, 900 parameters) = GRU (gru")
    model = next(s for s in said if s.startswith("rnn: memory horizon"))
    assert (
        model
        == "rnn: memory horizon 10 to 20. Seeds solved per distance: 10: 3/3, 20: 0/3, 40: 0/3."
    )


def test_the_initial_share_is_set_against_the_horizons_and_a_contradiction_said():
    """The GRU starts with a smaller share than the RNN yet holds where the RNN fails: the report
    says the initial share does not decide who learns; ordered shares say the opposite.
    """
    shares = {"rnn": 0.1, "irnn": 0.5, "gru": 0.001, "lstm": 1e-4}
    sweep = staircase_sweep(STAIRS, shares, dict.fromkeys(STAIRS, 0.5), dict.fromkeys(STAIRS, 0.5))
    sentence = next(s for s in findings.findings(sweep) if s.startswith("At distance 10, where"))
    assert "rnn 0.100, irnn 0.500, gru 0.00100, lstm 1.00e-04" in sentence
    # separated pairs: irnn, gru over rnn (held 20, rnn failed there) and over lstm; rnn over lstm
    assert "Of the 5 pairs" in sentence and "the larger share in 4" in sentence
    assert (
        "gru started with 0.00100 and held further than rnn, which started with 0.100" in sentence
    )
    assert sentence.endswith("does not decide who learns.")
    ordered = {"rnn": 0.01, "irnn": 0.5, "gru": 0.1, "lstm": 1e-4}
    sweep = staircase_sweep(STAIRS, ordered, dict.fromkeys(STAIRS, 0.5), dict.fromkeys(STAIRS, 0.5))
    sentence = next(s for s in findings.findings(sweep) if s.startswith("At distance 10, where"))
    assert "in 5: here the initial shares order the horizons" in sentence
    assert "not that the share decides" in sentence and "does not decide" not in sentence


def test_an_exploding_regime_is_said_with_its_numbers_and_the_clip_only_where_it_shows():
    grad = {"rnn": 0.5, "irnn": 20.0, "gru": 0.4, "lstm": 0.3}
    jacobian = {"rnn": 0.5, "irnn": 1000.0, "gru": 0.6, "lstm": 0.01}
    sweep = staircase_sweep(STAIRS, dict.fromkeys(STAIRS, 0.01), grad, jacobian)
    sentence = next(s for s in findings.findings(sweep) if s.startswith("The exploding side"))
    assert (
        "irnn: its runs' mean pre-clip gradient norm was 20.0 (range 20.0 to 20.0, n=9)" in sentence
    )
    assert "20 times the clip (1, global L2 norm)" in sentence
    assert "Jacobian norm from the key step to the output after training was 1,000" in sentence
    assert " rnn:" not in sentence and "gru:" not in sentence
    calm = staircase_sweep(STAIRS, dict.fromkeys(STAIRS, 0.01), dict.fromkeys(STAIRS, 0.5),
                           dict.fromkeys(STAIRS, 0.5))  # fmt: skip
    said = findings.findings(calm)
    assert not any(s.startswith("The exploding side") for s in said)
    assert any(s.startswith("No variant's runs trained with a median pre-clip") for s in said)


def test_the_abstract_quotes_the_numbers_of_the_horizon_table_and_the_ranking():
    from pipeline.report.abstract import abstract

    shares = {"rnn": 0.1, "irnn": 0.5, "gru": 0.001, "lstm": 1e-4}
    sweep = staircase_sweep(STAIRS, shares, dict.fromkeys(STAIRS, 0.5), dict.fromkeys(STAIRS, 0.5))
    said = abstract(sweep)
    table = ranking.horizon_table(sweep, "recall")
    for row in table.to_dict("records"):
        bracket = row["memory horizon"].split(" (")[0]  # the table's bracket, without its words
        exponent = row["exponent alpha (95% CI)"]
        expected = exponent if not exponent.startswith("no fit") else "no fit"
        assert f"{row['model']} {bracket}, {expected}" in said, (row, said)
    assert f"Ranking: {ranking.ranking_line(sweep, 'recall')} (" in said
    assert "irnn ≥ 40" in said and "lstm < 5" in said and "horizon 40" not in said
    assert "PyTorch defaults: GRU > RNN > LSTM." in said
    assert "in 1 of 5 separated pairs the variant that held further started with less" in said
