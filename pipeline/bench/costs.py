"""3. The gradient probe's share of a run, and 4. the fused ``nn.LSTM`` against the reference cell
unrolled in Python (for the record).
"""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

from pipeline import models
from pipeline.bench.overhead import (
    DISTANCES,
    default_experiment,
    overhead_spec,
    run_splits,
    sync,
)
from pipeline.bench.stats import Plan, paired_ratios, probe_share
from pipeline.config.runs import RunSpec
from pipeline.config.training import n_probes
from pipeline.tasks import RecallConfig
from pipeline.train.module import probe_measures
from pipeline.train.saved import build_model


def probe_seconds(spec: RunSpec, splits: dict, reps: int, device: torch.device) -> list[float]:
    """Seconds per ``probe_measures`` call (the gradient profile and the mechanism's measures)
    on the probe batch (after one warm-up call).
    """
    model = build_model(spec).to(device).eval()  # as LitSequenceModel.probe runs it
    task = spec.task.build()
    n = spec.probe.batch_size
    x, y = splits["val"].x[:n].to(device), splits["val"].y[:n].to(device)
    probe_measures(model, task, x, y, spec.distance)
    times = []
    for _ in range(reps):
        sync(device)
        started = time.perf_counter()
        probe_measures(model, task, x, y, spec.distance)
        sync(device)
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
    task = (recall or RecallConfig(task="recall", distances=[distance])).build()
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
        sync(device)
        started = time.perf_counter()
        fn()
        sync(device)
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
