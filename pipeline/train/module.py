"""The LightningModule of a run: its training steps (several per Lightning batch), clipping, the
divergence rules, validation and early stopping, and the gradient probes taken along the way.
The plain network (``models.SequenceModel``) inside it knows nothing of Lightning.
"""

from __future__ import annotations

import logging
import math

import pytorch_lightning as pl
import torch
from torch import nn

from pipeline import mechanism
from pipeline.config.runs import RunSpec
from pipeline.config.training import TrainingConfig
from pipeline.models import SequenceModel
from pipeline.probe import ProbeRecord, Profile, gradient_profile

log = logging.getLogger(__name__)


class LitSequenceModel(pl.LightningModule):
    """Lightning around a plain ``SequenceModel``: the steps, clipping, validation and stopping.

    Each training batch holds several optimizer steps (``Steps``), taken one by one in
    ``training_step`` (manual optimization). Training metrics are averaged over windows of
    ``log_every`` steps; gradient norms are taken before clipping.
    """

    def __init__(self, spec: RunSpec, model: SequenceModel, probe_batch, run_log):
        super().__init__()
        self.automatic_optimization = False  # several steps per training_step
        self.spec, self.model, self.run_log = spec, model, run_log
        self.task = spec.task.build()
        self.probe_batch = probe_batch
        self.window: list[torch.Tensor] = []  # per step: [loss, accuracy, grad_norm]
        self.grad_norm_sum, self.grad_norm_steps = 0.0, 0
        self.val_sums = torch.zeros(3)  # loss * n, correct, n
        self.evals = 0
        self.best_val_accuracy, self.best_val_loss = 0.0, math.inf
        # a training window whose mean loss passes this has blown up (clipping did not hold it)
        baseline = self.task.baseline_loss(spec.distance)
        self.diverge_above = spec.training.diverge_loss_factor * baseline
        self.steps_to_solve: int | None = None
        self.diverged_step: int | None = None
        self.probes: list[ProbeRecord] = []

    def forward(self, x):
        return self.model(x)

    def probe(self, phase: str) -> None:
        """``probe_measures`` on the probe batch, kept as a ``ProbeRecord`` and logged (finite
        values only) as ``probe/...`` and ``mech/...`` at this step.
        """
        x, y = (t.to(self.device) for t in self.probe_batch)
        self.model.eval()
        profile, measures = probe_measures(self.model, self.task, x, y, self.spec.distance)
        self.model.train()
        kept = {name.removeprefix(mechanism.PREFIX): v for name, v in measures.items()}
        self.probes.append(ProbeRecord(phase, self.global_step, profile, kept))
        logged = {f"probe/{k}": v for k, v in profile.summary.items()} | measures
        self.run_log.add(self.global_step, **{k: v for k, v in logged.items() if math.isfinite(v)})

    def on_train_start(self) -> None:
        self.probe("init")

    def training_step(self, batch, batch_idx) -> None:
        optimizer = self.optimizers()
        for x, y in zip(*batch, strict=True):
            if not self._step(optimizer, x, y):
                return  # diverged: no further update

    def _step(self, optimizer, x, y) -> bool:
        """One update on one batch; False (and no update) when the loss or its gradient is not
        finite. A large but finite gradient is what clipping is for: it is clipped, not fatal.
        """
        out = self.model(x)
        loss = self.task.loss(out, y)
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        norm = clip_gradients(self.parameters(), self.spec.training)  # the norm before clipping
        loss_value, norm_value = torch.stack([loss.detach(), norm]).tolist()  # one sync
        why = step_blew_up(loss_value, norm_value)
        if why:
            return self._diverge(why)
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
            self.run_log.add(step, train_loss=loss, train_accuracy=acc, grad_norm=norm)
            self.window = []
            why = window_blew_up(loss, self.diverge_above)
            if why:
                self._diverge(why)

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
        self.best_val_loss = min(self.best_val_loss, loss_sum / n)
        self.run_log.add(step, val_loss=loss_sum / n, val_accuracy=accuracy)
        self.evals += 1
        if accuracy >= self.spec.training.solved_accuracy and self.steps_to_solve is None:
            self.steps_to_solve = step
            self.trainer.should_stop = True
        elif self.spec.probe.every_evals and self.evals % self.spec.probe.every_evals == 0:
            self.probe(f"step_{step}")
        self.run_log.flush(due_only=True)

    def configure_optimizers(self):
        return make_optimizer(self.spec.training, self.model.parameters())


def probe_measures(model: SequenceModel, task, x, y, distance: int) -> tuple[Profile, dict]:
    """What a probe measures on the batch ``(x, y)``: the gradient profile, and the mechanism's
    measures (``mechanism.metrics``, named ``mech/...``). The measures see the steps up to the
    scored one, as the profile's unroll does: later steps cannot reach the output that the gap
    is measured to.
    """
    profile = gradient_profile(model, task, x, y, distance)
    scored = x[:, : task.scored_step(distance) + 1]
    return profile, mechanism.metrics(model, scored, distance)


def step_blew_up(loss: float, grad_norm: float) -> str | None:
    """Why one step counts as diverged, or None: a non-finite loss, or a non-finite gradient (no
    finite update can be made from it). A large but finite pre-clip norm is not divergence: it is
    what clipping bounds, and the tanh RNN's exploding gradients are exactly that.
    """
    if not math.isfinite(loss):
        return "non-finite loss"
    if not math.isfinite(grad_norm):
        return "non-finite gradient"
    return None


def window_blew_up(mean_loss: float, limit: float) -> str | None:
    """Why a training-metric window counts as diverged, or None: its mean loss passed ``limit``
    (``diverge_loss_factor`` times the task's memoryless baseline loss), an explosion that
    clipping did not contain.
    """
    return f"window loss {mean_loss:.3g} above {limit:.3g}" if mean_loss > limit else None


def clip_gradients(parameters, t: TrainingConfig) -> torch.Tensor:
    """Clip the gradients of ``parameters`` as ``t`` says and return their global L2 norm before
    clipping. ``clip_mode`` ``norm`` scales the whole gradient down to norm ``grad_clip`` (none:
    unclipped); ``value`` clamps each element to [-grad_clip, grad_clip], which can also turn
    the gradient's direction.
    """
    parameters = list(parameters)
    if t.clip_mode == "norm":
        return nn.utils.clip_grad_norm_(parameters, t.grad_clip or math.inf)
    norm = nn.utils.get_total_norm([p.grad for p in parameters if p.grad is not None])
    nn.utils.clip_grad_value_(parameters, t.grad_clip)
    return norm


OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD, "rmsprop": torch.optim.RMSprop}


def make_optimizer(t: TrainingConfig, parameters) -> torch.optim.Optimizer:
    """The optimizer a run trains with (also the benchmark's plain loop's). RMSprop takes
    ``rmsprop_decay`` as its ``alpha`` where set: v = decay v + (1 - decay) g^2 from v = 0, and
    p -= lr g / (sqrt(v) + 1e-8).
    """
    options = {"alpha": t.rmsprop_decay} if t.rmsprop_decay is not None else {}
    return OPTIMIZERS[t.optimizer](parameters, lr=t.learning_rate, **options)


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
