"""The length-extrapolation table and figure, from a constructed sweep whose numbers are known
(no training): medians over seeds with their n, the test accuracy at factor 1, factors a run was
not scored at left empty, one line per model.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pipeline import config
from pipeline.config.runs import evaluation_runs
from pipeline.report import extrapolation
from pipeline.report.reading import RESULT_COLUMNS
from pipeline.report.results import Readout

SEEDS = [0, 1, 2]
CHANCE = 0.08  # the adding task's, tolerance 0.04
# per model, accuracy at factors 0.5, 1 (test), 2, 4 for seeds 0, 1, 2: the RNN only holds its
# own length, the LSTM holds every length
ACCURACY = {
    "rnn": {0.5: [0.3, 0.2, 0.25], 1.0: [1.0, 0.9, 0.95], 2.0: [0.2, 0.3, 0.25], 4.0: [0.25] * 3},
    "lstm": {0.5: [1.0] * 3, 1.0: [1.0] * 3, 2.0: [0.9, 1.0, 0.8], 4.0: [0.7, 0.9, 0.8]},
}


def sweep_of(distances=(2, 10, 20)) -> Readout:
    exp = config.Experiment(
        name="extrapolation",
        tasks=[{"task": "adding", "distances": list(distances)}],  # no shortage of sequences
        models=[{"name": "rnn", "cell": "rnn"}, {"name": "lstm", "cell": "lstm"}],
        seeds=SEEDS,
    )
    rows = []
    for spec in evaluation_runs(exp):
        table, i, d = ACCURACY[spec.model.name], SEEDS.index(spec.seed), spec.distance
        row = {k: v for k, v in spec.identity().items() if k in RESULT_COLUMNS}
        row |= {"status": "solved", "run_id": spec.key, "test_accuracy": table[1.0][i],
                "chance_accuracy": CHANCE}  # fmt: skip
        for factor, label in ((0.5, "0.5"), (2.0, "2"), (4.0, "4")):
            tested = max(math.floor(d * factor + 0.5), 2)  # adding: at least 2
            if tested == d:
                continue  # not scored: the result file has no such factor
            row |= {f"extrapolation_accuracy_x{label}": table[factor][i],
                    f"extrapolation_distance_x{label}": tested,
                    f"extrapolation_chance_accuracy_x{label}": CHANCE,
                    f"extrapolation_n_x{label}": 100}  # fmt: skip
        rows.append(row)
    runs = pd.DataFrame(rows, columns=RESULT_COLUMNS).copy()
    return Readout(exp, "1", "sqlite:///none", runs, pd.DataFrame(), pd.DataFrame())


def test_factor_one_is_the_test_accuracy_and_each_other_factor_its_own_score():
    long = extrapolation.accuracy_by_factor(sweep_of().finished)
    rnn = long[(long["model"] == "rnn") & (long["distance"] == 10) & (long["seed"] == 1)]
    assert dict(zip(rnn["factor"], rnn["accuracy"], strict=True)) == {
        1.0: 0.9,
        0.5: 0.2,
        2.0: 0.3,
        4.0: 0.25,
    }
    assert dict(zip(rnn["factor"], rnn["tested"], strict=True)) == {
        1.0: 10,
        0.5: 5,
        2.0: 20,
        4.0: 40,
    }


def test_the_table_gives_each_factors_median_over_seeds_with_their_number():
    table = extrapolation.extrapolation_table(sweep_of())
    assert table[["model", "distance"]].values.tolist() == [
        [model, d] for model in ("rnn", "lstm") for d in (2, 10, 20)
    ]  # the experiment's order of models
    rnn = table[(table["model"] == "rnn") & (table["distance"] == 10)].iloc[0]
    assert rnn["n"] == 3
    assert rnn[["accuracy_x0.5", "accuracy_x1", "accuracy_x2", "accuracy_x4"]].tolist() == (
        pytest.approx([0.25, 0.95, 0.25, 0.25])
    )
    assert rnn[["distance_x0.5", "distance_x1", "distance_x2", "distance_x4"]].tolist() == [
        5,
        10,
        20,
        40,
    ]
    lstm = table[(table["model"] == "lstm") & (table["distance"] == 20)].iloc[0]
    assert lstm["accuracy_x2"] == pytest.approx(0.9) and lstm["accuracy_x4"] == pytest.approx(0.8)
    short = table[(table["model"] == "lstm") & (table["distance"] == 2)].iloc[0]
    assert math.isnan(short["accuracy_x0.5"])  # half of 2 is below the minimum: not scored
    assert short["accuracy_x2"] == pytest.approx(0.9)


def test_an_unfinished_run_counts_in_no_median():
    sweep = sweep_of()
    worst = (sweep.runs["model"] == "lstm") & (sweep.runs["seed"] == 1)
    sweep.runs.loc[worst, "status"] = "failed"
    table = extrapolation.extrapolation_table(sweep)
    lstm = table[(table["model"] == "lstm") & (table["distance"] == 10)].iloc[0]
    assert lstm["n"] == 2 and lstm["accuracy_x4"] == pytest.approx(0.75)  # seeds 0 and 2


def test_the_figure_draws_one_line_per_model_at_each_training_distance():
    sweep = sweep_of()
    fig = extrapolation.plot_extrapolation(sweep)
    axes = [ax for ax in fig.axes if ax.get_visible() and ax.get_title()]
    assert [ax.get_title().split("\n")[0] for ax in axes] == [
        f"adding, trained at distance {d}" for d in (2, 10, 20)
    ]
    ax = axes[1]  # distance 10
    assert ax.get_xscale() == "log"
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert list(lines["rnn"].get_xdata()) == [0.5, 1.0, 2.0, 4.0]
    assert list(lines["rnn"].get_ydata()) == pytest.approx([0.25, 0.95, 0.25, 0.25])  # medians
    assert list(lines["lstm"].get_ydata()) == pytest.approx([1.0, 1.0, 0.9, 0.8])
    assert lines["rnn"].get_color() != lines["lstm"].get_color()
    chance = [line for line in ax.get_lines() if line.get_label() == "chance"]
    assert len(chance) == 1 and set(chance[0].get_ydata()) == {CHANCE}
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[:2] == ["rnn", "lstm"] and "chance" in labels


def test_without_extrapolation_scores_there_is_no_figure_and_the_table_is_empty_there():
    sweep = sweep_of()
    scored = [c for c in sweep.runs if c.startswith("extrapolation_")]
    sweep.runs[scored] = np.nan  # results written before runs were scored elsewhere
    assert extrapolation.plot_extrapolation(sweep) is None
    table = extrapolation.extrapolation_table(sweep)
    assert table["accuracy_x2"].isna().all() and table["accuracy_x1"].notna().all()


def test_the_summary_says_which_variant_learned_a_latch_and_which_a_solution_tied_to_its_length():
    """Over solved runs only: at four times its distance the RNN is back at chance and the LSTM
    is perfect; an unsolved run's scores count in no median.
    """
    sweep = sweep_of()
    runs = sweep.runs
    rnn, lstm = runs["model"] == "rnn", runs["model"] == "lstm"
    runs.loc[rnn, "extrapolation_accuracy_x4"] = CHANCE
    runs.loc[lstm, "extrapolation_accuracy_x4"] = 1.0
    unsolved = lstm & (runs["seed"] == 2)
    runs.loc[unsolved, "status"] = "unsolved"
    runs.loc[unsolved, "extrapolation_accuracy_x4"] = 0.0  # would pull the LSTM's median down
    table = extrapolation.summary_table(sweep, "adding").set_index("model")
    assert table.loc["rnn", "what it learned"] == "tied to its own length"
    assert table.loc["lstm", "what it learned"] == "a latch that holds at 4x"
    assert table.loc["lstm", "solved runs"] == 2 * len(sweep.exp.tasks[0].distances)
    assert table.loc["lstm", "accuracy at 4x"].startswith("1.00 (range 1.00 to 1.00, n=")
    said = extrapolation.extrapolation_sentence(sweep, "adding")
    assert "tied to its own length: rnn, median 0.0800" in said
    assert "a latch that holds at 4x: lstm, median 1.00" in said
