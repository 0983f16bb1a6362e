"""Whether a replication reproduced its published claim: the claim's expectations checked on the
runs of its experiment (``claims.Claim``; rows as ``reading.planned`` gives them).

Each expectation is checked at each of its distances on the runs of that (model, distance):

- **not run** unless every planned seed's run finished (solved, unsolved or diverged): a check
  is never decided on some of its seeds;
- otherwise each seed gives the metric's value (a run without one, such as an unsolved run's
  steps to solve or a diverged run's non-finite loss, counts as the metric's worst value), the
  values are combined as the expectation says (median, every seed, some seed) and compared.

A claim is **reproduced** when every check holds, **not reproduced** when some check fails (the
claim as stated cannot hold whatever the checks not yet run give), and **not run** otherwise.
Observations are measured the same way and shown beside the published numbers, never checked.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import pandas as pd

from pipeline.config import Experiment
from pipeline.config.claims import METRICS, Expectation, Observation
from pipeline.report.results import FINISHED

VERDICTS = ("reproduced", "not reproduced", "not run")


@dataclass(frozen=True)
class Measurement:
    """One expectation (or observation) at one distance, over the seeds that finished there."""

    check: Observation
    distance: int
    seeds: tuple[int, ...]  # the finished seeds, in order
    values: tuple[float, ...]  # per finished seed, the worst value standing in for none
    planned: int  # seeds planned at this (model, distance)

    @property
    def complete(self) -> bool:
        return self.planned > 0 and len(self.seeds) == self.planned

    @property
    def measured(self) -> float:
        """The seeds' values combined: as the expectation says, by the median for an
        observation (nan while not every seed finished).
        """
        if not self.complete:
            return math.nan
        if isinstance(self.check, Expectation):
            return self.check.combine(list(self.values))
        return statistics.median(self.values)

    @property
    def outcome(self) -> str:
        """``holds``, ``fails`` or ``not run`` (an observation that ran: ``measured``)."""
        if not self.complete:
            return "not run"
        if not isinstance(self.check, Expectation):
            return "measured"
        return "holds" if self.check.holds(self.measured) else "fails"


@dataclass(frozen=True)
class Verdict:
    """A claim's verdict, its reason in words, and every check and observation behind it."""

    verdict: str  # one of VERDICTS
    reason: str
    checks: tuple[Measurement, ...]
    observed: tuple[Measurement, ...]


def value_of(run: pd.Series, metric: str) -> float:
    """``metric`` of one finished run, or the metric's worst value where the run has none."""
    worst = METRICS[metric][1]
    if metric == "sequences_to_solve":
        steps = value_of(run, "steps_to_solve")
        return steps * float(run["batch_size"]) if math.isfinite(steps) else worst
    if metric == "baseline_ratio":
        return value_of(run, "test_loss") / float(run["baseline_loss"])
    value = pd.to_numeric(run.get(metric), errors="coerce")
    return float(value) if pd.notna(value) and math.isfinite(value) else worst


def measurements(exp: Experiment, runs: pd.DataFrame, check: Observation) -> list[Measurement]:
    """``check`` at each of its distances (default: every distance of the claim's task)."""
    distances = check.distances or exp.tasks[0].distances
    out = []
    for d in distances:
        mine = runs[(runs["model"] == check.model) & (runs["distance"] == d)].sort_values("seed")
        done = mine[mine["status"].isin(FINISHED)]
        values = tuple(value_of(run, check.metric) for _, run in done.iterrows())
        out.append(Measurement(check, d, tuple(int(s) for s in done["seed"]), values, len(mine)))
    return out


def judge(exp: Experiment, runs: pd.DataFrame) -> Verdict:
    """The verdict on ``exp``'s claim from its planned evaluation runs ``runs``."""
    claim = exp.claim
    checks = tuple(c for e in claim.expect for c in measurements(exp, runs, e))
    observed = tuple(c for o in claim.observe for c in measurements(exp, runs, o))
    failed = [c for c in checks if c.outcome == "fails"]
    missing = [c for c in checks if c.outcome == "not run"]
    held = len(checks) - len(failed) - len(missing)
    if failed:
        verdict = "not reproduced"
        reason = f"{len(failed)} of {len(checks)} checks fail: " + "; ".join(
            f"{c.check.label()} at distance {c.distance}: {number(c.measured, c.check.metric)}"
            for c in failed
        )
    elif missing:
        verdict = "not run"
        reason = f"{len(missing)} of {len(checks)} checks lack a finished run of some seed"
    else:
        verdict = "reproduced"
        reason = f"all {len(checks)} checks hold"
    if missing and failed:
        reason += f" ({len(missing)} not run yet)"
    if held and not failed and missing:
        reason += f"; the {held} run so far hold"
    return Verdict(verdict, reason, checks, observed)


def number(x: float, metric: str = "") -> str:
    """A measured value as the replication report writes it: ``0.0031``, ``1,200``; a worst
    value stood in for a missing one as ``unsolved`` (steps to solve) or ``not finite``.
    """
    if math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return "unsolved" if metric.endswith("_to_solve") else "not finite"
    if x == int(x) and abs(x) >= 100:
        return f"{int(x):,}"
    return f"{x:.4g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.2e}"
