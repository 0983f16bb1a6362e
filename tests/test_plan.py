"""The adaptive distance design end to end: the plan is a function of the result files alone, a
killed staircase sweep resumes to the same plan with nothing lost or doubled, and the control
trains where the family verdicts are decided.
"""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest

from pipeline import config, data, paths
from pipeline.config import control, staircase
from pipeline.config.runs import RunResult, evaluation_runs, result_path, variant_brackets
from pipeline.errors import ConfigError
from pipeline.paths import write_json
from pipeline.tracking import names, store, sweep_runs
from tests.conftest import pipeline_cli, synthetic_result, write_experiment

STAIR = {
    "tasks": [{"task": "recall", "n_keys": 4, "n_filler": 8}],
    "models": [
        {"name": "rnn", "cell": "rnn"},
        {"name": "lstm", "cell": "lstm", "forget_bias": 2.0},
    ],
    "seeds": [0, 1],
    "hidden_size": 16,
    "training": {"max_steps": 60, "eval_every": 20, "log_every": 10},
    "data": {"n_train": 512, "n_val": 128, "n_test": 128},
    "probe": {"batch_size": 32, "every_evals": 1},
    "staircase": {"start": 8, "cap": 64, "extra_seeds": [2]},
}
TRUE = {"rnn": 11, "lstm": 40}  # the synthetic horizons: solved exactly at distance <= these


def _read(spec):
    return RunResult.read(result_path(spec))


def _finish_synthetically(exp, order_seed: int) -> list[str]:
    """Play the plan to its end with made-up results (solved iff distance <= TRUE), writing each
    round's result files in a shuffled order; returns the run keys in the final plan.
    """
    rng = random.Random(order_seed)
    for _ in range(50):
        specs = evaluation_runs(exp, None, _read)
        todo = [s for s in specs if _read(s) is None]
        if not todo:
            return [s.key for s in specs]
        rng.shuffle(todo)
        for spec in todo:
            solved = spec.distance <= TRUE[spec.model.name]
            result = synthetic_result(
                spec, status="solved" if solved else "unsolved", steps_to_solve=20 * solved or None
            )
            write_json(result_path(spec), result.model_dump())
    pytest.fail("the plan did not complete in 50 rounds")


def test_the_plan_is_a_function_of_the_result_files_alone(pipeline_root, monkeypatch):
    exp = config.load(write_experiment(pipeline_root / "experiments", "stair", STAIR))
    first = _finish_synthetically(exp, order_seed=1)
    task = exp.tasks[0]
    brackets = variant_brackets(exp, task, None, _read)
    for model, h in TRUE.items():  # the bracket holds the true horizon
        b = brackets[model]
        assert b.lower is not None and b.lower <= h and (b.upper is None or h < b.upper), b
    assert brackets["lstm"].upper is None or brackets["lstm"].upper > 40
    # the same plan again from the files alone, and from a second root filled in another order
    assert [s.key for s in evaluation_runs(exp, None, _read)] == first
    monkeypatch.setenv("PIPELINE_ROOT", str(pipeline_root / "second"))
    assert _finish_synthetically(exp, order_seed=2) == first
    monkeypatch.setenv("PIPELINE_ROOT", str(pipeline_root))
    # without results the plan is the first level only
    assert {s.distance for s in evaluation_runs(exp)} == {STAIR["staircase"]["start"]}


def test_without_a_staircase_the_fixed_distances_are_the_plan(pipeline_root):
    fixed = {k: v for k, v in STAIR.items() if k != "staircase"}
    fixed["tasks"] = [{**STAIR["tasks"][0], "distances": [6, 8]}]
    exp = config.load(write_experiment(pipeline_root / "experiments", "fixed", fixed))
    runs = evaluation_runs(exp, None, _read)
    assert sorted({(s.distance, s.seed) for s in runs}) == [(6, 0), (6, 1), (8, 0), (8, 1)]
    assert len(runs) == 8 and runs == evaluation_runs(exp)


def _bracket(lower, upper):
    return staircase.Bracket(lower, upper)


def test_the_control_trains_both_sides_where_a_verdict_is_decided():
    models = [
        SimpleNamespace(name="rnn", cell="rnn", pytorch_default=True),
        SimpleNamespace(name="irnn", cell="rnn", pytorch_default=False),
        SimpleNamespace(name="gru", cell="gru", pytorch_default=True),
        SimpleNamespace(name="lstm_default", cell="lstm", pytorch_default=True),
        SimpleNamespace(name="lstm", cell="lstm", pytorch_default=False),
    ]
    brackets = {
        "rnn": _bracket(None, 5),  # failed at the shortest distance
        "irnn": _bracket(40, 80),
        "gru": _bracket(40, 80),
        "lstm_default": _bracket(20, 40),
        "lstm": _bracket(40, 57),
    }
    cells = control.deciding_cells(models, brackets)
    # defaults: gru (40) > lstm_default (20..40) at 40; lstm_default > rnn at 5
    # best: irnn, gru, lstm all hold 40: gru/irnn (upper 80) and lstm (upper 57) overlap
    assert cells == [("rnn", 5), ("lstm_default", 5), ("gru", 40), ("lstm_default", 40)]
    brackets["lstm_default"] = None  # a staircase still running: no control yet
    assert control.deciding_cells(models, brackets) == []


def test_a_control_needs_a_staircase_and_shared_settings_within_bounds(tmp_path):
    no_stair = {k: v for k, v in STAIR.items() if k != "staircase"}
    no_stair["tasks"] = [{**STAIR["tasks"][0], "distances": [8]}]
    controlled = {**no_stair, "control": {"learning_rate": 1e-3}}
    with pytest.raises(ConfigError) as e:
        config.load(write_experiment(tmp_path, "a", controlled))
    assert "staircase" in str(e.value)
    with pytest.raises(ConfigError) as e:
        config.load(write_experiment(tmp_path, "b", {**STAIR, "control": {}}))
    assert "at least one shared setting" in str(e.value)
    with pytest.raises(ConfigError) as e:
        config.load(write_experiment(tmp_path, "c", {**STAIR, "control": {"learning_rate": -1}}))
    assert "control.learning_rate" in str(e.value)


# ---- a real staircase sweep, killed and resumed ---------------------------------------------


def _planned_keys(root: Path, exp, monkeypatch) -> set[str]:
    with monkeypatch.context() as m:
        m.setenv("PIPELINE_ROOT", str(root))
        return {s.key for s in evaluation_runs(exp, None, _read)}


@pytest.mark.slow
def test_a_killed_staircase_sweep_resumes_to_the_same_plan(pipeline_root, tmp_path, monkeypatch):
    settings = {**STAIR, "training": {**STAIR["training"], "max_steps": 120}}
    path = write_experiment(pipeline_root / "experiments", "stairkill", settings)
    exp = config.load(path)
    data.run(exp, log=lambda *_: None)
    proc = pipeline_cli("train", "-e", str(path), "--jobs", "2", root=pipeline_root,
                start_new_session=True)  # fmt: skip
    time.sleep(random.Random(3).uniform(8, 14))  # start-up, or some rounds in
    proc.kill()  # the sweep's process only; its workers die with it
    proc.communicate(timeout=60)
    final = pipeline_cli("train", "-e", str(path), "--jobs", "2", root=pipeline_root)
    _, err = final.communicate(timeout=600)
    assert final.returncode == 0, err
    # an uninterrupted sweep of the same experiment elsewhere plans the same runs
    other = tmp_path / "other"
    write_experiment(other / "experiments", "stairkill", settings)
    assert pipeline_cli("data", "-e", str(path), root=other).wait(timeout=120) == 0
    once = pipeline_cli("train", "-e", str(path), "--jobs", "2", root=other)
    _, err = once.communicate(timeout=600)
    assert once.returncode == 0, err
    planned = _planned_keys(pipeline_root, exp, monkeypatch)
    assert planned == _planned_keys(other, exp, monkeypatch)
    assert len({d for d in (k.rsplit("_d", 1)[1].split("_")[0] for k in planned)}) >= 2
    # one FINISHED MLflow run per planned key, nothing RUNNING, every result file present
    client = store.client(f"sqlite:///{pipeline_root / 'mlruns' / 'mlflow.db'}")
    exp_id = sweep_runs.experiment_id(client, exp.name)
    runs = [r for r in store.search(client, exp_id) if not sweep_runs.is_parent(r)]
    finished = Counter(r.data.tags[names.RUN_KEY] for r in runs if r.info.status == "FINISHED")
    assert set(finished) == planned and set(finished.values()) == {1}
    assert not [r for r in runs if r.info.status == "RUNNING"]
    assert all(paths.result_file(exp.name, k).exists() for k in planned)
    assert proc.returncode == -signal.SIGKILL or proc.returncode == 0
