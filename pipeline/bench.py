"""Benchmarks: the pipeline held to a plain PyTorch loop, the sweep's scaling, the probe's cost.

``python -m pipeline bench`` (``make bench``) measures, side by side in one process, on the
settings of ``experiments/default.yaml`` (recall task, hidden 64, batch 128, Adam, clip 1):

1. **overhead**: training steps/s of the pipeline's own path (``LitSequenceModel`` in
   ``make_trainer``'s Trainer on ``train.train_batches``, a ``Recorder`` writing to a real
   temporary SQLite MLflow store at the default cadence, validation every ``eval_every`` steps)
   against a plain loop training the same model (``train.build_model``, same seed) on the same
   data and batches with the same optimizer and clipping, and nothing else: no validation, no
   logging. The RNN and the LSTM at distances 20 and 80. Steps/s counts the steps between the
   end of the first training batch (a batch holds ``train.steps_per_call`` steps; the plain
   loop's clock starts after as many) and the end of the last step, so one-time set-up (Trainer,
   store, the init probe) is left out and the validations and metric writes that fall inside are
   counted (the ``Recorder`` writes at most every 5 s, so a short window may hold none: at ~20
   ms a write, under 0.5% of a run). The pipeline runs with ``solved_accuracy`` above 1 (it
   cannot stop early) and no periodic probe (measured in 3). Besides wall-clock steps/s, the
   ratio of CPU time, which other processes on the cores barely move but which misses waits such
   as a commit's fsync;
2. **sweep**: wall time of ``python -m pipeline train`` on ``experiments/quick.yaml`` with
   ``--jobs 1`` and ``--jobs 2``, each in a fresh ``PIPELINE_ROOT`` (data copied in, so the
   store is created anew): the speedup, and the share of fixed costs, defined as the time before
   the sweep's first MLflow run starts (interpreter, imports, store set-up, data checks, worker
   start-up) plus the time after its last run ends, over the sweep's wall time; and the speedup
   of the runs alone (first start to last end), which fixed costs do not dilute;
3. **probe**: one ``gradient_profile`` call against the training step, as a share of a whole run
   at the default experiment's settings: ``n * probe / (n * probe + max_steps * step)`` with
   ``n = 2 + max_steps // (eval_every * every_evals)`` probes and the step time of 1;
4. **fused**: forward and backward through ``nn.LSTM`` against the reference ``LSTMCell``
   unrolled in Python (``models.unroll``), for the record.

Every figure is the median of repetitions after a warm-up (short runs of each path; for the
sweeps, the data stage and a timed import in fresh interpreters). Two figures that are compared are
measured one after the other within a repetition (alternating which goes first), and the ratio
is taken per repetition, so drifting load from other processes cancels; ``noise`` is the spread
(max - min) / median of those repetitions. Torch runs on one thread, like a sweep worker; on a
GPU machine, 1, 3 and 4 run on the GPU.

Writes ``reports/bench/bench.json`` (headline figures under stable keys, every raw measurement,
the machine), ``bench.md`` (the table that is printed) and ``bench.png``.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytorch_lightning as pl
import torch
import yaml
from torch import nn

from pipeline import config, data, models, paths, tracking, train
from pipeline.config import RunSpec
from pipeline.errors import SweepError
from pipeline.probe import gradient_profile
from pipeline.tasks import stream_seed

CELLS = ("rnn", "lstm")
DISTANCES = (20, 80)
# headline key -> (comparison, threshold): the targets of the performance issue
TARGETS = {
    "pipeline_vs_plain": (">=", 0.9),
    "sweep_speedup_jobs2": (">=", 1.7),
    "sweep_fixed_cost_share": ("<", 0.10),
    "probe_share": ("<=", 0.05),
}
# the quick plan's sweep: one task, two models, a few dozen steps (a smoke run, not a figure)
TINY_SWEEP = {
    "tasks": [{"task": "recall", "distances": [5]}],
    "models": [{"name": "rnn", "cell": "rnn"}, {"name": "lstm", "cell": "lstm"}],
    "seeds": [0],
    "hidden_size": 16,
    "training": {"max_steps": 40, "eval_every": 20},
    "data": {"n_train": 512, "n_val": 128, "n_test": 128},
    "probe": {"batch_size": 32, "every_evals": 1},
}


@dataclass(frozen=True)
class Plan:
    """How much to measure: repetitions per figure and the length of a timed training window."""

    name: str
    reps: int  # overhead repetitions (the probe and fused timings take at least 3)
    eval_periods: int  # timed window of an overhead run: this many eval_every periods
    sweep_reps: int  # sweeps per jobs setting
    sweep: str  # "quick": experiments/quick.yaml; "tiny": TINY_SWEEP


FULL = Plan("full", reps=5, eval_periods=1, sweep_reps=2, sweep="quick")
QUICK = Plan("quick", reps=1, eval_periods=1, sweep_reps=1, sweep="tiny")


# ---- pure helpers: statistics, shares, the headline ----------------------------------------


def summary(values: Sequence[float]) -> dict:
    """Median, min, max and spread ((max - min) / median) of repeated measurements."""
    if not values:
        raise ValueError("no measurements to summarise")
    med = statistics.median(values)
    lo, hi = min(values), max(values)
    return {
        "median": med,
        "min": lo,
        "max": hi,
        "spread": (hi - lo) / med if med else math.nan,
        "n": len(values),
    }


def paired_ratios(numerators: Sequence[float], denominators: Sequence[float]) -> list[float]:
    """Per-repetition ratios of two figures measured side by side."""
    if len(numerators) != len(denominators):
        raise ValueError(f"unpaired: {len(numerators)} against {len(denominators)} measurements")
    return [a / b for a, b in zip(numerators, denominators, strict=True)]


def n_probes(max_steps: int, eval_every: int, every_evals: int) -> int:
    """Probes in a run that trains ``max_steps``: before, after, and every ``every_evals``
    validations (as ``LitSequenceModel`` does; none between when ``every_evals`` is 0).
    """
    periodic = max_steps // (eval_every * every_evals) if every_evals else 0
    return 2 + periodic


def probe_share(probe_s: float, step_s: float, steps: int, probes: int) -> float:
    """The probes' share of a run: probes * probe_s over that plus steps * step_s."""
    probing = probes * probe_s
    return probing / (probing + steps * step_s)


def fixed_cost_share(
    launched: float, exited: float, run_starts: Sequence[float], run_ends: Sequence[float]
) -> float:
    """Share of a sweep's wall time (``launched`` to ``exited``, seconds since the epoch) spent
    before its first run started and after its last run ended.
    """
    wall = exited - launched
    fixed = (min(run_starts) - launched) + (exited - max(run_ends))
    return fixed / wall


def meets(key: str, value: float) -> bool:
    op, threshold = TARGETS[key]
    return {">=": value >= threshold, "<": value < threshold, "<=": value <= threshold}[op]


def headline(measured: dict) -> dict:
    """The four headline figures (stable keys) from the raw measurements, with their noise.

    ``measured`` holds ``overhead`` (one row per configuration with paired ``ratios``),
    ``sweep`` (``speedups`` and ``fixed_shares`` by jobs) and ``probe`` (one row per
    configuration with ``shares``).
    """
    overhead = {row["setting"]: summary(row["ratios"]) for row in measured["overhead"]}
    worst_overhead = min(overhead, key=lambda k: overhead[k]["median"])
    speedup = summary(measured["sweep"]["speedups"])
    fixed = summary(measured["sweep"]["fixed_shares"]["2"])
    probe = {row["setting"]: summary(row["shares"]) for row in measured["probe"]}
    worst_probe = max(probe, key=lambda k: probe[k]["median"])
    figures = {
        "pipeline_vs_plain": overhead[worst_overhead],
        "sweep_speedup_jobs2": speedup,
        "sweep_fixed_cost_share": fixed,
        "probe_share": probe[worst_probe],
    }
    out = {key: s["median"] for key, s in figures.items()}
    out["worst_setting"] = {"pipeline_vs_plain": worst_overhead, "probe_share": worst_probe}
    out["targets"] = {key: f"{op} {threshold}" for key, (op, threshold) in TARGETS.items()}
    out["met"] = {key: meets(key, out[key]) for key in TARGETS}
    out["noise"] = {key: s["spread"] for key, s in figures.items()}
    return out


# ---- the machine ---------------------------------------------------------------------------


def machine(device: torch.device) -> dict:
    """What the figures were measured on, and how busy it was (1-, 5- and 15-minute load)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu_count": os.cpu_count(),
        "cpu": cpu,
        "load_average": list(os.getloadavg()),  # other processes competing for the cores
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "lightning": pl.__version__,
        "python": platform.python_version(),
        "torch_threads": torch.get_num_threads(),
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---- 1. overhead: the pipeline's training path against a plain loop ----------------------


def default_experiment() -> config.Experiment:
    return config.load(paths.experiment_file("default"))


def overhead_spec(cell: str, distance: int, steps: int, base: config.Experiment) -> RunSpec:
    """One recall run with ``base``'s settings, ``steps`` long, that cannot stop early and takes
    no periodic probe.
    """
    recall = next((t for t in base.tasks if t.task == "recall"), None)
    task = recall.model_dump() if recall else {"task": "recall"}
    exp = config.Experiment(
        name="bench",
        tasks=[{**task, "distances": [distance]}],
        models=[{"name": cell, "cell": cell}],
        seeds=[0],
        hidden_size=base.hidden_size,
        training={**base.training.model_dump(), "max_steps": steps},
        data=base.data.model_dump(),
        probe={"batch_size": base.probe.batch_size, "every_evals": 0},
    )
    spec = exp.runs[0]
    # above any accuracy: set past validation, which caps solved_accuracy at 1
    training = spec.training.model_copy(update={"solved_accuracy": math.inf})
    return spec.model_copy(update={"training": training})


def run_splits(spec: RunSpec) -> dict[str, data.Split]:
    """The train and validation splits the data stage would write for ``spec``, in memory."""
    generator = spec.task.build()
    sizes = {"train": spec.data.n_train, "val": spec.data.n_val}
    return {
        split: data.Split(
            *generator.generate(
                spec.distance, n, stream_seed(spec.task.task, spec.distance, spec.seed, split)
            )
        )
        for split, n in sizes.items()
    }


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
            _sync(pl_module.device)
            self.stamps[trainer.global_step] = _now()

    def rates(self) -> tuple[float, float]:
        return _rates(self.last - self.first, self.stamps[self.first], self.stamps[self.last])


def pipeline_rate(spec: RunSpec, splits: dict, client, exp_id: str) -> tuple[float, float]:
    """Steps/s (wall, CPU) of ``train._train``'s fit: the same objects, wired the same way."""
    run_id = tracking.retry(lambda: client.create_run(exp_id, run_name=spec.title)).info.run_id
    pl.seed_everything(spec.seed, workers=False, verbose=False)
    model = train.build_model(spec)
    val = splits["val"]
    probe_batch = (val.x[: spec.probe.batch_size], val.y[: spec.probe.batch_size])
    lit = train.LitSequenceModel(spec, model, probe_batch, train.Recorder(client, run_id))
    trainer = train.make_trainer(spec)
    clock = StepClock(train.steps_per_call(spec.training), spec.training.max_steps)
    trainer.callbacks.append(clock)
    trainer.fit(
        lit,
        train_dataloaders=train.train_batches(spec, splits["train"]),
        val_dataloaders=train.Chunks(val, 1000),
    )
    lit.recorder.flush()  # what the run's end writes (untimed), as _log_outcome does
    tracking.retry(lambda: client.set_terminated(run_id, "FINISHED"))
    return clock.rates()


def plain_rate(spec: RunSpec, splits: dict, device: torch.device) -> tuple[float, float]:
    """Steps/s (wall, CPU) of a bare loop: the same model, batches, optimizer and clipping,
    nothing else.
    """
    t = spec.training
    pl.seed_everything(spec.seed, workers=False, verbose=False)
    model = train.build_model(spec).to(device)
    task = spec.task.build()
    # the optimizer the pipeline configures (the module only builds it here)
    optimizer = train.LitSequenceModel(spec, model, None, None).configure_optimizers()
    clip = t.grad_clip or math.inf
    batches = iter(train.Batches(splits["train"], t.batch_size, spec.seed))
    first_step, first = train.steps_per_call(t), (math.nan, math.nan)  # as the pipeline's clock
    for step in range(1, t.max_steps + 1):
        x, y = next(batches)
        x, y = x.to(device), y.to(device)
        loss = task.loss(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        if step == first_step:
            _sync(device)
            first = _now()
    _sync(device)
    return _rates(t.max_steps - first_step, first, _now())


def measure_overhead(plan: Plan, device: torch.device, log: Callable) -> tuple[list, dict]:
    """Rows per (cell, distance) with paired pipeline and plain steps/s (wall and CPU), and the
    time to set up a fresh store (left out of the rates).
    """
    base = default_experiment()
    # timed from the end of the first training batch: whole eval periods, validations included
    steps = plan.eval_periods * base.training.eval_every + train.steps_per_call(base.training)
    settings = [(cell, d) for cell in CELLS for d in DISTANCES]
    specs = {s: overhead_spec(*s, steps, base) for s in settings}
    splits = {s: run_splits(spec) for s, spec in specs.items()}
    rates = {s: {"pipeline": [], "plain": []} for s in settings}
    import mlflow  # noqa: F401  (imported before the store set-up is timed)

    with tempfile.TemporaryDirectory(prefix="bench-store-") as tmp:
        started = time.perf_counter()
        client = tracking.connect(f"sqlite:///{tmp}/mlflow.db")
        store_setup = time.perf_counter() - started
        exp_id = tracking.retry(
            lambda: client.create_experiment("bench", artifact_location=Path(tmp).as_uri())
        )
        # warm-up: a few steps with two validations, each path. The first Trainer also turns on
        # deterministic algorithms for the process, so the plain loop runs under them too.
        for s in settings:
            warm = overhead_spec(*s, 11, base)
            warm = warm.model_copy(
                update={"training": warm.training.model_copy(update={"eval_every": 5})}
            )
            pipeline_rate(warm, splits[s], client, exp_id)
            plain_rate(warm, splits[s], device)
        for rep in range(plan.reps):
            for s in settings:
                measure = {
                    "pipeline": lambda s=s: pipeline_rate(specs[s], splits[s], client, exp_id),
                    "plain": lambda s=s: plain_rate(specs[s], splits[s], device),
                }
                order = ("pipeline", "plain") if rep % 2 == 0 else ("plain", "pipeline")
                for name in order:
                    rates[s][name].append(measure[name]())
            log(f"bench: overhead {rep + 1}/{plan.reps} " + _overhead_line(rates))
    return [_overhead_row(*s, steps, r) for s, r in rates.items()], {"store_setup_s": store_setup}


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


# ---- 2. sweep scaling ------------------------------------------------------------------------


def _sweep_file(plan: Plan, folder: Path) -> Path:
    if plan.sweep == "quick":
        return paths.experiment_file("quick")
    path = folder / "bench_tiny.yaml"
    path.write_text(yaml.safe_dump(TINY_SWEEP, sort_keys=False))
    return path


def _pipeline(*args: str, root: Path) -> subprocess.CompletedProcess:
    """``python -m pipeline ...`` in a fresh interpreter with its outputs under ``root``."""
    env = {**os.environ, "PIPELINE_ROOT": str(root)}
    env.pop("MLFLOW_TRACKING_URI", None)  # the root's own SQLite store
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        cwd=paths.SOURCE_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )


def _check(proc: subprocess.CompletedProcess, what: str) -> None:
    if proc.returncode:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise SweepError(f"bench: {what} exited with {proc.returncode}:\n{tail}")


def sweep_once(exp_file: Path, jobs: int, data_root: Path) -> dict:
    """One sweep in a fresh root holding only a copy of the data: wall time, fixed-cost share,
    and the runs' own ``wall_time`` (from their result files).
    """
    name = exp_file.stem
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        root = Path(tmp)
        shutil.copytree(data_root / "data", root / "data")
        launched, started = time.time(), time.perf_counter()
        proc = _pipeline("train", "--experiment", str(exp_file), "--jobs", str(jobs), root=root)
        wall, exited = time.perf_counter() - started, time.time()
        _check(proc, f"train --jobs {jobs}")
        client = tracking.client(f"sqlite:///{root / 'mlruns' / 'mlflow.db'}")
        exp_id = client.get_experiment_by_name(name).experiment_id
        runs = tracking.search(client, exp_id)
        starts = [r.info.start_time / 1000 for r in runs]
        ends = [r.info.end_time / 1000 for r in runs]
        results = [
            json.loads(p.read_text())
            for p in (root / "results" / name).rglob("*.json")
            if p.name != "sweep.json"
        ]
    run_walls = [r["wall_time"] for r in results]
    return {
        "jobs": jobs,
        "wall_s": wall,
        "runs": len(runs),
        "fixed_share": fixed_cost_share(launched, exited, starts, ends),
        "before_first_run_s": min(starts) - launched,
        "after_last_run_s": exited - max(ends),
        "runs_span_s": max(ends) - min(starts),  # the first run's start to the last one's end
        "run_wall_time_sum_s": sum(run_walls),
        # the share of the workers' time not inside a run's own wall_time: fixed costs, per-run
        # costs outside train_run's clock (data loading, run creation) and idle workers at the end
        "idle_share": 1 - sum(run_walls) / (jobs * wall),
    }


def measure_sweep(plan: Plan, log: Callable) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        template = Path(tmp)
        exp_file = _sweep_file(plan, template)
        started = time.perf_counter()
        _check(_pipeline("data", "--experiment", str(exp_file), root=template), "data")
        data_s = time.perf_counter() - started  # also the warm-up: imports into the page cache
        import_s = []
        for _ in range(2):  # the second is warm
            started = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-c", "import pipeline.train, pipeline.sweep, mlflow"],
                cwd=paths.SOURCE_ROOT,
                capture_output=True,
                text=True,
            )
            _check(proc, "import")
            import_s.append(time.perf_counter() - started)
        sweeps: dict[str, list[dict]] = {"1": [], "2": []}
        for rep in range(plan.sweep_reps):
            for jobs in (1, 2) if rep % 2 == 0 else (2, 1):
                sweeps[str(jobs)].append(sweep_once(exp_file, jobs, template))
            s1, s2 = sweeps["1"][-1], sweeps["2"][-1]
            log(
                f"bench: sweep {rep + 1}/{plan.sweep_reps} jobs=1 {s1['wall_s']:.1f} s, "
                f"jobs=2 {s2['wall_s']:.1f} s ({s2['fixed_share']:.0%} fixed)"
            )
    walls = {jobs: [s["wall_s"] for s in runs] for jobs, runs in sweeps.items()}
    spans = {jobs: [s["runs_span_s"] for s in runs] for jobs, runs in sweeps.items()}
    return {
        "experiment": exp_file.stem if plan.sweep == "quick" else "bench_tiny (quick plan)",
        "runs": sweeps["1"][0]["runs"],
        "speedups": paired_ratios(walls["1"], walls["2"]),
        "span_speedups": paired_ratios(spans["1"], spans["2"]),  # fixed costs left out
        "fixed_shares": {jobs: [s["fixed_share"] for s in runs] for jobs, runs in sweeps.items()},
        "sweeps": sweeps,
        "data_stage_s": data_s,
        "import_s": import_s[-1],
    }


# ---- 3. probe cost -------------------------------------------------------------------------


def probe_seconds(spec: RunSpec, splits: dict, reps: int, device: torch.device) -> list[float]:
    """Seconds per ``gradient_profile`` call on the probe batch (after one warm-up call)."""
    model = train.build_model(spec).to(device).eval()  # as LitSequenceModel.probe runs it
    task = spec.task.build()
    n = spec.probe.batch_size
    x, y = splits["val"].x[:n].to(device), splits["val"].y[:n].to(device)
    gradient_profile(model, task, x, y, spec.distance)
    times = []
    for _ in range(reps):
        _sync(device)
        started = time.perf_counter()
        gradient_profile(model, task, x, y, spec.distance)
        _sync(device)
        times.append(time.perf_counter() - started)
    return times


def measure_probe(plan: Plan, device: torch.device, overhead: list[dict]) -> list[dict]:
    """Probe time per configuration, and its share of a default-length run whose step time is
    the pipeline's (median) from the overhead measurement.
    """
    base = default_experiment()
    t, p = base.training, base.probe
    probes = n_probes(t.max_steps, t.eval_every, p.every_evals)
    out = []
    for row in overhead:
        spec = overhead_spec(row["cell"], row["distance"], t.max_steps, base)
        times = probe_seconds(spec, run_splits(spec), max(3, plan.reps), device)
        step_s = 1 / statistics.median(row["pipeline_steps_per_s"])
        out.append(
            {
                "setting": row["setting"],
                "probe_s": times,
                "step_s": step_s,
                "probes": probes,
                "steps": t.max_steps,
                "shares": [probe_share(s, step_s, t.max_steps, probes) for s in times],
            }
        )
    return out


# ---- 4. fused nn.LSTM against the reference cell unrolled ----------------------------------


def fused_and_reference(
    distance: int, reps: int, device: torch.device, hidden: int, batch: int
) -> dict:
    """Seconds for forward + backward through ``nn.LSTM`` and through ``LSTMCell`` unrolled,
    on a batch of recall-length sequences (paired per repetition, after a warm-up).
    """
    base = default_experiment()
    recall = next((t for t in base.tasks if t.task == "recall"), None)
    task = (recall or config.RecallConfig(task="recall", distances=[distance])).build()
    length = task.length(distance)
    g = torch.Generator().manual_seed(0)
    lstm = nn.LSTM(hidden, hidden, batch_first=True)
    cell = models.reference_cell(lstm).to(device)
    lstm = lstm.to(device)
    x = torch.randn(batch, length, hidden, generator=g).to(device)

    def fused() -> None:
        h, _ = lstm(x)  # h: [B, T, hidden]
        h[:, -1].square().sum().backward()

    def reference() -> None:
        hs, _ = models.unroll(cell, x)  # T tensors [B, hidden]
        hs[-1].square().sum().backward()

    def timed(fn) -> float:
        _sync(device)
        started = time.perf_counter()
        fn()
        _sync(device)
        return time.perf_counter() - started

    fused(), reference()
    times = {"fused_s": [], "reference_s": []}
    for rep in range(reps):
        order = (("fused_s", fused), ("reference_s", reference))
        for name, fn in order if rep % 2 == 0 else order[::-1]:
            times[name].append(timed(fn))
    return {
        "setting": f"lstm d={distance}",
        "length": length,
        **times,
        "ratios": paired_ratios(times["reference_s"], times["fused_s"]),
    }


def measure_fused(plan: Plan, device: torch.device) -> list[dict]:
    base = default_experiment()
    return [
        fused_and_reference(d, max(3, plan.reps), device, base.hidden_size, base.probe.batch_size)
        for d in DISTANCES
    ]


# ---- the table, the plot, the files --------------------------------------------------------


def _noise(values: Sequence[float], fmt: str) -> str:
    s = summary(values)
    if s["n"] == 1:
        return "n=1"
    return f"{s['min']:{fmt}} to {s['max']:{fmt}}, spread {s['spread']:.0%} (n={s['n']})"


def _target(key: str, value: float) -> str:
    op, threshold = TARGETS[key]
    shown = f"{threshold:.0%}" if "share" in key else f"{threshold:g}x"
    return f"{op} {shown} ({'met' if meets(key, value) else 'MISSED'})"


def _row(figure: str, setting: str, value: str, detail: str, target="", noise="n=1") -> dict:
    """One row of the table, its columns in order."""
    return {
        "figure": figure,
        "setting": setting,
        "value": value,
        "detail": detail,
        "target": target,
        "noise": noise,
    }


def table_rows(measured: dict) -> list[dict]:
    """One row per figure: what, setting, value, detail, target, noise."""
    med = statistics.median
    rows = []
    for r in measured["overhead"]:
        ratio = med(r["ratios"])
        detail = (
            f"pipeline {med(r['pipeline_steps_per_s']):.0f}, plain "
            f"{med(r['plain_steps_per_s']):.0f} steps/s; CPU-time ratio {med(r['cpu_ratios']):.2f}x"
        )
        rows.append(
            _row(
                "pipeline / plain steps/s", r["setting"], f"{ratio:.2f}x", detail,
                _target("pipeline_vs_plain", ratio), _noise(r["ratios"], ".2f"),
            )
        )  # fmt: skip
    sw = measured["sweep"]
    speedup = med(sw["speedups"])
    w1, w2 = (med(s["wall_s"] for s in sw["sweeps"][jobs]) for jobs in ("1", "2"))
    rows.append(
        _row(
            "sweep speedup, jobs=2", f"{sw['experiment']}, {sw['runs']} runs",
            f"{speedup:.2f}x", f"{w1:.1f} s -> {w2:.1f} s",
            _target("sweep_speedup_jobs2", speedup), _noise(sw["speedups"], ".2f"),
        )
    )  # fmt: skip
    rows.append(
        _row(
            "speedup of the runs alone, jobs=2", sw["experiment"],
            f"{med(sw['span_speedups']):.2f}x", "first run's start to last run's end",
            noise=_noise(sw["span_speedups"], ".2f"),
        )
    )  # fmt: skip
    for jobs in ("2", "1"):
        shares = sw["fixed_shares"][jobs]
        share = med(shares)
        before = med(s["before_first_run_s"] for s in sw["sweeps"][jobs])
        after = med(s["after_last_run_s"] for s in sw["sweeps"][jobs])
        rows.append(
            _row(
                f"sweep fixed-cost share, jobs={jobs}", sw["experiment"], f"{share:.0%}",
                f"{before:.1f} s before the first run, {after:.1f} s after the last",
                _target("sweep_fixed_cost_share", share) if jobs == "2" else "",
                _noise(shares, ".0%"),
            )
        )  # fmt: skip
    parts = {
        "a fresh SQLite store": (measured["setup"]["store_setup_s"], "MLflow's schema migrations"),
        "a fresh interpreter's imports": (
            sw["import_s"],
            "pipeline.train, pipeline.sweep, mlflow: paid once a sweep, by the workers' fork "
            "server, beside the store set-up",
        ),
    }
    for setting, (seconds, detail) in parts.items():
        rows.append(_row("part of the fixed cost", setting, f"{seconds:.1f} s", detail))
    for r in measured["probe"]:
        share = med(r["shares"])
        detail = (
            f"{r['probes']} x {med(r['probe_s']) * 1e3:.0f} ms vs "
            f"{r['steps']} x {r['step_s'] * 1e3:.1f} ms"
        )
        rows.append(
            _row(
                "probe share of a run", r["setting"], f"{share:.1%}", detail,
                _target("probe_share", share), _noise(r["shares"], ".1%"),
            )
        )  # fmt: skip
    for r in measured["fused"]:
        detail = (
            f"fused {med(r['fused_s']) * 1e3:.1f} ms, reference "
            f"{med(r['reference_s']) * 1e3:.1f} ms (forward + backward)"
        )
        rows.append(
            _row(
                "reference cell / fused nn.LSTM time", f"{r['setting']} (T={r['length']})",
                f"{med(r['ratios']):.1f}x", detail, "for the record", _noise(r["ratios"], ".1f"),
            )
        )  # fmt: skip
    return rows


def markdown(rows: list[dict]) -> str:
    """A Markdown table of ``rows`` (dicts with the same keys)."""
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + " --- |" * len(keys)]
    lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def plot(measured: dict, path: Path) -> None:
    """Four panels: throughput ratio, sweep wall time, probe share, fused against reference."""
    import seaborn as sns
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    sns.set_theme(style="whitegrid", context="notebook")
    fig = Figure(figsize=(12, 8), layout="constrained")
    ax = fig.subplots(2, 2)

    def points(a, rows, key, scale=1.0):
        for i, r in enumerate(rows):
            values = [v * scale for v in r[key]]
            a.scatter([i] * len(values), values, color="C0", alpha=0.5, s=18)
            a.scatter([i], [statistics.median(values)], color="C3", marker="_", s=400)
        a.set_xticks(range(len(rows)), [r["setting"] for r in rows])

    points(ax[0, 0], measured["overhead"], "ratios")
    ax[0, 0].axhline(TARGETS["pipeline_vs_plain"][1], color="k", ls="--", lw=1)
    ax[0, 0].set(title="pipeline / plain training steps/s", ylabel="ratio (1 = no overhead)")

    sw = measured["sweep"]
    for i, jobs in enumerate(("1", "2")):  # the median sweep of each
        wall = statistics.median(s["wall_s"] for s in sw["sweeps"][jobs])
        fixed = wall * statistics.median(sw["fixed_shares"][jobs])
        ax[0, 1].bar(i, fixed, color="C1", alpha=0.4, width=0.5)
        ax[0, 1].bar(i, wall - fixed, bottom=fixed, color="C0", alpha=0.4, width=0.5)
    ax[0, 1].set_xticks([0, 1], ["jobs=1", "jobs=2"])
    ax[0, 1].set(title=f"sweep wall time ({sw['experiment']})", ylabel="s")
    ax[0, 1].legend(
        handles=[
            Patch(color="C1", alpha=0.4, label="before the first run / after the last"),
            Patch(color="C0", alpha=0.4, label="first run start to last run end"),
        ]
    )

    points(ax[1, 0], measured["probe"], "shares", scale=100)
    ax[1, 0].axhline(TARGETS["probe_share"][1] * 100, color="k", ls="--", lw=1)
    ax[1, 0].set(title="probe share of a default run", ylabel="%")

    points(ax[1, 1], measured["fused"], "ratios")
    ax[1, 1].set(title="reference LSTMCell unrolled / fused nn.LSTM", ylabel="time ratio")
    ax[1, 1].set_ylim(bottom=0)
    fig.savefig(path, dpi=110)


def write_outputs(report: dict, rows: list[dict], folder: Path) -> dict[str, Path]:
    """``bench.json``, ``bench.md`` and ``bench.png`` under ``folder``; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {name: folder / f"bench.{name}" for name in ("json", "md", "png")}
    out["json"].write_text(json.dumps(report, indent=2) + "\n")
    m = report["machine"]
    out["md"].write_text(
        f"# Benchmarks ({'quick' if report['quick'] else 'full'} plan, {report['when']})\n\n"
        f"Machine: {m['cpu_count']} x {m['cpu']}, device {m['device']}, torch {m['torch']}, "
        f"Lightning {m['lightning']}, {m['torch_threads']} torch thread; load average "
        f"{m['load_average'][0]:.1f} at the start.\n\n"
        + markdown(rows)
        + "\n\nnoise: the range of the repetitions, and its spread (max - min) / median.\n"
    )
    plot(report["measurements"], out["png"])
    return out


def run(quick: bool = False, log: Callable = print) -> dict:
    """Measure everything, print the table, write ``reports/bench/``; returns the JSON report.

    Raises SweepError when a sweep subprocess fails.
    """
    return _run(QUICK if quick else FULL, log)


def _run(plan: Plan, log: Callable) -> dict:
    torch.set_num_threads(1)  # as a sweep worker
    train._quiet_lightning()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    started = time.perf_counter()
    host = machine(device)
    log(f"bench: {plan.name} plan on {host['cpu_count']} cores, device {host['device']}")
    overhead, setup = measure_overhead(plan, device, log)
    measured = {"overhead": overhead, "setup": setup}
    measured["probe"] = measure_probe(plan, device, overhead)
    measured["fused"] = measure_fused(plan, device)
    log("bench: probe and fused measured; sweeps next")
    measured["sweep"] = measure_sweep(plan, log)
    host["load_average_end"] = list(os.getloadavg())
    report = {
        **headline(measured),
        "quick": plan.name == "quick",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "seconds": time.perf_counter() - started,
        "machine": host,
        "measurements": measured,
    }
    rows = table_rows(measured)
    files = write_outputs(report, rows, paths.root() / "reports" / "bench")
    log("\n" + markdown(rows) + "\n")
    log(f"bench: {report['seconds']:.0f} s; wrote {', '.join(str(p) for p in files.values())}")
    return report
