"""Train one run (a task at one distance, a model variant, a seed) in Lightning, logged to MLflow.

``train_run(spec, runs)`` is the whole life of one run, and the unit every executor runs:

1. the run's data is loaded and checked; its MLflow run opens (RUNNING) with the run's identity
   and where it trains as tags (``runs.open``), every setting as a param, and the data's three
   splits as dataset inputs;
2. ``fit`` trains in Lightning until validation accuracy reaches ``solved_accuracy``, the loss or
   the gradient blows up (diverged), or ``max_steps``; the gradient probe runs before the first
   update, every ``probe.every_evals`` validations and after training, and with it the
   mechanism's measures (``mechanism.metrics``: W's spectrum, the keep gate's time constants);
3. the test split is scored, then the trained model, forward only, on fresh sequences at
   other distances (``extrapolate``: half, twice and four times its own), and the outcome
   (final metrics, probe curves, a one-line description, artifacts, the logged model) is
   recorded (``RunLog.outcome``);
4. the result file is written to a temporary name, the run is marked FINISHED, and the file is
   renamed into place. A run that fails is marked FAILED and leaves no result file; a run that
   is interrupted is marked KILLED.

Every write to MLflow goes through the run's ``RunLog`` (``tracking.run_log``).
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
import warnings
from pathlib import Path

import pytorch_lightning as pl
import torch

from pipeline import data
from pipeline.config.runs import (
    EXTRAPOLATION_FACTORS,
    Extrapolation,
    RunResult,
    RunSpec,
    extrapolation_distance,
    factor_label,
    result_path,
)
from pipeline.models import SequenceModel
from pipeline.tracking.names import CODE_VERSION
from pipeline.tracking.run_log import dataset_name, digest
from pipeline.tracking.source import environment
from pipeline.train.batches import Chunks, steps_per_call, train_batches
from pipeline.train.module import LitSequenceModel, batch_sums
from pipeline.train.saved import build_model, save_model

log = logging.getLogger(__name__)


def set_deterministic_env() -> None:
    """Deterministic cuBLAS on a GPU (Trainer(deterministic=True) refuses to run without it)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


set_deterministic_env()


EVAL_BATCH = 1000  # sequences per forward pass in validation and test


def evaluate(model: SequenceModel, task, split: data.Split, device, batch: int = EVAL_BATCH):
    """Mean loss and accuracy of ``model`` on a whole split, ``batch`` sequences at a time."""
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
    spec: RunSpec, splits: dict, run_log, accelerator: str = "auto", callbacks=()
) -> tuple[LitSequenceModel, pl.Trainer]:
    """Build the run's model (seeded) and train it in Lightning on ``splits``; returns the trained
    module and its trainer; ``run_log`` takes its metrics. ``callbacks`` join the Trainer's (the
    benchmark's clock).
    """
    pl.seed_everything(spec.seed, workers=False, verbose=False)
    model = build_model(spec)
    val = splits["val"]
    probe_batch = (val.x[: spec.probe.batch_size], val.y[: spec.probe.batch_size])
    lit = LitSequenceModel(spec, model, probe_batch, run_log)
    trainer = make_trainer(spec, accelerator, callbacks)
    trainer.fit(
        lit,
        train_dataloaders=train_batches(spec, splits["train"]),
        val_dataloaders=Chunks(val, EVAL_BATCH),
    )
    return lit, trainer


def train_run(spec: RunSpec, runs, accelerator: str = "auto") -> RunResult:
    """Train, probe and record one run in ``runs`` (``MlflowRuns``, or ``MemoryRuns`` in tests);
    returns its result, also written to its result file.

    Raises DataError for bad data files; any later failure marks the run FAILED (KILLED on
    interruption; left RUNNING for the next sweep to close when the store does not answer) and
    leaves no result file.
    """
    _quiet_lightning()
    folder = data.folder(spec.experiment, spec.task, spec.distance, spec.seed)
    splits = data.load_run_data(spec.experiment, spec.task, spec.distance, spec.seed)
    listing = data.manifest(folder)
    identity = {k: str(v) for k, v in spec.identity().items()}
    run_log = runs.open(spec.title, {**identity, **environment(_device(accelerator))})
    path = result_path(spec)
    try:
        run_log.params(spec.params())
        name = dataset_name(spec.task.task, spec.distance, spec.seed)
        run_log.datasets(name, folder, listing, splits)
        started = time.perf_counter()
        try:
            lit, trainer = fit(spec, splits, run_log, accelerator)
        except SystemExit:  # Lightning turns Ctrl-C (and our SIGTERM) into sys.exit(1)
            raise KeyboardInterrupt("interrupted during training") from None
        lit.probe("final")
        test_loss, test_accuracy = evaluate(lit.model, lit.task, splits["test"], lit.device)
        extrapolation = extrapolate(spec, lit.model, lit.device)
        result = RunResult(
            run_id=run_log.run_id,
            **spec.identity(),
            code_version=runs.tags.get(CODE_VERSION),
            **_outcome(spec, lit, trainer.global_step),
            test_accuracy=test_accuracy,
            test_loss=_finite_or_none(test_loss),
            extrapolation=extrapolation,
            wall_time=time.perf_counter() - started,
            environment=environment(_device(accelerator)),
        )
        with tempfile.TemporaryDirectory() as tmp:
            model_folder = save_model(Path(tmp), spec, lit.model)
            run_log.outcome(spec, result, lit.probes, model_folder, (name, digest(listing, "test")))
        tmp = result.stage(path)  # fails here (disk full): the run is not FINISHED
        run_log.finish()
        os.replace(tmp, path)
        return result
    except BaseException as e:
        run_log.fail(e, interrupted=isinstance(e, KeyboardInterrupt | SystemExit))
        raise


def extrapolate(spec: RunSpec, model, device) -> dict[str, Extrapolation]:
    """The trained ``model`` scored, forward only, at each of ``EXTRAPOLATION_FACTORS`` times
    the run's distance (``extrapolation_distance``), keyed by ``factor_label``; a factor whose
    distance comes out as the run's own is left out (not an extrapolation).

    Each distance gets ``data.n_test`` fresh sequences (``data.extrapolation_split``): as many
    as the test split, so each factor's accuracy has the sampling error of the test accuracy it
    is compared with, and no more, since a sequence four times as long costs about four times
    as much (the three sets together, about 6.5 times the test split's forward pass). They are
    scored with as many steps per forward pass as the test split was, so a longer sequence
    takes no more memory.
    """
    task, out = spec.task.build(), {}
    for factor in EXTRAPOLATION_FACTORS:
        distance = extrapolation_distance(spec.distance, factor, task.min_distance)
        if distance == spec.distance:
            continue
        split = data.extrapolation_split(spec.task, distance, spec.seed, spec.data.n_test)
        batch = max(1, EVAL_BATCH * task.length(spec.distance) // task.length(distance))
        loss, accuracy = evaluate(model, task, split, device, batch)
        out[factor_label(factor)] = Extrapolation(
            distance=distance,
            n=len(split.y),
            accuracy=accuracy,
            loss=_finite_or_none(loss),
            chance_accuracy=task.chance_accuracy(distance),
        )
    return out


def _outcome(spec: RunSpec, lit: LitSequenceModel, steps: int) -> dict:
    """How the trained module's run ended: status, steps, validation and probe summaries."""
    task = lit.task
    diverged = lit.diverged_step is not None
    solved = lit.steps_to_solve is not None and not diverged
    init, final = lit.probes[0], lit.probes[-1]
    return {
        "status": "diverged" if diverged else "solved" if solved else "unsolved",
        "solved": solved,
        "steps": steps,
        "steps_to_solve": lit.steps_to_solve,
        "diverged_step": lit.diverged_step,
        "best_val_accuracy": lit.best_val_accuracy,
        "best_val_loss": _finite_or_none(lit.best_val_loss),
        "chance_accuracy": task.chance_accuracy(spec.distance),
        "baseline_loss": task.baseline_loss(spec.distance),
        "mean_grad_norm": _finite_or_none(lit.grad_norm_sum / max(lit.grad_norm_steps, 1)),
        "probe_init": _finite_values(init.profile.summary),
        "probe_final": _finite_values(final.profile.summary),
        "mech_init": _finite_values(init.mechanism),
        "mech_final": _finite_values(final.mechanism),
    }


def _device(accelerator: str) -> str:
    """The device Lightning's ``accelerator`` resolves to, as ``environment`` names it."""
    if accelerator in ("auto", "gpu", "cuda") and torch.cuda.is_available():
        return f"cuda:{torch.cuda.current_device()}"
    return "cpu"


def _finite_or_none(v: float) -> float | None:
    return v if math.isfinite(v) else None


def _finite_values(values: dict[str, float]) -> dict[str, float | None]:
    """``values`` with None for each one that is not finite (JSON has no inf)."""
    return {k: _finite_or_none(v) for k, v in values.items()}
