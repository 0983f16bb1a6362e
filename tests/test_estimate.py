"""The estimate of a sweep's training time on this machine: the arithmetic on made-up speeds, and
a tiny claim estimated, trained and compared (slow).
"""

from __future__ import annotations

import time

import pytest

from pipeline import config, data, estimate, replication
from pipeline.config.runs import evaluation_runs, read_result
from pipeline.sweep import phases
from tests.conftest import write_experiment

SWEEP = {
    "tasks": [{"task": "adding", "variant": "halves", "distances": [10, 20]}],
    "models": [{"name": "lstm", "cell": "lstm"}],
    "seeds": [0, 1],
    "hidden_size": 8,
    "training": {"max_steps": 100, "eval_every": 50, "log_every": 10},
    "data": {"n_train": 512, "n_val": 64, "n_test": 128},
    "probe": {"batch_size": 16, "every_evals": 1},
}


def runs_of(tmp_path, **changes):
    return evaluation_runs(config.load(write_experiment(tmp_path, "sweep", {**SWEEP, **changes})))


def test_a_runs_time_counts_its_updates_validations_probes_test_and_set_up(tmp_path):
    spec = runs_of(tmp_path)[0]
    speed = estimate.Speed(steps_per_s=50, probe_s=0.5, eval_s=0.01, setup_s=3)
    # 100 updates at 50/s; 2 validations of 64 and a test of 128 at 0.01 s a sequence; probes
    # before, after and at each of the 2 validations (every_evals 1)
    assert speed.run_seconds(spec) == pytest.approx(3 + 2 + (2 * 64 + 128) * 0.01 + 4 * 0.5)


def test_a_sweep_lays_its_runs_out_on_the_workers_longest_distance_first(tmp_path):
    specs = runs_of(tmp_path)  # distances 10, 10, 20, 20 (two seeds each)
    # 100 updates: 10 s at distance 10, 20 s at distance 20
    speeds = {
        estimate.speed_key(s): estimate.Speed(100 / (s.distance), 0, 0, 0)
        for s in specs
    }  # fmt: skip
    assert estimate.sweep_seconds(specs, speeds, jobs=1) == pytest.approx(60)
    # two workers: both long runs first, then both short ones; a run does not split
    assert estimate.sweep_seconds(specs, speeds, jobs=2) == pytest.approx(30)
    assert estimate.sweep_seconds(specs, speeds, jobs=3) == pytest.approx(20)
    assert estimate.sweep_seconds(specs, speeds, jobs=16) == pytest.approx(20)  # 4 runs at most
    assert estimate.sweep_seconds([], speeds, jobs=2) == 0


def test_the_speed_key_ignores_seed_and_initialisation_but_not_length_width_or_batch(tmp_path):
    base = runs_of(tmp_path)
    a = base[0]
    same_length = [s for s in base if s.distance == a.distance]
    assert len({estimate.speed_key(s) for s in same_length}) == 1  # two seeds, one key
    chrono = runs_of(tmp_path, models=[{"name": "lstm", "cell": "lstm", "chrono_t_max": 30}])
    assert estimate.speed_key(chrono[0]) == estimate.speed_key(a)
    assert estimate.speed_key(base[-1]) != estimate.speed_key(a)  # distance 20
    wider = runs_of(tmp_path, hidden_size=16)[0]
    batch = runs_of(tmp_path, training={**SWEEP["training"], "batch_size": 64})[0]
    assert len({estimate.speed_key(s) for s in (a, wider, batch)}) == 3


# A claim whose two runs train long enough for their updates to outweigh the sweep's fixed costs
# (the store, each run's records), and cannot stop early: every validation sum within 0.001
TIMED = {
    "tasks": [{"task": "adding", "variant": "halves", "distances": [49], "tolerance": 0.001}],
    "models": [{"name": "lstm", "cell": "lstm"}, {"name": "rnn", "cell": "rnn"}],
    "seeds": [0],
    "hidden_size": 32,
    "training": {"max_steps": 1500, "eval_every": 250, "log_every": 50, "batch_size": 32,
                 "solved_accuracy": 1.0},
    "data": {"n_train": 4096, "n_val": 256, "n_test": 512},
    "probe": {"batch_size": 32, "every_evals": 2},
    "claim": {
        "citation": "Somebody (2024). A timed claim.",
        "statement": "the LSTM's test loss is finite",
        "setting": "tiny",
        "verified": True,
        "expect": [
            {"model": "lstm", "metric": "test_loss", "op": "<", "value": 1e6, "published": "x"}
        ],
    },
}  # fmt: skip


@pytest.mark.slow
def test_the_estimate_is_within_a_factor_of_2_of_a_tiny_claims_training(pipeline_root):
    path = write_experiment(pipeline_root / "experiments" / "replications", "timed", TIMED)
    items = replication.load_claims([path])
    estimated = replication.estimates(items, jobs=1, log=lambda *_: None)["timed"]
    assert estimated.runs == 2
    exp = items["timed"].exp
    data.run(exp, log=lambda *_: None)
    started = time.perf_counter()
    phases.run(exp, jobs=1, log=lambda *_: None)
    measured = time.perf_counter() - started
    assert measured / 2 <= estimated.seconds <= measured * 2, (estimated.seconds, measured)
    # the runs trained to their last update, as the estimate has them (one that stops early
    # would make any estimate look long)
    assert [read_result(s).steps for s in evaluation_runs(exp)] == [1500, 1500]
