"""1. Overhead: the pipeline's training path against a plain PyTorch loop on the same model, data,
batches, optimizer and clipping. The pipeline's side calls ``train.run.fit`` itself, the code path
``make train`` runs, with a clock added as a Lightning callback.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytorch_lightning as pl
import torch
from torch import nn

from pipeline import config, data, paths
from pipeline.bench.stats import Plan, paired_ratios
from pipeline.bench.system import monitor_cost
from pipeline.config.runs import RunSpec, evaluation_runs
from pipeline.tracking import store
from pipeline.tracking.run_log import MlflowRuns
from pipeline.train import module as learner
from pipeline.train import run as train
from pipeline.train.batches import Batches, steps_per_call
from pipeline.train.saved import build_model

CELLS = ("rnn", "lstm")
DISTANCES = (20, 80)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def default_experiment() -> config.Experiment:
    return config.load(paths.experiment_file("default"))


def overhead_spec(
    cell: str, distance: int, steps: int, base: config.Experiment, **training
) -> RunSpec:
    """One recall run with ``base``'s settings (``training`` overrides some), ``steps`` long,
    that cannot stop early and takes no periodic probe.
    """
    recall = next((t for t in base.tasks if t.task == "recall"), None)
    task = recall.model_dump() if recall else {"task": "recall"}
    exp = config.Experiment(
        name="bench",
        tasks=[{**task, "distances": [distance]}],
        models=[{"name": cell, "cell": cell}],
        seeds=[0],
        hidden_size=base.hidden_size,
        training={**base.training.model_dump(), "max_steps": steps, **training},
        data=base.data.model_dump(),
        probe={"batch_size": base.probe.batch_size, "every_evals": 0},
    )
    spec = evaluation_runs(exp)[0]
    # above any accuracy: set past validation, which caps solved_accuracy at 1
    training = spec.training.model_copy(update={"solved_accuracy": math.inf})
    return spec.model_copy(update={"training": training})


def run_splits(spec: RunSpec) -> dict[str, data.Split]:
    """The train and validation splits the data stage would write for ``spec``, in memory."""
    sizes = {k: v for k, v in spec.data.sizes().items() if k != "test"}
    return data.generate(spec.task, spec.distance, spec.seed, sizes)


def _now() -> tuple[float, float]:
    """Wall-clock and this thread's CPU seconds. CPU time barely moves when other processes
    compete for the cores, but misses time spent waiting (a database commit's fsync).
    """
    return time.perf_counter(), time.thread_time()


def _rates(steps: int, first: tuple[float, float], last: tuple[float, float]) -> tuple:
    """Steps/s between two ``_now()`` stamps: (wall, CPU)."""
    return steps / (last[0] - first[0]), steps / (last[1] - first[1])


class StepClock(pl.Callback):
    """Stamps the end of the first training batch (``first`` steps: a batch holds several) and
    of the last step.
    """

    def __init__(self, first: int, last: int) -> None:
        self.first, self.last, self.stamps = first, last, {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step in (self.first, self.last):
            sync(pl_module.device)
            self.stamps[trainer.global_step] = _now()

    def rates(self) -> tuple[float, float]:
        return _rates(self.last - self.first, self.stamps[self.first], self.stamps[self.last])


def pipeline_rate(spec: RunSpec, splits: dict, client, exp_id: str) -> tuple[float, float]:
    """Steps/s (wall, CPU) of ``train.fit``, the pipeline's own training path, recording to the
    store behind ``client`` as a run does.
    """
    run_log = MlflowRuns(client, exp_id, {}).open(spec.title, {})
    clock = StepClock(steps_per_call(spec.training), spec.training.max_steps)
    lit, _ = train.fit(spec, splits, run_log, callbacks=[clock])
    run_log.flush()  # what the run's end writes (untimed), as RunLog.outcome does
    run_log.finish()
    return clock.rates()


def plain_rate(spec: RunSpec, splits: dict, device: torch.device) -> tuple[float, float, nn.Module]:
    """Steps/s (wall, CPU) of a bare loop: the same model, batches, optimizer and clipping,
    nothing else; and the model it trained.
    """
    t = spec.training
    pl.seed_everything(spec.seed, workers=False, verbose=False)
    model = build_model(spec).to(device)
    task = spec.task.build()
    optimizer = learner.make_optimizer(t, model.parameters())
    clip = t.grad_clip or math.inf
    batches = iter(Batches(splits["train"], t.batch_size, spec.seed))
    first_step, first = steps_per_call(t), (math.nan, math.nan)  # as the pipeline's clock
    for step in range(1, t.max_steps + 1):
        x, y = next(batches)
        x, y = x.to(device), y.to(device)
        loss = task.loss(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        if step == first_step:
            sync(device)
            first = _now()
    sync(device)
    return (*_rates(t.max_steps - first_step, first, _now()), model)


def measure_overhead(plan: Plan, device: torch.device, log: Callable) -> tuple[list, dict, dict]:
    """Rows per (cell, distance) with paired pipeline and plain steps/s (wall and CPU), the time
    to set up a fresh store (left out of the rates), and the cost of the system-metrics monitor
    that runs meanwhile beside the training (``system.monitor_cost``).
    """
    base = default_experiment()
    # timed from the end of the first training batch: whole eval periods, validations included
    steps = plan.eval_periods * base.training.eval_every + steps_per_call(base.training)
    settings = [(cell, d) for cell in CELLS for d in DISTANCES]
    specs = {s: overhead_spec(*s, steps, base) for s in settings}
    splits = {s: run_splits(spec) for s, spec in specs.items()}
    rates = {s: {"pipeline": [], "plain": []} for s in settings}
    import mlflow  # noqa: F401  (imported before the store set-up is timed)

    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        started = time.perf_counter()
        client = store.connect(f"sqlite:///{tmp}/mlflow.db")
        store_setup = time.perf_counter() - started
        exp_id = store.retry(
            lambda: client.create_experiment("bench", artifact_location=Path(tmp).as_uri())
        )
        # warm-up: a few steps with two validations, each path. The first Trainer also turns on
        # deterministic algorithms for the process, so the plain loop runs under them too.
        for s in settings:
            # cadences within the 11 steps: the config refuses any past max_steps
            warm = overhead_spec(*s, 11, base, eval_every=5, log_every=10)
            pipeline_rate(warm, splits[s], client, exp_id)
            plain_rate(warm, splits[s], device)
        with monitor_cost(client, exp_id) as system:
            _repetitions(plan, settings, specs, splits, rates, client, exp_id, device, log)
    rows = [_overhead_row(*s, steps, r) for s, r in rates.items()]
    return rows, {"store_setup_s": store_setup}, system


def _repetitions(plan, settings, specs, splits, rates, client, exp_id, device, log) -> None:
    """The paired pipeline and plain measurements of every setting, ``plan.reps`` times."""
    for rep in range(plan.reps):
        for s in settings:
            measure = {
                "pipeline": lambda s=s: pipeline_rate(specs[s], splits[s], client, exp_id),
                "plain": lambda s=s: plain_rate(specs[s], splits[s], device)[:2],
            }
            order = ("pipeline", "plain") if rep % 2 == 0 else ("plain", "pipeline")
            for name in order:
                rates[s][name].append(measure[name]())
        log(f"bench: overhead {rep + 1}/{plan.reps} " + _overhead_line(rates))


def _overhead_row(cell: str, distance: int, steps: int, r: dict) -> dict:
    wall = {name: [w for w, _ in r[name]] for name in r}
    cpu = {name: [c for _, c in r[name]] for name in r}
    return {
        "setting": f"{cell} d={distance}",
        "cell": cell,
        "distance": distance,
        "steps": steps,
        "pipeline_steps_per_s": wall["pipeline"],
        "plain_steps_per_s": wall["plain"],
        "ratios": paired_ratios(wall["pipeline"], wall["plain"]),
        "pipeline_cpu_steps_per_s": cpu["pipeline"],
        "plain_cpu_steps_per_s": cpu["plain"],
        "cpu_ratios": paired_ratios(cpu["pipeline"], cpu["plain"]),
    }


def _overhead_line(rates: dict) -> str:
    """The last repetition's ratios, wall (CPU)."""
    return ", ".join(
        f"{row['setting']} {row['ratios'][-1]:.2f}x ({row['cpu_ratios'][-1]:.2f}x)"
        for row in (_overhead_row(*s, 0, r) for s, r in rates.items())
    )
