"""Train one run (a task at one distance, a model variant, a seed) in Lightning, logged to MLflow.

``train_run(spec, ...)`` is the whole life of one run, and the unit every executor runs:

1. an MLflow run opens (RUNNING) with every setting as a param, the run's identity as tags (and
   the sweep's: its code, its user, the parent run it nests under), and its data's three
   splits as dataset inputs (``conventions``);
2. ``fit`` trains in Lightning until validation accuracy reaches ``solved_accuracy``, the loss or
   the gradient blows up (diverged), or ``max_steps``; the gradient probe runs before the first
   update, every ``probe.every_evals`` validations and after training;
3. the test split is scored, and the outcome (final metrics, probe curves, a one-line
   description, artifacts, the logged model) is recorded (``record.log_outcome``);
4. the result file is written to a temporary name, the run is marked FINISHED, and the file is
   renamed into place. A run that fails is marked FAILED and leaves no result file; a run that
   is interrupted is marked KILLED.

Batches come from ``batches``, the MLflow writes go through ``record``.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import tempfile
import time
import warnings
from pathlib import Path

import pytorch_lightning as pl
import torch
from mlflow.entities import Param

from pipeline import conventions, data, layout, paths, tracking
from pipeline.batches import Chunks, steps_per_call, train_batches
from pipeline.files import stage_json
from pipeline.learner import LitSequenceModel, batch_sums
from pipeline.models import SequenceModel
from pipeline.record import Recorder, environment, load_weights, log_outcome
from pipeline.runs import RunSpec

log = logging.getLogger(__name__)


def set_deterministic_env() -> None:
    """Deterministic cuBLAS on a GPU (Trainer(deterministic=True) refuses to run without it)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


set_deterministic_env()


def build_model(spec: RunSpec) -> SequenceModel:
    task = spec.task.build()
    return SequenceModel(
        cell=spec.model.cell,
        n_inputs=task.n_inputs,
        n_outputs=task.n_outputs,
        hidden_size=spec.hidden_size,
        readout=task.readout,
        tokens=task.tokens,
        **spec.model_options(),
    )


def evaluate(model: SequenceModel, task, split: data.Split, device, batch: int = 1000):
    """Mean loss and accuracy of ``model`` on a whole split."""
    sums, model_was_training = torch.zeros(3), model.training
    model.eval()
    with torch.inference_mode():
        for x, y in Chunks(split, batch):
            sums += batch_sums(task, model(x.to(device)), y.to(device))
    model.train(model_was_training)
    loss_sum, correct, n = sums.tolist()
    return loss_sum / n, correct / n


def make_trainer(spec: RunSpec, accelerator: str = "auto", callbacks=()) -> pl.Trainer:
    t = spec.training
    return pl.Trainer(
        callbacks=list(callbacks),
        accelerator=accelerator,
        devices=1,
        max_steps=t.max_steps,
        max_epochs=-1,
        val_check_interval=t.eval_every // steps_per_call(t),  # in training batches
        check_val_every_n_epoch=None,
        num_sanity_val_steps=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        deterministic=True,
    )


def _quiet_lightning() -> None:
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*GPU available but not used.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*")


def fit(
    spec: RunSpec, splits: dict, recorder: Recorder, accelerator: str = "auto", callbacks=()
) -> tuple[LitSequenceModel, pl.Trainer]:
    """Build the run's model (seeded) and train it in Lightning on ``splits``; returns the trained
    module and its trainer. ``callbacks`` join the Trainer's (the benchmark's clock).
    """
    pl.seed_everything(spec.seed, workers=False, verbose=False)
    model = build_model(spec)
    val = splits["val"]
    probe_batch = (val.x[: spec.probe.batch_size], val.y[: spec.probe.batch_size])
    lit = LitSequenceModel(spec, model, probe_batch, recorder)
    trainer = make_trainer(spec, accelerator, callbacks)
    trainer.fit(
        lit,
        train_dataloaders=train_batches(spec, splits["train"]),
        val_dataloaders=Chunks(val, 1000),
    )
    return lit, trainer


def train_run(
    spec: RunSpec, client, exp_id: str, tags: dict[str, str], accelerator: str = "auto"
) -> dict:
    """Train, probe and record one run; returns its result (also written to its result file).

    Raises data.DataError for bad data files; any failure marks the MLflow run FAILED (KILLED on
    interruption; left RUNNING for the next sweep to close when the store does not answer) and
    leaves no result file.
    """
    _quiet_lightning()
    folder = data.folder(spec.experiment, spec.task, spec.distance, spec.seed)
    splits = data.load_run_data(spec.experiment, spec.task, spec.distance, spec.seed)
    identity = {k: str(v) for k, v in spec.identity().items()}
    where = environment(_device(accelerator))
    run = layout.create_run(client, exp_id, spec.title, {**tags, **identity, **where})
    run_id = run.info.run_id
    path = paths.result_file(spec.experiment, spec.key)
    try:
        name = conventions.dataset_name(spec.task.task, spec.distance, spec.seed)
        listing = data.manifest(folder)
        conventions.log_datasets(client, run_id, name, folder, listing, splits)
        recorder = Recorder(client, run_id)
        result, lit = _train(spec, splits, recorder, tags, accelerator)
        source = {k: v for k, v in tags.items() if k != layout.PARENT_RUN}
        test_set = (name, conventions.digest(listing, "test"))
        log_outcome(recorder, spec, lit.model, lit.profiles, result, exp_id, source, test_set)
        tmp = stage_json(path, result)  # fails here (disk full): the run is not FINISHED
        layout.drop_duplicates(client, exp_id, run)  # one whose creation was held up
        tracking.retry(lambda: client.set_terminated(run_id, "FINISHED"))
        os.replace(tmp, path)
        return result
    except BaseException as e:
        interrupted = isinstance(e, KeyboardInterrupt | SystemExit)
        _close(client, run_id, "KILLED" if interrupted else "FAILED", e, interrupted)
        raise


def _close(client, run_id: str, status: str, error: BaseException, interrupted: bool) -> None:
    """End a run that did not finish as ``status``, with its error as a tag and a description
    saying why, or leave it RUNNING when the store cannot be reached at once: the next sweep
    closes it (``close_stale_runs``), and an interrupted or failing run does not wait out a lost
    server's retries once more.
    """
    tags = {
        "error": tracking.redact(repr(error))[:4000],
        layout.NOTE: conventions.failure_note(error, interrupted),
    }
    with contextlib.suppress(Exception), tracking.fail_fast():
        layout.close_run(client, run_id, status, tags)


def _train(
    spec: RunSpec, splits: dict, recorder: Recorder, tags: dict, accelerator: str
) -> tuple[dict, LitSequenceModel]:
    """Train, probe and score one run; returns its result and the trained module."""
    started = time.perf_counter()
    params = [Param(k, str(v)) for k, v in spec.params().items()]
    tracking.retry(lambda: recorder.client.log_batch(recorder.run_id, params=params))
    try:
        lit, trainer = fit(spec, splits, recorder, accelerator)
    except SystemExit:  # Lightning turns Ctrl-C (and our SIGTERM) into sys.exit(1)
        raise KeyboardInterrupt("interrupted during training") from None
    lit.probe("final")
    task = lit.task
    test_loss, test_accuracy = evaluate(lit.model, task, splits["test"], lit.device)
    diverged = lit.diverged_step is not None
    solved = lit.steps_to_solve is not None and not diverged
    init, final = lit.profiles[0][2].summary, lit.profiles[-1][2].summary
    result = {
        "run_id": recorder.run_id,
        **spec.identity(),
        tracking.CODE_VERSION: tags.get(tracking.CODE_VERSION),
        "status": "diverged" if diverged else "solved" if solved else "unsolved",
        "solved": solved,
        "steps": trainer.global_step,
        "steps_to_solve": lit.steps_to_solve,
        "diverged_step": lit.diverged_step,
        "test_accuracy": test_accuracy,
        "test_loss": test_loss,
        "best_val_accuracy": lit.best_val_accuracy,
        "best_val_loss": _finite_or_none(lit.best_val_loss),
        "chance_accuracy": task.chance_accuracy(spec.distance),
        "baseline_loss": task.baseline_loss(spec.distance),
        "mean_grad_norm": lit.grad_norm_sum / max(lit.grad_norm_steps, 1),
        "wall_time": time.perf_counter() - started,
        "environment": environment(_device(accelerator)),
        **{f"probe_init_{k}": _finite_or_none(v) for k, v in init.items()},
        **{f"probe_final_{k}": _finite_or_none(v) for k, v in final.items()},
    }
    return result, lit


def load_model(model_id: str, uri: str | None = None) -> tuple[RunSpec, SequenceModel]:
    """The logged model ``model_id`` (``m-...``, a run's Models entry in the UI) of the tracking
    store ``uri`` (default: the pipeline's): the run's settings and its trained network, in eval
    mode. The weights are read without unpickling code (``record.load_weights``); raises
    WeightsError for any other file.
    """
    import mlflow.artifacts

    client = tracking.client(uri)
    location = tracking.retry(lambda: client.get_logged_model(model_id)).artifact_location
    with tempfile.TemporaryDirectory() as tmp:
        folder = mlflow.artifacts.download_artifacts(
            artifact_uri=location, dst_path=tmp, tracking_uri=client.tracking_uri
        )
        return load_model_folder(folder)


def load_model_folder(folder: str | Path) -> tuple[RunSpec, SequenceModel]:
    """``load_model`` of a logged model's files in ``folder`` (``model.pt``, ``spec.json``)."""
    folder = Path(folder)
    spec = RunSpec.model_validate_json((folder / "spec.json").read_text())
    model = build_model(spec)
    model.load_state_dict(load_weights(folder / "model.pt"))
    return spec, model.eval()


def _device(accelerator: str) -> str:
    """The device Lightning's ``accelerator`` resolves to, as ``environment`` names it."""
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return f"cuda:{torch.cuda.current_device()}"
    return "cpu"


def _finite_or_none(v: float) -> float | None:
    return v if math.isfinite(v) else None
