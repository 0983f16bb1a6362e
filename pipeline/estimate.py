"""How long an experiment's unfinished runs will train on this machine, measured before they start.

``calibrate(specs)`` trains each distinct model and length among ``specs`` (cell, width, inputs,
task and distance, batch, optimizer, clipping: what sets the cost of an update) for a moment
through ``train.run.fit``, the function every run trains in, on a small data set of its own task
made in memory, recording nowhere (``MemoryRuns``). It measures, with one torch thread as a sweep
worker has:

- updates per second: the training batches after the first (which warms up), each of
  ``CALIBRATION_GROUP`` updates or the run's own group where smaller, until ``seconds`` have
  passed;
- the gradient probe that ``fit`` takes before the first update;
- the evaluation of one sequence (a validation pass over the calibration's validation split);
- what else ``fit`` took: the Trainer, the model, the first batch's warm-up.

``run_seconds`` turns that into one run's time at its own settings: ``max_steps`` updates, a
validation every ``eval_every``, its probes, the test pass and the set-up. A run that solves
stops sooner, so it is the time of a run that never does: an upper bound. ``sweep_seconds`` lays
a sweep's runs out on ``jobs`` workers as the local executor hands them out (longest distance
first, each to the first free worker). Left out: the data stage, the store's records of each run
and the report, which do not grow with the updates.
"""

from __future__ import annotations

import heapq
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytorch_lightning as pl
import torch

from pipeline import data
from pipeline.config.runs import RunSpec
from pipeline.config.training import n_probes
from pipeline.tracking.run_log import MemoryRuns
from pipeline.train import run as train
from pipeline.train.batches import steps_per_call

# updates per training batch while calibrating, where the run's own group is larger: enough to
# share Lightning's cost per batch over several updates, few enough that the slowest model's
# timed batches stay within the calibration's moment
CALIBRATION_GROUP = 5
CALIBRATION_BATCHES = 2  # timed batches at least, after the first
VALIDATION_SEQUENCES = 256  # the calibration's validation split: what one evaluation is timed on


@dataclass(frozen=True)
class Speed:
    """What one model at one length costs here (``calibrate``)."""

    steps_per_s: float  # training updates per second
    probe_s: float  # one gradient probe
    eval_s: float  # evaluating one sequence (validation, test)
    setup_s: float  # the rest of ``fit``: Trainer, model, the first batch's warm-up

    def run_seconds(self, spec: RunSpec) -> float:
        """One run of ``spec`` trained to its last update: updates, validations, probes, the
        test pass and the set-up.
        """
        t, d = spec.training, spec.data
        validations = t.max_steps // t.eval_every
        probes = n_probes(t.max_steps, t.eval_every, spec.probe.every_evals)
        return (
            self.setup_s
            + t.max_steps / self.steps_per_s
            + (validations * d.n_val + d.n_test) * self.eval_s
            + probes * self.probe_s
        )


def speed_key(spec: RunSpec) -> str:
    """What sets the cost of one of ``spec``'s updates (not its seed, name or initialisation)."""
    m, t = spec.model, spec.training
    return json.dumps(
        [spec.task.task, spec.task.params(), spec.distance, m.cell, spec.hidden_size,
         m.input_layer, t.batch_size, t.optimizer, t.clip_mode, t.grad_clip is None,
         spec.probe.batch_size],
        sort_keys=True, default=str,
    )  # fmt: skip


class _Clock(pl.Callback):
    """Stamps the start of training, of the first batch (the probe lies between) and the end of
    every batch; stops training once ``seconds`` have passed since the first batch ended and
    ``batches`` more have.
    """

    def __init__(self, seconds: float, batches: int) -> None:
        self.seconds, self.batches = seconds, batches
        self.started = self.first = math.nan
        self.ends: list[tuple[int, float]] = []  # (global step, time) at each batch's end

    def on_train_start(self, trainer, pl_module) -> None:
        self.started = time.perf_counter()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if batch_idx == 0:
            self.first = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize(pl_module.device)
        self.ends.append((trainer.global_step, time.perf_counter()))
        timed = self.ends[-1][1] - self.ends[0][1]
        if len(self.ends) > self.batches and timed >= self.seconds:
            trainer.should_stop = True

    def steps_per_s(self) -> float:
        """Updates per second over the batches after the first (over the first, where training
        stopped after it: a diverged run).
        """
        (step0, t0), (step1, t1) = self.ends[0], self.ends[-1]
        if len(self.ends) == 1:
            step0, t0 = 0, self.first
        return (step1 - step0) / (t1 - t0)


def measure(spec: RunSpec, seconds: float) -> Speed:
    """``Speed`` of ``spec``'s model at its length: ``fit`` for about ``seconds`` past its first
    batch, on data of the run's task made in memory.
    """
    t = spec.training
    group = min(steps_per_call(t), CALIBRATION_GROUP)
    # as the benchmark does, settings set past validation: no validation (eval_every past the
    # end), no early stop (solved_accuracy above any accuracy), no stop for a loss that grows
    # (a non-finite one still stops), no periodic probe
    training = t.model_copy(
        update={"max_steps": 10**9, "eval_every": 10**9, "log_every": group,
                "solved_accuracy": math.inf, "diverge_loss_factor": math.inf}
    )  # fmt: skip
    probe = spec.probe.model_copy(update={"every_evals": 0})
    spec = spec.model_copy(update={"training": training, "probe": probe})
    sizes = {"train": t.batch_size * group * 4, "val": max(VALIDATION_SEQUENCES, probe.batch_size)}
    splits = data.generate(spec.task, spec.distance, spec.seed, sizes)
    clock = _Clock(seconds, CALIBRATION_BATCHES)
    started = time.perf_counter()
    lit, trainer = train.fit(spec, splits, MemoryRuns().open(spec.title, {}), callbacks=[clock])
    fit_s = time.perf_counter() - started
    evaluated = time.perf_counter()
    train.evaluate(lit.model, lit.task, splits["val"], lit.device)
    eval_s = (time.perf_counter() - evaluated) / sizes["val"]
    rate = clock.steps_per_s()
    probe_s = clock.first - clock.started
    setup_s = max(0.0, fit_s - probe_s - trainer.global_step / rate)
    return Speed(steps_per_s=rate, probe_s=probe_s, eval_s=eval_s, setup_s=setup_s)


def calibrate(
    specs: list[RunSpec], seconds: float = 0.5, log: Callable = lambda *_: None
) -> dict[str, Speed]:
    """``Speed`` of every distinct model and length among ``specs``, by ``speed_key``; one torch
    thread, as a sweep worker.
    """
    todo: dict[str, RunSpec] = {}
    for spec in specs:
        todo.setdefault(speed_key(spec), spec)
    train._quiet_lightning()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = {}
        for key, spec in todo.items():
            out[key] = measure(spec, seconds)
            log(
                f"calibrate: {spec.task.task} {spec.model.cell} {spec.hidden_size} at distance "
                f"{spec.distance}, batch {spec.training.batch_size}: "
                f"{out[key].steps_per_s:.1f} updates/s"
            )
        return out
    finally:
        torch.set_num_threads(threads)


def sweep_seconds(specs: list[RunSpec], speeds: dict[str, Speed], jobs: int) -> float:
    """Wall-clock seconds of training ``specs`` on ``min(jobs, len(specs))`` workers, each run
    handed to the first free worker in the local executor's order (longest distance first; in
    the given order on one worker).
    """
    if not specs:
        return 0.0
    workers = min(jobs, len(specs))
    ordered = sorted(specs, key=lambda s: -s.distance) if workers > 1 else specs
    free = [0.0] * workers  # when each worker is next free
    for spec in ordered:
        heapq.heapreplace(free, free[0] + speeds[speed_key(spec)].run_seconds(spec))
    return max(free)
