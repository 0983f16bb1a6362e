"""The benchmark's arithmetic: summaries of repeated measurements, paired ratios, shares, and the
headline figures held to their targets.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

# headline key -> (comparison, threshold): the targets of the performance issue
TARGETS = {
    "pipeline_vs_plain": (">=", 0.9),
    "sweep_speedup_jobs2": (">=", 1.7),
    "sweep_fixed_cost_share": ("<", 0.10),
    "probe_share": ("<=", 0.05),
    "system_metrics_share": ("<", 0.01),  # of a core: MLflow's monitor beside the training
}


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
    """The headline figures (stable keys) from the raw measurements, with their noise.

    ``measured`` holds ``overhead`` (one row per configuration with paired ``ratios``),
    ``sweep`` (``speedups`` and ``fixed_shares`` by jobs), ``probe`` (one row per
    configuration with ``shares``) and ``system_metrics`` (``shares``: empty, and no figure,
    where the monitor was not measured).
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
    if measured["system_metrics"]["shares"]:  # none: not measured
        figures["system_metrics_share"] = summary(measured["system_metrics"]["shares"])
    out = {key: s["median"] for key, s in figures.items()}
    out["worst_setting"] = {"pipeline_vs_plain": worst_overhead, "probe_share": worst_probe}
    out["targets"] = {key: f"{op} {threshold}" for key, (op, threshold) in TARGETS.items()}
    out["met"] = {key: meets(key, out[key]) for key in TARGETS if key in out}
    out["noise"] = {key: s["spread"] for key, s in figures.items()}
    return out


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
