"""MLflow's own conventions, so that its UI shows this study where its users look for things.

Everything the pipeline records under its own names stays as it was (params, metrics, the tags
``code_commit``, ``run_key``, ..., the artifacts); this module adds what MLflow's UI reads:

- ``source_tags``: the code and the person behind a run (MLflow's ``mlflow.source.*`` and
  ``mlflow.user``): the Source column and the run page's Source and Created by;
- ``outcome_note``: a run's one-line description (``mlflow.note.content``), "solved at step
  400; test accuracy 1.000";
- ``log_datasets``: the run's train, validation and test splits as dataset inputs, named
  ``<task>/d<distance>_s<seed>`` with a digest taken from the data manifest's SHA-256, so two
  runs on the same data show the same digest;
- ``log_model``: the trained weights as the run's logged model (MLflow 3), a plain state dict
  loaded without unpickling code (``train.load_model``);
- ``system_metrics``: MLflow's system metrics (CPU, memory, disk, network) of the machine that
  trains the sweep, on the sweep's parent run.

None of it decides a run's outcome (``stages.OUTCOME_CODE`` leaves this module out), and none of
it imports torch: the report may read it.
"""

from __future__ import annotations

import getpass
import json
import logging
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from pipeline import paths, tracking

# MLflow's tag names (mlflow.utils.mlflow_tags)
SOURCE_NAME, SOURCE_TYPE = "mlflow.source.name", "mlflow.source.type"
GIT_COMMIT, GIT_BRANCH, GIT_REPO = (
    "mlflow.source.git.commit",
    "mlflow.source.git.branch",
    "mlflow.source.git.repoURL",
)
USER = "mlflow.user"
DATASET_CONTEXT = "mlflow.data.context"
CODE_COMMIT = "code_commit"  # the pipeline's own tag: the commit, "+dirty" for local edits
ENTRY = "pipeline/train.py"  # the code a run executes, as the source names it
CONTEXTS = {"train": "training", "val": "validation", "test": "testing"}  # MLflow's names
DIGEST_CHARS = 12  # of the manifest's SHA-256; MLflow keeps at most 36
# seconds between system-metric samples (MLflow's default): a sample costs ~15 ms of CPU
SYSTEM_INTERVAL = 10


def _git(root: Path, *args: str) -> str:
    try:
        out = subprocess.run(
            ["git", *args], cwd=root, text=True, capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def _public(url: str) -> str:
    """``url`` without credentials (``https://user:token@host/...`` -> ``https://host/...``)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc or not parts.scheme:
        return url  # git@host:org/repo.git names a user, not a secret
    return parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl()


def source_tags(root: Path = paths.SOURCE_ROOT) -> dict[str, str]:
    """The tags naming the code in the checkout at ``root`` and the user who runs it.

    With a git remote (``origin``) the source is the remote's ``pipeline/train.py`` and the
    type ``PROJECT``, as MLflow Projects record it: then the UI links the source to the
    repository and the commit to its page. Without one the source is that file's path here
    (type ``LOCAL``), shown as ``train.py`` beside the branch and commit. ``code_commit`` keeps
    the pipeline's own form: the commit, ``+dirty`` when the checkout's pipeline/ has edits.
    """
    commit = _git(root, "rev-parse", "HEAD")
    branch = _git(root, "rev-parse", "--abbrev-ref", "HEAD")
    remote = _public(_git(root, "remote", "get-url", "origin"))
    dirty = bool(_git(root, "status", "--porcelain", "--", "pipeline"))
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        user = "unknown"
    tags = {USER: user, CODE_COMMIT: (commit + ("+dirty" if dirty else "")) or "unknown"}
    if remote:
        tags |= {SOURCE_NAME: f"{remote}#{ENTRY}", SOURCE_TYPE: "PROJECT", GIT_REPO: remote}
    else:
        tags |= {SOURCE_NAME: str(root / ENTRY), SOURCE_TYPE: "LOCAL"}
    if commit:
        tags[GIT_COMMIT] = commit
    if branch and branch != "HEAD":  # HEAD: detached, on no branch
        tags[GIT_BRANCH] = branch
    return tags


def outcome_note(result: dict) -> str:
    """A finished run's description: how it ended, and its test accuracy."""
    accuracy = f"test accuracy {result['test_accuracy']:.3f}"
    if result["status"] == "solved":
        return f"solved at step {result['steps_to_solve']}; {accuracy}"
    if result["status"] == "diverged":
        return f"diverged at step {result['diverged_step']}; {accuracy}"
    best = f"best validation accuracy {result['best_val_accuracy']:.3f}"
    return f"unsolved after {result['steps']} steps ({best}); {accuracy}"


def failure_note(error: BaseException, interrupted: bool) -> str:
    """A run's description when it ended without a result."""
    if interrupted:
        return "interrupted; the next sweep trains it again"
    first = tracking.first_line(error) if str(error).strip() else ""
    return f"failed: {type(error).__name__}: {first}"


def dataset_name(task: str, distance: int, seed: int) -> str:
    """``recall/d20_s1``: the data folder's name under ``data/<experiment>/``."""
    return f"{task}/d{distance}_s{seed}"


def datasets(name: str, folder: Path, manifest: dict, splits: dict) -> list:
    """One MLflow dataset input per split of the data folder ``folder``: ``name``, a digest from
    the manifest's SHA-256 of the split's file, the split as MLflow's context, the arrays'
    shapes and types as a tensor schema, and the row count. ``splits``: split name -> an object
    with tensors ``x`` and ``y`` (``data.Split``).
    """
    from mlflow.entities import Dataset, DatasetInput, InputTag

    out = []
    for split, context in CONTEXTS.items():
        entry, arrays = manifest["files"][split], splits[split]
        schema = {
            "mlflow_tensorspec": {
                "features": json.dumps([_tensor("x", arrays.x)]),
                "targets": json.dumps([_tensor("y", arrays.y)]),
            }
        }
        dataset = Dataset(
            name=name,
            digest=digest(manifest, split),
            source_type="local",
            source=json.dumps({"uri": (folder / entry["file"]).resolve().as_uri()}),
            schema=json.dumps(schema),
            profile=json.dumps({"num_rows": entry["x_shape"][0]}),
        )
        out.append(DatasetInput(dataset, tags=[InputTag(DATASET_CONTEXT, context)]))
    return out


def digest(manifest: dict, split: str) -> str:
    """The dataset digest of a split: the start of its file's SHA-256 in the data manifest."""
    return manifest["files"][split]["sha256"][:DIGEST_CHARS]


def _tensor(name: str, values) -> dict:
    """A tensor's entry in MLflow's tensor schema: any number of rows, then its own shape."""
    dtype = str(values.dtype).removeprefix("torch.")
    return {"name": name, "type": "tensor", "tensor-spec": {"dtype": dtype,
            "shape": [-1, *values.shape[1:]]}}  # fmt: skip


def log_datasets(client, run_id: str, name: str, folder: Path, manifest: dict, splits: dict):
    """Log the splits of ``folder`` as the run's dataset inputs (``datasets``): one call, about
    30 ms. Identical datasets (name and digest) are stored once per experiment: two workers
    storing the same one at once collide on that uniqueness, and the later one, retried, finds
    it stored and links it.
    """
    inputs = datasets(name, folder, manifest, splits)
    for attempt in range(RACES):
        try:
            return tracking.retry(lambda: client.log_inputs(run_id, datasets=inputs))
        except Exception as e:
            text = str(e).lower()  # SQLite's words, then PostgreSQL's
            if attempt == RACES - 1 or not ("unique constraint" in text or "duplicate key" in text):
                raise


RACES = 3  # tries of a dataset write that collided with another worker's same write


def model_name(run_key: str) -> str:
    """``recall-lstm_d20_s1``: a run key as a logged model's name, which may hold no ``/`` or
    ``.`` (``recall-tuning-rnn_lr0_003_d20_s100``).
    """
    return run_key.replace("/", "-").replace(".", "_").replace(":", "_").replace("%", "_")


def log_model(
    client, exp_id: str, run_id: str, run_key: str, folder: Path, step: int, params: dict, tags
) -> str:
    """Log ``folder`` (``model.pt``, a plain state dict, and ``spec.json``, the run's settings) as
    the logged model of run ``run_id`` at training step ``step``: it shows under the run's
    Logged models, in the Models column and on the experiment's Models tab. ``params``: what
    the model is (cell, width, task, ...); ``tags``: the run's source tags. Returns its id.

    MLflow's PyTorch flavor is not used: ``mlflow.pytorch.log_model`` pickles the module's code
    (or exports a program fixed to one sequence length, at seconds per model), while a state
    dict loads with ``torch.load(weights_only=True)`` into the pipeline's own model.
    """
    from mlflow.entities import LoggedModelOutput, LoggedModelStatus

    token = uuid.uuid4().hex  # a second model a retried request made holds it too
    model = tracking.retry(
        lambda: client.create_logged_model(
            exp_id,
            name=model_name(run_key),
            source_run_id=run_id,
            params={k: str(v) for k, v in params.items()},
            model_type="pipeline.models.SequenceModel",
            tags={**tags, tracking.RUN_KEY: run_key, tracking.CREATION: token},
        )
    )
    model_id = model.model_id
    twins = f"tags.{tracking.CREATION} = '{token}'"
    for other in tracking.retry(
        lambda: client.search_logged_models([exp_id], twins) if tracking.resends(client) else []
    ):
        if other.model_id != model_id:
            tracking.retry(lambda m=other.model_id: client.delete_logged_model(m))
    try:
        tracking.retry(lambda: client.log_model_artifacts(model_id, str(folder)))
    except BaseException:
        tracking.retry(lambda: client.finalize_logged_model(model_id, LoggedModelStatus.FAILED))
        raise
    tracking.retry(lambda: client.finalize_logged_model(model_id, LoggedModelStatus.READY))
    try:
        tracking.retry(lambda: client.log_outputs(run_id, [LoggedModelOutput(model_id, step)]))
    except Exception:  # refused as a duplicate when a retried request's first arrival landed
        outputs = tracking.retry(lambda: client.get_run(run_id)).outputs
        if not any(o.model_id == model_id for o in (outputs.model_outputs if outputs else [])):
            raise
    return model_id


@contextmanager
def system_metrics(client, run_id: str) -> Iterator[None]:
    """Within: MLflow's system metrics (``system/...``: CPU and memory use, disk, network) of
    this machine, sampled every ``SYSTEM_INTERVAL`` s, on the parent run ``run_id`` of a sweep
    whose runs train here (psutil, a dependency, measures them).

    On the parent, not on each run: MLflow measures the whole machine, so each of a sweep's
    parallel runs would carry the same machine-wide series, and a run shorter than the interval
    would record nothing (a sample is logged only once its interval has passed), while a 1 s
    interval costs over 1% of a run (``make bench`` measures the monitor's share of a core).
    """
    monitor = system_monitor(client, run_id, resume=True)  # a reused parent continues its steps
    try:
        yield
    finally:
        monitor.finish()  # before the run ends: the monitor stops at a run not RUNNING


def system_monitor(client, run_id: str, resume: bool = False):
    """MLflow's system-metrics monitor of run ``run_id``, every ``SYSTEM_INTERVAL`` s, started
    (``finish()`` it), without its INFO lines.
    """
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    for name in ("mlflow.system_metrics", "mlflow.system_metrics.system_metrics_monitor"):
        logging.getLogger(name).setLevel(logging.WARNING)
    monitor = SystemMetricsMonitor(
        run_id,
        sampling_interval=SYSTEM_INTERVAL,
        resume_logging=resume,
        tracking_uri=client.tracking_uri,
    )
    monitor.start()
    return monitor
