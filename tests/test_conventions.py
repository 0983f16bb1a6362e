"""MLflow's conventions on a real SQLite store, without training: experiment names and kind, the
renaming of an old store, a sweep's parent runs, source tags, run descriptions, datasets, the
chart view and the UI's addresses. (The sweep's use of them: test_sweep, test_tuning.)
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from pipeline import data
from pipeline.tasks import RecallConfig
from pipeline.tracking import names, run_log, source, store, sweep_runs, ui


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """A client of a fresh SQLite store, shared by the module (each test names its own
    experiments).
    """
    folder = tmp_path_factory.mktemp("store")
    return store.connect(f"sqlite:///{folder / 'mlflow.db'}")


def _run_with_key(client, exp_id: str):
    return client.create_run(exp_id, tags={names.RUN_KEY: "recall/rnn_d6_s0"})


# ---- experiments: names, kind, an old store -------------------------------------------------


def test_a_new_experiment_is_named_for_the_study_and_tagged_model_training(client):
    exp_id = sweep_runs.experiment_id(client, "fresh")
    found = client.get_experiment(exp_id)
    assert found.name == "long-gap/fresh"
    assert found.tags[names.EXPERIMENT_KIND] == "custom_model_development"
    assert "experiments/fresh.yaml" in found.tags[names.NOTE]
    assert sweep_runs.experiment_id(client, "fresh") == exp_id  # found again, not created twice


def test_an_existing_experiment_gets_the_kind_tag(client):
    exp_id = client.create_experiment("long-gap/untagged")
    sweep_runs.experiment_id(client, "untagged")
    assert client.get_experiment(exp_id).tags[names.EXPERIMENT_KIND] == names.MODEL_TRAINING


def test_someone_elses_experiment_of_the_old_name_is_left_alone(client):
    theirs = client.create_experiment("quick")
    client.create_run(theirs, tags={"owner": "someone"})
    ours = sweep_runs.experiment_id(client, "quick")
    assert ours != theirs
    assert client.get_experiment(theirs).name == "quick"
    assert client.get_experiment(ours).name == "long-gap/quick"


# ---- a sweep's parent runs ----------------------------------------------------------------


def test_a_parent_run_is_reused_by_each_sweep_of_the_same_code(client):
    exp_id = sweep_runs.experiment_id(client, "parents")
    tags = {names.CODE_VERSION: "v1", names.NOTE: "first"}
    top = sweep_runs.open_parent(client, exp_id, names.SWEEP, "sweep parents", tags)
    below = sweep_runs.open_parent(client, exp_id, names.TUNING, "tuning", tags, parent=top)
    assert client.get_run(below).data.tags[names.PARENT_RUN] == top
    store.close_run(client, below, "FINISHED")
    store.close_run(client, top, "KILLED", {names.NOTE: "interrupted"})

    tags = {**tags, names.NOTE: "second"}
    assert sweep_runs.open_parent(client, exp_id, names.SWEEP, "sweep parents", tags) == top
    reopened = client.get_run(top)
    assert reopened.info.status == "RUNNING" and reopened.data.tags[names.NOTE] == "second"
    again = sweep_runs.open_parent(client, exp_id, names.TUNING, "tuning", tags, parent=top)
    assert again == below

    newer = {names.CODE_VERSION: "v2"}  # changed code: its runs go under a parent of its own
    assert sweep_runs.open_parent(client, exp_id, names.SWEEP, "sweep parents", newer) != top
    runs = store.search(client, exp_id)
    assert all(sweep_runs.is_parent(r) for r in runs) and len(runs) == 3


def test_stale_parent_runs_are_closed_but_only_run_keys_reported(client):
    exp_id = sweep_runs.experiment_id(client, "stale")
    tags = {names.CODE_VERSION: "v1"}
    parent = sweep_runs.open_parent(client, exp_id, names.SWEEP, "sweep stale", tags)
    run = _run_with_key(client, exp_id)
    assert sweep_runs.close_stale_runs(client, exp_id) == ["recall/rnn_d6_s0"]
    assert client.get_run(parent).info.status == "KILLED"
    assert client.get_run(run.info.run_id).info.status == "KILLED"


# ---- what a run carries -------------------------------------------------------------------


def _git(folder: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=folder, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def checkout(tmp_path) -> Path:
    """A git checkout with one commit on branch ``main`` and a pipeline/ folder."""
    (tmp_path / "pipeline").mkdir()
    (tmp_path / "pipeline" / "train").mkdir(parents=True)
    (tmp_path / "pipeline" / "train" / "run.py").write_text("# the code\n")
    _git(tmp_path, "init", "-q", "-b", "main")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-qm", "c")
    return tmp_path


def test_source_tags_without_a_remote_name_the_local_file(checkout):
    tags = source.source_tags(checkout)
    commit = _git(checkout, "rev-parse", "HEAD")
    assert tags[names.SOURCE_TYPE] == "LOCAL"
    assert tags[names.SOURCE_NAME] == str(checkout / "pipeline" / "train" / "run.py")
    assert tags[names.GIT_COMMIT] == commit and tags["code_commit"] == commit
    assert tags[names.GIT_BRANCH] == "main"
    assert tags[names.USER] and names.GIT_REPO not in tags
    (checkout / "pipeline" / "train" / "run.py").write_text("# edited\n")
    assert source.source_tags(checkout)["code_commit"] == commit + "+dirty"


def test_source_tags_with_a_remote_link_the_repository_without_its_credentials(checkout):
    _git(checkout, "remote", "add", "origin", "https://me:s3cret@github.com/lab/long-gap.git")
    tags = source.source_tags(checkout)
    assert tags[names.SOURCE_TYPE] == "PROJECT"  # the UI links name and commit
    assert tags[names.SOURCE_NAME] == "https://github.com/lab/long-gap.git#pipeline/train/run.py"
    assert tags[names.GIT_REPO] == "https://github.com/lab/long-gap.git"
    assert "s3cret" not in json.dumps(tags)


def test_a_runs_description_says_how_it_ended():
    result = {"test_accuracy": 1.0, "steps": 400, "best_val_accuracy": 0.995}
    solved = SimpleNamespace(**result, status="solved", steps_to_solve=400)
    assert run_log.outcome_note(solved) == "solved at step 400; test accuracy 1.000"
    unsolved = SimpleNamespace(
        **{**result, "test_accuracy": 0.25, "best_val_accuracy": 0.3}, status="unsolved"
    )
    assert run_log.outcome_note(unsolved) == (
        "unsolved after 400 steps (best validation accuracy 0.300); test accuracy 0.250"
    )
    diverged = SimpleNamespace(
        **{**result, "test_accuracy": 0.25}, status="diverged", diverged_step=7
    )
    assert run_log.outcome_note(diverged) == "diverged at step 7; test accuracy 0.250"
    assert run_log.failure_note(RuntimeError("out of memory\nmore"), False) == (
        "failed: RuntimeError: out of memory"
    )


def test_the_splits_become_datasets_whose_digests_come_from_the_manifest(tmp_path):
    task = RecallConfig(task="recall", distances=[6], n_keys=4, n_filler=8)
    folder = tmp_path / "recall" / "d6_s0"
    sizes = {"train": 512, "val": 128, "test": 128}
    data.write(folder, task, 6, 0, sizes)
    manifest = data.manifest(folder)
    splits = {split: data.load(folder, split) for split in data.SPLITS}
    inputs = run_log._dataset_inputs("recall/d6_s0", folder, manifest, splits)
    assert [i.tags[0].value for i in inputs] == ["training", "validation", "testing"]
    for split, item in zip(data.SPLITS, inputs, strict=True):
        dataset = item.dataset
        assert dataset.name == "recall/d6_s0"
        assert dataset.digest == manifest["files"][split]["sha256"][:12]
        assert json.loads(dataset.source) == {"uri": (folder / f"{split}.npz").as_uri()}
        assert json.loads(dataset.profile) == {"num_rows": sizes[split]}
        features = json.loads(json.loads(dataset.schema)["mlflow_tensorspec"]["features"])
        length = splits[split].x.shape[1]  # the task's sequence length at distance 6
        assert features[0]["tensor-spec"] == {"dtype": "uint8", "shape": [-1, length]}


class _Racing:
    """A client whose first dataset write collides with another worker's, as SQLite says it."""

    def __init__(self) -> None:
        self.calls = 0

    def log_inputs(self, run_id, datasets):
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("(sqlite3.IntegrityError) UNIQUE constraint failed: datasets.name")


def test_a_dataset_written_by_two_workers_at_once_is_linked_not_failed(tmp_path):
    split = data.Split(torch.zeros(4, 3, dtype=torch.uint8), torch.zeros(4, dtype=torch.uint8))
    entry = {"file": "x.npz", "sha256": "ab" * 32, "x_shape": [4, 3]}
    manifest = {"files": dict.fromkeys(data.SPLITS, entry)}
    racing = _Racing()
    run = SimpleNamespace(info=SimpleNamespace(run_id="run"))
    log = run_log.RunLog(racing, "0", run, {})
    log.datasets("recall/d6_s0", tmp_path, manifest, dict.fromkeys(data.SPLITS, split))
    assert racing.calls == 2


def test_logged_model_names_hold_no_character_mlflow_refuses():
    assert run_log.model_name("recall/lstm_d20_s1") == "recall-lstm_d20_s1"
    name = run_log.model_name("recall/tuning/rnn_lr0.003_d20_s100")
    assert name == "recall-tuning-rnn_lr0_003_d20_s100"
    assert not set("/:.%\"'") & set(name)


# ---- the UI -------------------------------------------------------------------------------


def test_the_chart_view_opens_on_the_useful_charts_for_the_sweeps_runs():
    view = ui.chart_view("abc123")
    state = json.loads(view["state"])
    keys = [chart["metricKey"] for chart in state["compareRunCharts"]]
    assert keys[:3] == ["val_accuracy", "grad_norm", "probe/h_key_share"]
    assert state["searchFilter"] == "tags.`mlflow.parentRunId` = 'abc123'"
    assert state["runsHiddenMode"] == "SHOW_ALL"
    assert state["orderByKey"] != "attributes.start_time"  # sorted by time, the UI would nest
    first, *others = state["compareRunSections"]
    assert {c["metricSectionId"] for c in state["compareRunCharts"]} == {first["uuid"]}
    # every other metric still has its section (by name prefix; the final numbers folded)
    shown = {s["name"]: s["display"] for s in others}
    assert shown["probe"] and shown["probe_curve/init"] and not shown["Model metrics"]


def test_ui_addresses_open_model_training_mode(client):
    assert ui.ui_url("7", "http://127.0.0.1:5000") == (
        "http://127.0.0.1:5000/#/experiments/7/runs?workflowType=machine_learning"
    )
    assert ui.ui_url("7", "http://h:1/", "learning-curves").endswith(
        "/#/experiments/7/runs?viewStateShareKey=learning-curves&compareRunsMode=CHART"
        "&workflowType=machine_learning"
    )
    assert ui.ui_address("http://mlflow.example:5000/") == "http://mlflow.example:5000"
    assert ui.ui_address("sqlite:////x/mlflow.db") == ui.UI_ADDRESS
    exp_id = sweep_runs.experiment_id(client, "linked")
    ui.save_chart_view(client, exp_id, "p")
    text = "\n".join(ui.ui_links("http://127.0.0.1:5001", client.tracking_uri))
    assert "long-gap/linked" in text and "Default" not in text  # the pipeline's experiments
    assert ui.ui_url(exp_id, "http://127.0.0.1:5001") in text
    assert ui.ui_url(exp_id, "http://127.0.0.1:5001", "learning-curves") in text


def test_ui_links_leave_a_missing_store_uncreated(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}"
    (line,) = ui.ui_links("http://127.0.0.1:5000", uri)
    assert "make run-all" in line and not (tmp_path / "mlruns").exists()
