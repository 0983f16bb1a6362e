"""Benchmarks: the pipeline held to a plain PyTorch loop, the sweep's scaling, the probe's cost.

``python -m pipeline bench`` (``make bench``) measures, side by side in one process, on the
settings of ``experiments/default.yaml`` (recall task, hidden 64, batch 128, Adam, clip 1):

1. **overhead** (``overhead``): training steps/s of the pipeline's own path (``train.run.fit``, the
   function a run calls, with its ``RunLog`` writing to a real temporary SQLite MLflow store at
   the default cadence, validation every ``eval_every`` steps) against a plain loop training the
   same model (``train.saved.build_model``, same seed) on the same data and batches with the same
   optimizer and clipping, and nothing else: no validation, no logging. The RNN and the LSTM at
   distances 20 and 80. Steps/s counts the steps between the end of the first training batch (a
   batch holds ``batches.steps_per_call`` steps; the plain loop's clock starts after as many)
   and the end of the last step, so one-time set-up (Trainer, store, the init probe) is left out
   and the validations and metric writes that fall inside are counted (the ``RunLog`` writes
   at most every few seconds, so a short window may hold none). The pipeline runs with
   ``solved_accuracy`` above 1 (it cannot stop early) and no periodic probe (measured in 3).
   Besides wall-clock steps/s, the ratio of CPU time, which other processes on the cores barely
   move but which misses waits such as a commit's fsync;
2. **sweep** (``sweeps``): wall time of ``python -m pipeline train`` on ``experiments/quick.yaml``
   with ``--jobs 1`` and ``--jobs 2``, each in a fresh ``PIPELINE_ROOT`` (data copied in, so the
   store is created anew): the speedup, and the share of fixed costs, defined as the time before
   the sweep's first MLflow run starts (interpreter, imports, store set-up, data checks, worker
   start-up) plus the time after its last run ends, over the sweep's wall time; and the speedup
   of the runs alone (first start to last end), which fixed costs do not dilute;
3. **probe** (``costs``): one probe (``train.module.probe_measures``: the gradient profile and
   the mechanism's measures) against the training step, as a share of a whole run at the
   default experiment's settings: ``n * probe / (n * probe + max_steps * step)`` with
   ``n = 2 + max_steps // (eval_every * every_evals)`` probes and the step time of 1;
4. **fused** (``costs``): forward and backward through ``nn.LSTM`` against the reference
   ``LSTMCell`` unrolled in Python (``models.unroll``), for the record;
5. **system metrics** (``system``): MLflow's system-metrics monitor, which a sweep runs on its
   parent run, sampling every 10 s beside the overhead runs of 1: its thread's CPU time over
   the wall time, its share of a core (a sweep's share is that over its ``jobs`` cores).

Every figure is the median of repetitions after a warm-up (short runs of each path; for the
sweeps, the data stage and a timed import in fresh interpreters). Two figures that are compared are
measured one after the other within a repetition (alternating which goes first), and the ratio
is taken per repetition, so drifting load from other processes cancels; ``noise`` is the spread
(max - min) / median of those repetitions. Torch runs on one thread, like a sweep worker; on a
GPU machine, 1, 3 and 4 run on the GPU.

Writes ``reports/bench/bench.json`` (headline figures under stable keys, every raw measurement,
the machine), ``bench.md`` (the table that is printed) and ``bench.png`` (``output``); the
arithmetic and the targets live in ``stats``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from datetime import UTC, datetime

import torch

from pipeline import paths
from pipeline.bench.costs import measure_fused, measure_probe
from pipeline.bench.output import machine, markdown, table_rows, write_outputs
from pipeline.bench.overhead import measure_overhead
from pipeline.bench.stats import FULL, QUICK, Plan, headline
from pipeline.bench.sweeps import measure_sweep
from pipeline.train import run as train


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
    overhead, setup, system = measure_overhead(plan, device, log)
    measured = {"overhead": overhead, "system_metrics": system, "setup": setup}
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
