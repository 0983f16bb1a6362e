"""The train stage on a real SQLite MLflow store: runs, params, histories, artifacts, reruns."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest
import torch

from pipeline import config, data, paths
from pipeline.config.runs import RunResult, evaluation_runs
from pipeline.sweep import phases
from pipeline.tracking import names, run_log, source, store, sweep_runs, ui
from tests.conftest import TINY, write_experiment


def _finished_runs(exp_name: str) -> list:
    """The sweep's FINISHED runs (not its parent run)."""
    client = store.client()
    exp_id = sweep_runs.experiment_id(client, exp_name)
    finished = store.search(client, exp_id, "attributes.status = 'FINISHED'")
    return [r for r in finished if not sweep_runs.is_parent(r)]


def _parents(exp_name: str) -> list:
    client = store.client()
    return [r for r in store.search(client, sweep_runs.experiment_id(client, exp_name))
            if sweep_runs.is_parent(r)]  # fmt: skip


def test_one_finished_run_per_cell_with_params_tags_histories(tiny_sweep, monkeypatch):
    root, exp = tiny_sweep
    monkeypatch.setenv("PIPELINE_ROOT", str(root))
    runs = _finished_runs(exp.name)
    keys = sorted(r.data.tags[names.RUN_KEY] for r in runs)
    assert keys == sorted(
        s.key for s in evaluation_runs(exp)
    )  # 2 distances x 2 seeds x 2 models, once each

    client = store.client()
    for run in runs:
        spec = next(s for s in evaluation_runs(exp) if s.key == run.data.tags[names.RUN_KEY])
        assert run.info.run_name == spec.title
        # every config field under its own name, as the string MLflow stores
        assert run.data.params == {k: str(v) for k, v in spec.params().items()}
        for tag in ("task", "model", "cell", "distance", "seed", "code_commit", "config_hash"):
            assert tag in run.data.tags
        assert run.data.tags["cell"] == spec.model.cell
        for key in ("train_loss", "train_accuracy", "grad_norm", "val_loss", "val_accuracy"):
            history = client.get_metric_history(run.info.run_id, key)
            assert len(history) >= 2, key  # a history, not one number
            steps = [m.step for m in history]
            assert steps == sorted(steps)
        for key in ("test_accuracy", "test_loss", "best_val_accuracy", "wall_time"):
            assert key in run.data.metrics
        assert 0.0 <= run.data.metrics["test_accuracy"] <= 1.0


def test_weights_artifact_loads_as_plain_state_dict(tiny_sweep, monkeypatch, tmp_path):
    import mlflow.artifacts

    from pipeline.train.saved import build_model

    root, exp = tiny_sweep
    monkeypatch.setenv("PIPELINE_ROOT", str(root))
    run = _finished_runs(exp.name)[0]
    spec = next(s for s in evaluation_runs(exp) if s.key == run.data.tags[names.RUN_KEY])
    local = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id,
        artifact_path="model.pt",
        dst_path=str(tmp_path),
        tracking_uri=store.client().tracking_uri,
    )
    state = torch.load(local, weights_only=True)
    model = build_model(spec)
    model.load_state_dict(state)  # raises on any missing or unexpected key
    assert set(state) == set(model.state_dict())


def test_result_files_match_mlflow(tiny_sweep, monkeypatch):
    root, exp = tiny_sweep
    monkeypatch.setenv("PIPELINE_ROOT", str(root))
    by_id = {r.info.run_id: r for r in _finished_runs(exp.name)}
    for spec in evaluation_runs(exp):
        result = json.loads(paths.result_file(exp.name, spec.key).read_text())
        run = by_id[result["run_id"]]
        assert result["test_accuracy"] == pytest.approx(run.data.metrics["test_accuracy"])
        assert result["status"] in ("solved", "unsolved", "diverged")
        assert result["solved"] == (result["status"] == "solved")
        assert result[names.CONFIG_HASH] == spec.config_hash
    summary = json.loads((paths.results_dir(exp.name) / "sweep.json").read_text())
    assert set(summary["runs"]) == {s.key for s in evaluation_runs(exp)}


def test_rerun_creates_no_new_runs(tiny_sweep, monkeypatch, tmp_path):
    import shutil

    root, exp = tiny_sweep
    copy = tmp_path / "root"
    shutil.copytree(root, copy)
    monkeypatch.setenv("PIPELINE_ROOT", str(copy))
    before = len(_finished_runs(exp.name))
    (parent,) = _parents(exp.name)
    progress = phases.run(exp, jobs=2, log=lambda *_: None)
    assert progress.done == len(evaluation_runs(exp)) and progress.failed == 0
    assert len(_finished_runs(exp.name)) == before
    (again,) = _parents(exp.name)  # the same parent, reopened and finished again
    assert again.info.run_id == parent.info.run_id and again.info.status == "FINISHED"


def test_runs_nest_under_the_sweeps_parent_with_mlflows_own_tags(tiny_sweep, monkeypatch):
    root, exp = tiny_sweep
    monkeypatch.setenv("PIPELINE_ROOT", str(root))
    (parent,) = _parents(exp.name)
    assert parent.info.status == "FINISHED" and parent.info.run_name == "sweep tiny"
    assert parent.data.tags[names.ROLE] == names.SWEEP
    assert "8 evaluation runs" in parent.data.tags[names.NOTE]
    runs = _finished_runs(exp.name)
    commit = source.source_tags()[names.GIT_COMMIT]
    for run in runs:
        tags = run.data.tags
        assert tags[names.PARENT_RUN] == parent.info.run_id
        assert tags[names.SOURCE_TYPE] in ("LOCAL", "PROJECT")
        assert tags[names.SOURCE_NAME].endswith("pipeline/train/run.py")
        assert tags[names.GIT_COMMIT] == commit and tags[names.CODE_COMMIT].startswith(commit)
        assert run.info.user_id == tags[names.USER] != "unknown"
        result = RunResult.read(paths.result_file(exp.name, tags[names.RUN_KEY]))
        assert tags[names.NOTE] == run_log.outcome_note(result)
        assert f"test accuracy {result.test_accuracy:.3f}" in tags[names.NOTE]


def test_each_run_logs_its_splits_as_datasets_shared_by_runs_on_the_same_data(
    tiny_sweep, monkeypatch
):
    root, exp = tiny_sweep
    monkeypatch.setenv("PIPELINE_ROOT", str(root))
    by_data: dict = {}
    for run in _finished_runs(exp.name):
        tags = run.data.tags
        inputs = {i.tags[0].value: i.dataset for i in run.inputs.dataset_inputs}
        assert set(inputs) == {"training", "validation", "testing"}
        folder = data.folder(exp.name, exp.tasks[0], int(tags["distance"]), int(tags["seed"]))
        manifest = data.manifest(folder)
        for split, context in run_log.CONTEXTS.items():
            dataset = inputs[context]
            assert dataset.name == f"recall/d{tags['distance']}_s{tags['seed']}"
            assert manifest["files"][split]["sha256"].startswith(dataset.digest)
            assert json.loads(dataset.profile) == {
                "num_rows": manifest["files"][split]["x_shape"][0]
            }
        key = (tags["distance"], tags["seed"])
        by_data.setdefault(key, set()).add(
            tuple(sorted((d.name, d.digest) for d in inputs.values()))
        )
    assert all(len(found) == 1 for found in by_data.values())  # rnn and lstm: the same digests
    assert len(by_data) == 4


def test_each_run_logs_its_weights_as_a_model_that_loads_without_pickled_code(
    tiny_sweep, monkeypatch, tmp_path
):
    import mlflow.artifacts

    from pipeline.train.saved import load_model

    root, exp = tiny_sweep
    monkeypatch.setenv("PIPELINE_ROOT", str(root))
    client = store.client()
    run = _finished_runs(exp.name)[0]
    (output,) = run.outputs.model_outputs
    logged = client.get_logged_model(output.model_id)
    assert logged.source_run_id == run.info.run_id and str(logged.status) == "READY"
    assert logged.name == run_log.model_name(run.data.tags[names.RUN_KEY])
    assert logged.params["cell"] == run.data.tags["cell"]
    assert output.step == int(run.data.metrics["steps"])
    scores = {m.key: m for m in logged.metrics}  # the test scores, linked to the model
    assert scores["test_accuracy"].value == run.data.metrics["test_accuracy"]
    assert (
        scores["test_accuracy"].dataset_name
        == f"recall/d{run.data.tags['distance']}_s" + (run.data.tags["seed"])
    )
    spec, model = load_model(logged.model_id)
    assert spec.key == run.data.tags[names.RUN_KEY]
    weights = mlflow.artifacts.download_artifacts(
        run_id=run.info.run_id, artifact_path="model.pt", dst_path=str(tmp_path / "r"),
        tracking_uri=client.tracking_uri,
    )  # fmt: skip
    state = torch.load(weights, weights_only=True)
    assert all(torch.equal(v, state[k]) for k, v in model.state_dict().items())


def test_every_probe_measures_the_mechanism_and_the_result_keeps_the_first_and_last(
    tiny_sweep, monkeypatch, tmp_path
):
    import mlflow.artifacts
    import pandas as pd

    root, exp = tiny_sweep
    monkeypatch.setenv("PIPELINE_ROOT", str(root))
    client = store.client()
    for run in _finished_runs(exp.name):
        result = RunResult.read(paths.result_file(exp.name, run.data.tags[names.RUN_KEY]))
        block = "W" if result.cell == "rnn" else "W_f"  # TINY: an RNN and an LSTM
        history = client.get_metric_history(run.info.run_id, f"mech/{block}_radius")
        local = mlflow.artifacts.download_artifacts(
            run_id=run.info.run_id, artifact_path=names.PROBE_SUMMARY_ARTIFACT,
            dst_path=str(tmp_path / run.info.run_id), tracking_uri=client.tracking_uri,
        )  # fmt: skip
        table = pd.read_csv(local)  # one row per probe, in the order taken
        assert table["phase"].iloc[0] == "init" and table["phase"].iloc[-1] == "final"
        assert all(p.startswith("step_") for p in table["phase"].iloc[1:-1])
        assert [m.step for m in history] == table["step"].tolist()
        assert table["step"].iloc[0] == 0 and table["step"].iloc[-1] == result.steps
        assert table[f"{block}_radius"].tolist() == pytest.approx([m.value for m in history])
        assert "h_key_share" in table  # the probe's summaries beside the measures
        assert result.mech_init[f"{block}_radius"] == pytest.approx(history[0].value)
        assert result.mech_final[f"{block}_sv"] == pytest.approx(table[f"{block}_sv"].iloc[-1])
        assert result.mech_final[f"{block}_radius"] <= result.mech_final[f"{block}_sv"] + 1e-9
        if result.cell == "lstm":  # the forget gate's time constants, for the LSTM only
            assert set(result.mech_final) >= {"f_tau_median", "f_tau_max", "f_tau_share"}
            assert table["f_tau_share"].between(0, 1).all()
            assert (table["f_tau_median"] >= 1).all()  # tau = 1 / (1 - a) with 0 < a < 1
        else:
            assert not any("tau" in name for name in result.mech_final)


def test_each_run_is_scored_at_other_distances_in_its_result_file_and_in_mlflow(
    tiny_sweep, monkeypatch
):
    root, exp = tiny_sweep
    monkeypatch.setenv("PIPELINE_ROOT", str(root))
    for run in _finished_runs(exp.name):
        result = RunResult.read(paths.result_file(exp.name, run.data.tags[names.RUN_KEY]))
        scored = result.extrapolation
        assert sorted(scored) == ["0.5", "2", "4"]  # TINY's distances 6 and 8: none clamps
        d = result.distance
        assert [scored[k].distance for k in ("0.5", "2", "4")] == [d // 2, 2 * d, 4 * d]
        for label, s in scored.items():
            assert 0.0 <= s.accuracy <= 1.0 and s.n == exp.data.n_test
            assert s.chance_accuracy == result.chance_accuracy  # recall: 1 / n_keys anywhere
            metrics = run.data.metrics
            assert metrics[f"extrapolation/accuracy_x{label}"] == pytest.approx(s.accuracy)
            assert metrics[f"extrapolation/loss_x{label}"] == pytest.approx(s.loss)
            assert f"extrapolation_accuracy_x{label}" not in metrics  # one name in MLflow
            assert result.flat()[f"extrapolation_accuracy_x{label}"] == s.accuracy


def test_the_experiment_is_named_for_the_study_and_opens_on_the_learning_curves(
    tiny_sweep, monkeypatch
):
    root, exp = tiny_sweep
    monkeypatch.setenv("PIPELINE_ROOT", str(root))
    found = store.client().get_experiment_by_name("long-gap/tiny")
    assert found.tags[names.EXPERIMENT_KIND] == names.MODEL_TRAINING
    view = json.loads(found.tags[names.VIEW_TAG + ui.CHART_VIEW])
    state = json.loads(view["state"])
    (parent,) = _parents(exp.name)
    assert parent.info.run_id in state["searchFilter"]
    assert [c["metricKey"] for c in state["compareRunCharts"]][:2] == ["val_accuracy", "grad_norm"]


@pytest.mark.slow
def test_changed_training_setting_reruns_only_that_experiment(pipeline_root):
    settings = {**TINY, "seeds": [0], "training": {**TINY["training"], "max_steps": 20}}
    settings["tasks"] = [{**TINY["tasks"][0], "distances": [6]}]
    path = write_experiment(pipeline_root / "experiments", "small", settings)
    exp = config.load(path)
    data.run(exp, log=lambda *_: None)
    phases.run(exp, jobs=1, log=lambda *_: None)
    first = {r.info.run_id for r in _finished_runs("small")}
    settings["training"]["max_steps"] = 40
    exp2 = config.load(write_experiment(pipeline_root / "experiments", "small", settings))
    phases.run(exp2, jobs=1, log=lambda *_: None)
    second = _finished_runs("small")
    assert len(second) == 2 * len(first)  # each run again, under its new config hash
    results = [
        json.loads(paths.result_file("small", s.key).read_text()) for s in evaluation_runs(exp2)
    ]
    assert all(
        r["steps"] <= 40 and r[names.CONFIG_HASH] == s.config_hash
        for r, s in zip(results, evaluation_runs(exp2), strict=True)
    )


@pytest.mark.slow
def test_divergence_is_recorded_and_the_sweep_finishes(pipeline_root):
    settings = {  # a regression head with a huge unclipped step overflows within a few updates
        **TINY,
        "tasks": [{"task": "adding", "distances": [4]}],
        "seeds": [0],
        "models": [{"name": "rnn", "cell": "rnn"}, {"name": "lstm", "cell": "lstm"}],
        "training": {
            **TINY["training"],
            "optimizer": "sgd",
            "learning_rate": 1e4,
            "grad_clip": None,
        },
    }
    exp = config.load(write_experiment(pipeline_root / "experiments", "boom", settings))
    data.run(exp, log=lambda *_: None)
    progress = phases.run(exp, jobs=1, log=lambda *_: None)
    assert progress.failed == 0 and progress.done == len(evaluation_runs(exp))
    for spec in evaluation_runs(exp):
        result = json.loads(paths.result_file("boom", spec.key).read_text())
        assert result["status"] == "diverged"
        assert result["solved"] is False
        assert isinstance(result["diverged_step"], int)
    runs = _finished_runs("boom")
    assert {r.data.tags["status"] for r in runs} == {"diverged"}
    assert all(r.data.metrics["diverged"] == 1.0 for r in runs)


@pytest.mark.slow
def test_forked_workers_take_each_sweeps_environment(tmp_path, monkeypatch):
    """The fork server outlives a sweep in this process: the next sweep's workers must still
    write under that sweep's PIPELINE_ROOT and store, not the first one's.
    """
    training = {**TINY["training"], "max_steps": 10, "eval_every": 10}  # within max_steps
    settings = {**TINY, "seeds": [0], "training": training}
    settings["tasks"] = [{**TINY["tasks"][0], "distances": [6]}]
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for name in ("first", "second"):
        root = tmp_path / name
        monkeypatch.setenv("PIPELINE_ROOT", str(root))
        exp = config.load(write_experiment(root / "experiments", "env", settings))
        data.run(exp, log=lambda *_: None)
        phases.run(exp, jobs=2, log=lambda *_: None)
        for spec in evaluation_runs(exp):
            result = json.loads(paths.result_file(exp.name, spec.key).read_text())
            assert paths.result_file(exp.name, spec.key).is_relative_to(root)
            assert store.client().get_run(result["run_id"]).info.status == "FINISHED"
        assert len(_finished_runs(exp.name)) == len(
            evaluation_runs(exp)
        )  # in this root's own store


def test_grouped_steps_are_the_same_batches_in_the_same_order():
    from pipeline.train import batches as b

    g = torch.Generator().manual_seed(0)
    split = data.Split(torch.randint(0, 9, (100, 6), generator=g), torch.arange(100))
    batches = b.Batches(split, batch_size=8, seed=3)
    one_by_one = iter(batches)
    groups = list(b.Steps(batches, per_call=10, total=45))
    assert [len(x) for x, _ in groups] == [10, 10, 10, 10, 5]  # 45 steps, the last group short
    for xs, ys in groups:
        for x, y in zip(xs, ys, strict=True):
            expected_x, expected_y = next(one_by_one)
            assert torch.equal(x, expected_x) and torch.equal(y, expected_y)


@pytest.mark.slow
def test_validation_and_metric_writes_keep_their_cadence_with_grouped_steps(pipeline_root):
    """10 steps per training batch (the gcd of eval_every 20 and log_every 10), 45 in all: the
    run stops at 45, validates at 20 and 40 and writes training metrics every 10 steps.
    """
    from pipeline.train.batches import steps_per_call

    training = {**TINY["training"], "max_steps": 45, "solved_accuracy": 1.0}
    settings = {**TINY, "seeds": [0], "models": [TINY["models"][0]], "training": training}
    settings["tasks"] = [{**TINY["tasks"][0], "distances": [8]}]
    exp = config.load(write_experiment(pipeline_root / "experiments", "cadence", settings))
    assert steps_per_call(exp.training) == 10
    data.run(exp, log=lambda *_: None)
    phases.run(exp, jobs=1, log=lambda *_: None)
    (run,) = _finished_runs("cadence")
    result = json.loads(paths.result_file("cadence", evaluation_runs(exp)[0].key).read_text())
    assert result["steps"] == 45 and result["status"] == "unsolved"
    client = store.client()

    def steps(key: str) -> list[int]:
        return [m.step for m in client.get_metric_history(run.info.run_id, key)]

    assert steps("val_accuracy") == [20, 40]
    assert steps("train_loss") == steps("grad_norm") == [10, 20, 30, 40]
    assert steps("probe/h_key_share") == [0, 20, 40, 45]
    assert steps("mech/W_radius") == steps("mech/W_sv") == [0, 20, 40, 45]  # with every probe


def test_a_large_clipped_gradient_is_not_divergence_a_non_finite_one_is():
    from pipeline.train.module import step_blew_up, window_blew_up

    assert step_blew_up(2.3, 1e9) is None  # clipping bounds the update: not a divergence
    assert step_blew_up(float("nan"), 1.0) == "non-finite loss"
    assert step_blew_up(float("inf"), 1.0) == "non-finite loss"
    assert step_blew_up(2.3, float("inf")) == "non-finite gradient"
    assert window_blew_up(50.0, 208.0) is None
    assert "above" in window_blew_up(300.0, 208.0)


def test_a_parent_stopped_by_an_error_keeps_no_password_in_its_description(
    pipeline_root, monkeypatch
):
    client = store.connect()
    exp_id = sweep_runs.experiment_id(client, "stopped")
    parent = store.create_run(client, exp_id, "sweep stopped", {names.NOTE: "Plan. Running."})
    failing = SimpleNamespace(client=client)
    with pytest.raises(RuntimeError), phases._closed_on_error(failing, parent.info.run_id):
        raise RuntimeError("store http://alice:hunter22@host:5000 went away:")
    closed = client.get_run(parent.info.run_id)
    assert closed.info.status == "FAILED"
    note = closed.data.tags[names.NOTE]
    stopped = "Stopped: store http://alice:***@host:5000 went away."
    assert note == f"Plan. {stopped} The same command resumes the sweep."
