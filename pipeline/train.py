"""Train one run (a task at one distance, a model variant, a seed) in Lightning, logged to MLflow.

``train_run(spec, ...)`` is the whole life of one run, and the unit every executor runs:

1. an MLflow run opens (RUNNING) with every setting as a param and the run's identity as tags;
2. Lightning trains until validation accuracy reaches ``solved_accuracy``, the loss or the
   gradient blows up (diverged), or ``max_steps``; the gradient probe runs before the first
   update, every ``probe.every_evals`` validations and after training;
3. the test split is scored, final metrics and artifacts (config, weights, probe curves, the
   result) are logged;
4. the result file is written to a temporary name, the run is marked FINISHED, and the file is
   renamed into place. A run that fails is marked FAILED and leaves no result file; a run that
   is interrupted is marked KILLED.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import tempfile
import time
import warnings
from pathlib import Path

import pytorch_lightning as pl
import torch
import yaml
from mlflow.entities import Metric, Param, RunTag
from torch import nn

from pipeline import data, paths, tracking
from pipeline.config import RunSpec
from pipeline.errors import WeightsError
from pipeline.files import stage_json
from pipeline.models import SequenceModel
from pipeline.probe import Profile, gradient_profile

log = logging.getLogger(__name__)


def set_deterministic_env() -> None:
    """Deterministic cuBLAS on a GPU (Trainer(deterministic=True) refuses to run without it)."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


set_deterministic_env()


class Batches:
    """Endless shuffled mini-batches of a split, from the run's own generator (one epoch is one
    pass over a fresh permutation). No per-sample collation: a batch is one index of the tensors.
    """

    def __init__(self, split: data.Split, batch_size: int, seed: int) -> None:
        self.split, self.batch_size, self.seed = split, batch_size, seed

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed)
        n = len(self.split.y)
        while True:
            order = torch.randperm(n, generator=g)
            for start in range(0, n - self.batch_size + 1, self.batch_size):
                idx = order[start : start + self.batch_size]
                yield self.split.x[idx], self.split.y[idx]


class Steps:
    """The training batches of a run, ``per_call`` optimizer steps at a time: each item stacks
    the next ``k <= per_call`` batches of ``Batches`` (x: [k, B, ...], y: [k, B, ...]), and there
    are ``total`` batches in all. The same batches, in the same order, as one a step.

    Lightning's loop costs about 0.4 ms of hooks per training batch on this project's 2-core
    machine, against 3.3 ms for a whole step of the default RNN at distance 20; handed several
    steps at once (``LitSequenceModel.training_step`` takes them one by one), it pays that once
    per group.
    """

    def __init__(self, batches: Batches, per_call: int, total: int) -> None:
        self.batches, self.per_call, self.total = batches, per_call, total

    def __iter__(self):
        batches, left = iter(self.batches), self.total
        while left > 0:
            k = min(self.per_call, left)
            xs, ys = zip(*(next(batches) for _ in range(k)), strict=True)
            yield torch.stack(xs), torch.stack(ys)
            left -= k


def steps_per_call(t) -> int:
    """Optimizer steps per Lightning training batch: the largest group that ends on every
    validation (``eval_every``) and every training-metric write (``log_every``), so both fall
    exactly where they would with one step a batch.
    """
    return math.gcd(t.eval_every, t.log_every)


def train_batches(spec: RunSpec, split: data.Split) -> Steps:
    t = spec.training
    return Steps(Batches(split, t.batch_size, spec.seed), steps_per_call(t), t.max_steps)


class Chunks:
    """A split in consecutive batches of ``size``: one pass, in order (validation and test)."""

    def __init__(self, split: data.Split, size: int) -> None:
        self.split, self.size = split, size

    def __len__(self) -> int:
        return math.ceil(len(self.split.y) / self.size)

    def __iter__(self):
        for i in range(0, len(self.split.y), self.size):
            yield self.split.x[i : i + self.size], self.split.y[i : i + self.size]


class Recorder:
    """Buffers metric points and writes them to MLflow in batches, so logging costs a small share
    of a step: a write per step roughly doubles a small LSTM's step. A write to the SQLite store
    is a commit (an fsync, about 20 ms here, as long as 5 small-RNN steps), so validations write
    at most every ``interval`` seconds (``flush(due_only=True)``); the run's end writes the rest.
    """

    def __init__(self, client, run_id: str, interval: float = 5.0) -> None:
        self.client, self.run_id, self.points = client, run_id, []
        self.interval, self.written_at = interval, time.monotonic()

    def add(self, step: int, **values: float) -> None:
        stamp = int(time.time() * 1000)
        self.points += [Metric(k, float(v), stamp, step) for k, v in values.items()]

    def flush(self, due_only: bool = False) -> None:
        """Write the buffered points (with ``due_only``: only once ``interval`` s have passed)."""
        if due_only and time.monotonic() - self.written_at < self.interval:
            return
        for start in range(0, len(self.points), 1000):  # MLflow's batch limit
            batch = self.points[start : start + 1000]
            tracking.retry(lambda b=batch: self.client.log_batch(self.run_id, metrics=b))
        self.points = []
        self.written_at = time.monotonic()


class LitSequenceModel(pl.LightningModule):
    """Lightning around a plain ``SequenceModel``: the steps, clipping, validation and stopping.

    Each training batch holds several optimizer steps (``Steps``), taken one by one in
    ``training_step`` (manual optimization). Training metrics are averaged over windows of
    ``log_every`` steps; gradient norms are taken before clipping.
    """

    def __init__(self, spec: RunSpec, model: SequenceModel, probe_batch, recorder: Recorder):
        super().__init__()
        self.automatic_optimization = False  # several steps per training_step
        self.spec, self.model, self.recorder = spec, model, recorder
        self.task = spec.task.build()
        self.probe_batch = probe_batch
        self.window: list[torch.Tensor] = []  # per step: [loss, accuracy, grad_norm]
        self.grad_norm_sum, self.grad_norm_steps = 0.0, 0
        self.val_sums = torch.zeros(3)  # loss * n, correct, n
        self.evals = 0
        self.best_val_accuracy = 0.0
        self.steps_to_solve: int | None = None
        self.diverged_step: int | None = None
        self.profiles: list[tuple[str, int, Profile]] = []

    def forward(self, x):
        return self.model(x)

    def probe(self, phase: str) -> None:
        x, y = self.probe_batch
        self.model.eval()
        profile = gradient_profile(
            self.model, self.task, x.to(self.device), y.to(self.device), self.spec.distance
        )
        self.model.train()
        self.profiles.append((phase, self.global_step, profile))
        self.recorder.add(
            self.global_step,
            **{f"probe/{k}": v for k, v in profile.summary.items() if math.isfinite(v)},
        )

    def on_train_start(self) -> None:
        self.probe("init")

    def training_step(self, batch, batch_idx) -> None:
        optimizer = self.optimizers()
        for x, y in zip(*batch, strict=True):
            if not self._step(optimizer, x, y):
                return  # diverged: no further update

    def _step(self, optimizer, x, y) -> bool:
        """One update on one batch; False (and no update) when the loss or gradient blew up."""
        out = self.model(x)
        loss = self.task.loss(out, y)
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        clip = self.spec.training.grad_clip or math.inf
        norm = nn.utils.clip_grad_norm_(self.parameters(), clip)  # the norm before clipping
        loss_value, norm_value = torch.stack([loss.detach(), norm]).tolist()  # one sync
        if not math.isfinite(loss_value):
            return self._diverge("non-finite loss")
        if not math.isfinite(norm_value) or norm_value > self.spec.training.diverge_grad_norm:
            return self._diverge(f"gradient norm {norm_value:.3g}")
        optimizer.step()
        self.grad_norm_sum += norm_value
        self.grad_norm_steps += 1
        accuracy = self.task.correct(out.detach(), y).mean()
        self.window.append(torch.stack([loss.detach(), accuracy, norm.detach()]))
        return True

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        step = self.global_step
        if self.window and (step % self.spec.training.log_every == 0 or self.trainer.should_stop):
            loss, acc, norm = torch.stack(self.window).mean(0).tolist()
            self.recorder.add(step, train_loss=loss, train_accuracy=acc, grad_norm=norm)
            self.window = []

    def _diverge(self, why: str) -> bool:
        if self.diverged_step is None:
            self.diverged_step = self.global_step
            log.info("%s diverged at step %d: %s", self.spec.key, self.global_step, why)
        self.trainer.should_stop = True
        return False

    def validation_step(self, batch, batch_idx) -> None:
        x, y = batch
        self.val_sums += batch_sums(self.task, self.model(x), y)

    def on_validation_epoch_end(self) -> None:
        loss_sum, correct, n = self.val_sums.tolist()
        self.val_sums.zero_()
        accuracy, step = correct / n, self.global_step
        self.best_val_accuracy = max(self.best_val_accuracy, accuracy)
        self.recorder.add(step, val_loss=loss_sum / n, val_accuracy=accuracy)
        self.evals += 1
        if accuracy >= self.spec.training.solved_accuracy and self.steps_to_solve is None:
            self.steps_to_solve = step
            self.trainer.should_stop = True
        elif self.spec.probe.every_evals and self.evals % self.spec.probe.every_evals == 0:
            self.probe(f"step_{step}")
        self.recorder.flush(due_only=True)

    def configure_optimizers(self):
        t = self.spec.training
        optimizers = {
            "adam": torch.optim.Adam,
            "sgd": torch.optim.SGD,
            "rmsprop": torch.optim.RMSprop,
        }
        return optimizers[t.optimizer](self.model.parameters(), lr=t.learning_rate)


def build_model(spec: RunSpec) -> SequenceModel:
    task = spec.task.build()
    return SequenceModel(
        cell=spec.model.cell,
        n_inputs=task.n_inputs,
        n_outputs=task.n_outputs,
        hidden_size=spec.hidden_size,
        readout=task.readout,
        tokens=spec.task.task != "adding",
        forget_bias=spec.forget_bias,
        chrono_t_max=spec.model.chrono_t_max,
    )


def batch_sums(task, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``[loss * n, correct, n]`` of one batch, on the CPU: sums that add up over batches."""
    n = len(y)
    return torch.stack(
        [
            task.loss(out, y).detach().cpu() * n,
            task.correct(out.detach(), y).sum().cpu(),
            torch.tensor(float(n)),
        ]
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


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a ``model.pt`` artifact as a state dict of tensors, never unpickling code.

    Raises WeightsError naming the file when it is unreadable, holds anything but a mapping of
    names to tensors, or would need arbitrary code to load (``weights_only=True`` refuses it).
    """
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as e:  # UnpicklingError for code, RuntimeError/EOFError for bad files
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise WeightsError(f"{path}: not a plain state dict ({first[:200]})") from None
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise WeightsError(f"{path}: not a state dict (expected names -> tensors)")
    return state


def make_trainer(spec: RunSpec, accelerator: str = "auto") -> pl.Trainer:
    t = spec.training
    return pl.Trainer(
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


def _profiles_csv(path: Path, profiles) -> None:
    with open(path, "w", newline="") as f:
        writer = None
        for phase, step, profile in profiles:
            for row in profile.rows():
                row = {"phase": phase, "step": step, **row}
                if writer is None:
                    writer = csv.DictWriter(f, fieldnames=list(row))
                    writer.writeheader()
                writer.writerow(row)


def _curve_metrics(profiles) -> list[Metric]:
    """The init and final curves as metric histories whose step is k (chartable in the UI)."""
    stamp, out = int(time.time() * 1000), []
    for phase, _, profile in profiles:
        if phase not in ("init", "final"):
            continue
        for state, stats in (("h", profile.h), ("c", profile.c)):
            if stats is None:
                continue
            out += [
                Metric(f"probe_curve/{phase}/{state}", v, stamp, k)
                for k, v in zip(profile.k, stats["median"], strict=True)
                if math.isfinite(v)
            ]
    return out


def _quiet_lightning() -> None:
    for name in ("pytorch_lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    warnings.filterwarnings("ignore", ".*GPU available but not used.*")
    warnings.filterwarnings("ignore", ".*LeafSpec.*")


def train_run(
    spec: RunSpec, client, exp_id: str, tags: dict[str, str], accelerator: str = "auto"
) -> dict:
    """Train, probe and record one run; returns its result (also written to its result file).

    Raises data.DataError for bad data files; any failure marks the MLflow run FAILED (KILLED on
    interruption) and leaves no result file.
    """
    _quiet_lightning()
    splits = data.load_run_data(spec.experiment, spec.task, spec.distance, spec.seed)
    run = tracking.retry(
        lambda: client.create_run(
            exp_id,
            run_name=spec.title,
            tags={
                **tags,
                "experiment": spec.experiment,
                "task": spec.task.task,
                "model": spec.model.name,
                "cell": spec.model.cell,
                "distance": str(spec.distance),
                "seed": str(spec.seed),
                tracking.RUN_KEY: spec.key,
                tracking.CONFIG_HASH: spec.config_hash,
            },
        )
    )
    run_id = run.info.run_id
    path = paths.result_file(spec.experiment, spec.key)
    try:
        result = _train(spec, splits, client, run_id, tags, accelerator)
        tmp = stage_json(path, result)  # fails here (disk full): the run is not FINISHED
        tracking.retry(lambda: client.set_terminated(run_id, "FINISHED"))
        os.replace(tmp, path)
        return result
    except BaseException as e:
        status = "KILLED" if isinstance(e, KeyboardInterrupt | SystemExit) else "FAILED"
        error = RunTag("error", repr(e)[:4000])
        try:
            tracking.retry(lambda: client.log_batch(run_id, tags=[error]))
            tracking.retry(lambda: client.set_terminated(run_id, status))
        finally:
            raise


def _train(spec: RunSpec, splits: dict, client, run_id: str, tags: dict, accelerator: str) -> dict:
    started = time.perf_counter()
    params = spec.params()
    tracking.retry(
        lambda: client.log_batch(run_id, params=[Param(k, str(v)) for k, v in params.items()])
    )
    pl.seed_everything(spec.seed, workers=False, verbose=False)
    model = build_model(spec)
    task = spec.task.build()
    recorder = Recorder(client, run_id)
    val = splits["val"]
    probe_batch = (val.x[: spec.probe.batch_size], val.y[: spec.probe.batch_size])
    lit = LitSequenceModel(spec, model, probe_batch, recorder)
    trainer = make_trainer(spec, accelerator)
    try:
        trainer.fit(
            lit,
            train_dataloaders=train_batches(spec, splits["train"]),
            val_dataloaders=Chunks(val, 1000),
        )
    except SystemExit:  # Lightning turns Ctrl-C (and our SIGTERM) into sys.exit(1)
        raise KeyboardInterrupt("interrupted during training") from None
    lit.probe("final")
    test_loss, test_accuracy = evaluate(model, task, splits["test"], lit.device)
    steps = trainer.global_step
    diverged = lit.diverged_step is not None
    solved = lit.steps_to_solve is not None and not diverged
    final = {p: v for p, v in lit.profiles[-1][2].summary.items()}
    init = {p: v for p, v in lit.profiles[0][2].summary.items()}
    result = {
        "run_id": run_id,
        tracking.RUN_KEY: spec.key,
        tracking.CONFIG_HASH: spec.config_hash,
        tracking.CODE_VERSION: tags.get(tracking.CODE_VERSION),
        "experiment": spec.experiment,
        "task": spec.task.task,
        "model": spec.model.name,
        "cell": spec.model.cell,
        "distance": spec.distance,
        "seed": spec.seed,
        "status": "diverged" if diverged else "solved" if solved else "unsolved",
        "solved": solved,
        "steps": steps,
        "steps_to_solve": lit.steps_to_solve,
        "diverged_step": lit.diverged_step,
        "test_accuracy": test_accuracy,
        "test_loss": test_loss,
        "best_val_accuracy": lit.best_val_accuracy,
        "chance_accuracy": task.chance_accuracy(spec.distance),
        "baseline_loss": task.baseline_loss(spec.distance),
        "mean_grad_norm": lit.grad_norm_sum / max(lit.grad_norm_steps, 1),
        "wall_time": time.perf_counter() - started,
        **{f"probe_init_{k}": _finite_or_none(v) for k, v in init.items()},
        **{f"probe_final_{k}": _finite_or_none(v) for k, v in final.items()},
    }
    _log_outcome(client, run_id, spec, model, lit, result)
    return result


def _finite_or_none(v: float) -> float | None:
    return v if math.isfinite(v) else None


def _log_outcome(client, run_id, spec, model, lit, result) -> None:
    numbers = {
        k: float(v)
        for k, v in result.items()
        if isinstance(v, int | float)
        and not isinstance(v, bool)
        and v is not None
        and k not in ("distance", "seed")
    }
    numbers |= {
        "solved": float(result["solved"]),
        "diverged": float(result["diverged_step"] is not None),
    }
    stamp = int(time.time() * 1000)
    metrics = [Metric(k, v, stamp, result["steps"]) for k, v in numbers.items() if math.isfinite(v)]
    metrics += _curve_metrics(lit.profiles)
    lit.recorder.points += metrics
    lit.recorder.flush()
    tracking.retry(lambda: client.set_tag(run_id, "status", result["status"]))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "config.yaml").write_text(yaml.safe_dump(spec.params(), sort_keys=False))
        torch.save({k: v.cpu() for k, v in model.state_dict().items()}, tmp / "model.pt")
        _profiles_csv(tmp / "probe.csv", lit.profiles)
        (tmp / "result.json").write_text(json.dumps(result, indent=2, sort_keys=True))
        tracking.retry(lambda: client.log_artifacts(run_id, str(tmp)))
