"""The fair comparison: grid expansion, selection on validation data only, and the verdict's
like-with-like sentences; one real tuning sweep end to end.
"""

from __future__ import annotations

import json

import pytest

from pipeline import config, data, paths
from pipeline.config import runs, tuning
from pipeline.config.runs import evaluation_runs
from pipeline.sweep import phases
from pipeline.tracking import names, store, sweep_runs
from tests.conftest import TINY, synthetic_result, write_experiment

GRID = {"learning_rate": [1e-3, 3e-3, 1e-2]}


def experiment(**tuning_settings) -> config.Experiment:
    return config.Experiment(
        name="t",
        tasks=[{"task": "recall", "distances": [10, 20, 40]}],
        models=[
            {"name": "rnn", "cell": "rnn"},
            {"name": "irnn", "cell": "rnn", "nonlinearity": "relu", "recurrent_init": "identity"},
            {"name": "lstm", "cell": "lstm", "forget_bias": "pytorch"},
        ],
        seeds=[0, 1, 2],
        tuning={"grid": GRID, "seeds": [100], **tuning_settings},
    )


def test_every_variant_gets_the_same_grid_on_the_tuning_seeds():
    exp = experiment()
    specs = runs.tuning_runs(exp)
    assert len(specs) == 3 * 3 * 1  # models x grid points x tuning seeds
    assert {s.distance for s in specs} == {20}  # the middle distance by default
    assert {s.seed for s in specs} == {100}
    for model in ("rnn", "irnn", "lstm"):
        rates = sorted(s.training.learning_rate for s in specs if s.model.name == model)
        assert rates == GRID["learning_rate"]
    keys = {s.key for s in specs}
    assert "recall/tuning/rnn_lr0.003_d20_s100" in keys and len(keys) == len(specs)
    assert len({s.config_hash for s in specs}) == len(specs)
    assert all(s.params()["phase"] == "tuning" for s in specs)
    assert runs.tuning_runs(experiment(distances={"recall": 40}))[0].distance == 40


def test_evaluation_runs_take_the_chosen_point_and_keep_their_keys():
    exp = experiment()
    choice = {("recall", "rnn"): (("learning_rate", 1e-2),), ("recall", "lstm"): ()}
    chosen = runs.evaluation_runs(exp, choice)
    assert {s.model.name for s in chosen} == {"rnn", "lstm"}  # irnn's tuning unfinished
    assert all(s.training.learning_rate == 1e-2 for s in chosen if s.model.name == "rnn")
    untuned = {s.key: s for s in evaluation_runs(exp)}
    for s in chosen:
        assert s.key in untuned and s.phase == "evaluation"
        same = s.config_hash == untuned[s.key].config_hash
        assert same == (s.model.name == "lstm")  # rnn's rate differs from the default 3e-3


def _results(exp, outcome: dict[float, dict]) -> dict:
    """Results of every tuning run, by key, from per-learning-rate fields."""
    return {
        s.key: synthetic_result(s, **{"status": "unsolved", **outcome[s.training.learning_rate]})
        for s in runs.tuning_runs(exp)
    }


def test_selection_follows_the_stated_rule():
    exp = experiment()
    results = _results(
        exp,
        {
            1e-3: {"status": "solved", "steps_to_solve": 900, "best_val_accuracy": 1.0},
            3e-3: {"status": "solved", "steps_to_solve": 300, "best_val_accuracy": 1.0},
            1e-2: {"best_val_accuracy": 0.9, "best_val_loss": 0.1},
        },
    )
    choice, selections, missing = tuning.select(exp, results)
    assert missing == []
    assert all(point == (("learning_rate", 3e-3),) for point in choice.values())  # fastest
    scores = {s.label: s for s in selections[0].scores}
    assert scores["lr0.01"].solved == 0 and scores["lr0.01"].mean_steps == exp.training.max_steps


def test_selection_never_reads_test_numbers():
    exp = experiment()
    validation = {
        1e-3: {"best_val_accuracy": 0.6, "best_val_loss": 1.0},
        3e-3: {"best_val_accuracy": 0.7, "best_val_loss": 0.9},
        1e-2: {"best_val_accuracy": 0.5, "best_val_loss": 1.2},
    }
    plain = _results(exp, validation)
    tempting = _results(  # test numbers that would pick 1e-2 if anything read them
        exp,
        {
            lr: {**fields, "test_accuracy": 1.0 if lr == 1e-2 else 0.0, "test_loss": 0.0}
            for lr, fields in validation.items()
        },
    )
    assert tuning.select(exp, plain)[0] == tuning.select(exp, tempting)[0]
    assert set(tuning.select(exp, plain)[0].values()) == {(("learning_rate", 3e-3),)}
    assert set(tuning.validation_view(next(iter(tempting.values())))) == set(
        tuning.VALIDATION_FIELDS
    )


def test_an_unfinished_tuning_leaves_its_variant_out():
    exp = experiment()
    results = _results(exp, {lr: {"best_val_accuracy": 0.5} for lr in GRID["learning_rate"]})
    lost = next(k for k in results if "/tuning/irnn_" in k)
    del results[lost]
    choice, _, missing = tuning.select(exp, results)
    assert missing == [lost]
    assert ("recall", "irnn") not in choice and ("recall", "rnn") in choice


def test_data_covers_the_tuning_seeds_at_the_tuning_distance():
    cells = {(t.task, d, s) for t, d, s in experiment(distances={"recall": 40}).data_folders()}
    assert ("recall", 40, 100) in cells and ("recall", 10, 0) in cells
    assert ("recall", 10, 100) not in cells


# ---- one real tuning sweep -------------------------------------------------------------------


@pytest.mark.slow
def test_a_tuning_sweep_trains_tunes_then_evaluates_and_resumes(pipeline_root, monkeypatch):
    settings = {
        **TINY,
        "seeds": [0],
        "training": {**TINY["training"], "max_steps": 40},
        "tuning": {"grid": {"learning_rate": [1e-3, 3e-2]}, "seeds": [7]},
    }
    exp = config.load(write_experiment(pipeline_root / "experiments", "tuned", settings))
    data.run(exp, log=lambda *_: None)
    progress = phases.run(exp, jobs=2, log=lambda *_: None)
    tuned = runs.tuning_runs(exp)
    assert progress.failed == 0 and progress.total == len(tuned) + len(evaluation_runs(exp))
    results = {s.key: runs.read_result(s) for s in tuned}
    choice, _, missing = tuning.select(exp, results)
    assert not missing
    for spec in runs.evaluation_runs(exp, choice):
        assert runs.read_result(spec).config_hash == spec.config_hash  # trained with the choice
    summary = json.loads((paths.results_dir(exp.name) / "sweep.json").read_text())
    assert set(summary["runs"]) == {s.key for s in tuned} | {s.key for s in evaluation_runs(exp)}
    client = store.client()
    exp_id = sweep_runs.experiment_id(client, exp.name)
    everything = store.search(client, exp_id)
    parents = {r.data.tags[names.ROLE]: r for r in everything if sweep_runs.is_parent(r)}
    top, below = parents[names.SWEEP], parents[names.TUNING]
    assert below.data.tags[names.PARENT_RUN] == top.info.run_id
    assert "chosen on validation data" in below.data.tags[names.NOTE]
    nesting = {r.data.tags[names.RUN_KEY]: r.data.tags[names.PARENT_RUN]
               for r in everything if not sweep_runs.is_parent(r)}  # fmt: skip
    assert nesting == {s.key: below.info.run_id for s in tuned} | {
        s.key: top.info.run_id for s in evaluation_runs(exp)
    }
    assert {top.info.status, below.info.status} == {"FINISHED"}
    # this machine's load while the sweep trained: at least the sample taken at its start,
    # however short the sweep (the interval is 10 s)
    keys = {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"}
    assert keys <= set(top.data.metrics)
    again = phases.run(exp, jobs=2, log=lambda *_: None)
    assert again.done == again.total and len(store.search(client, exp_id)) == len(everything)
