"""Does the gradient share at initialisation go with learning? Compared like with like.

Pooling every distance would make "a larger share went with learning" close to guaranteed:
short distances have both larger shares and more solved runs. So runs are compared only within
the same task and distance: at each distance where both outcomes occur, the initial key share of
the runs that solved against those that did not, by a two-sided Mann-Whitney rank test, with
Holm's correction over the distances tested. Within one model too, where a model has both
outcomes at a distance (its seeds differ there in initialisation and data set, not in model or
distance). Every comparison carries its number of runs on each side.

Pooled over models, a distance's comparison still sets one architecture against another (a GRU
may both start with a smaller share and solve more often than a tanh RNN), so the report draws
its verdict only from the within-model strata, combined by ``stratified``: an exact permutation
test of the summed Mann-Whitney U over the (model, distance) strata where seeds ended both ways,
outcome labels permuted within each stratum.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, replace
from itertools import combinations

import numpy as np
import pandas as pd
from scipy.stats import mannwhitneyu
from statsmodels.stats.multitest import multipletests

from pipeline.report.results import FINISHED

SHARE = "probe_init_h_key_share"
ALPHA = 0.05


@dataclass(frozen=True)
class Comparison:
    """Solved against unsolved runs at one distance (of one model, when ``model`` is set)."""

    distance: int
    model: str | None
    n_solved: int
    n_unsolved: int
    median_solved: float
    median_unsolved: float
    p: float  # two-sided Mann-Whitney; nan when either side has one run only
    p_holm: float = math.nan

    @property
    def larger_in_solved(self) -> bool:
        return self.median_solved > self.median_unsolved

    @property
    def significant(self) -> bool:
        return self.p_holm < ALPHA


def _compare(group: pd.DataFrame, distance: int, model: str | None) -> Comparison | None:
    shares = pd.to_numeric(group[SHARE], errors="coerce")
    solved = shares[group["status"] == "solved"].dropna().to_numpy()
    unsolved = shares[group["status"] != "solved"].dropna().to_numpy()
    if len(solved) == 0 or len(unsolved) == 0:
        return None
    p = math.nan
    if len(solved) >= 2 or len(unsolved) >= 2:
        p = float(mannwhitneyu(solved, unsolved, alternative="two-sided").pvalue)
    return Comparison(
        distance, model, len(solved), len(unsolved),
        float(np.median(solved)), float(np.median(unsolved)), p,
    )  # fmt: skip


def _holm(comparisons: list[Comparison]) -> list[Comparison]:
    tested = [c for c in comparisons if not math.isnan(c.p)]
    if not tested:
        return comparisons
    holm = multipletests([c.p for c in tested], method="holm")[1]
    adjusted = {id(c): float(p) for c, p in zip(tested, holm, strict=True)}
    return [replace(c, p_holm=adjusted.get(id(c), math.nan)) for c in comparisons]


def share_against_outcome(runs: pd.DataFrame) -> list[Comparison]:
    """The comparisons of one task's finished, probed runs, models pooled: one per distance where
    both outcomes occur, Holm-corrected together.
    """
    finished = runs[runs["status"].isin(FINISHED) & runs[SHARE].notna()]
    out = []
    for (distance,), group in finished.groupby(["distance"], sort=True):
        found = _compare(group, int(distance), None)
        if found is not None:
            out.append(found)
    return _holm(out)


def smallest_p(n_a: int, n_b: int) -> float:
    """The smallest two-sided p a Mann-Whitney test can give with these group sizes: 2 / C(n, k)."""
    return min(1.0, 2 / math.comb(n_a + n_b, n_a))


@dataclass(frozen=True)
class Stratified:
    """Solved against unsolved seeds within (model, distance) strata, combined: ``pairs``
    solved-unsolved pairs of the same stratum, ``larger`` of them where the solved seed started
    with the larger share (ties count a half), ``p`` two-sided under labels permuted within strata;
    ``rows``: each stratum's counts and medians, by distance and model.
    """

    rows: tuple[Comparison, ...]
    n_solved: int
    n_unsolved: int
    pairs: int
    larger: float
    p: float
    p_floor: float  # the smallest p these strata can give

    @property
    def strata(self) -> int:
        return len(self.rows)


def _u_null(values: np.ndarray, k: int) -> Counter:
    """The exact null distribution of 2U (integer) when ``k`` of ``values`` are labelled solved
    at random: Counter of 2U -> number of labellings.
    """
    out: Counter = Counter()
    for chosen in combinations(range(len(values)), k):
        mask = np.zeros(len(values), dtype=bool)
        mask[list(chosen)] = True
        out[_twice_u(values[mask], values[~mask])] += 1
    return out


def _twice_u(solved: np.ndarray, unsolved: np.ndarray) -> int:
    diff = solved[:, None] - unsolved[None, :]
    return int(2 * (diff > 0).sum() + (diff == 0).sum())


def stratified(runs: pd.DataFrame) -> Stratified | None:
    """The within-model test (see the module's docstring); None where no model ended both ways
    at one distance.
    """
    finished = runs[runs["status"].isin(FINISHED) & runs[SHARE].notna()]
    total: Counter = Counter({0: 1})
    observed = pairs = n_solved = n_unsolved = 0
    rows = []
    for (model, distance), group in finished.groupby(["model", "distance"], sort=True):
        shares = pd.to_numeric(group[SHARE]).to_numpy(dtype=float)  # ranks only: no log
        solved = (group["status"] == "solved").to_numpy()
        k = int(solved.sum())
        if k == 0 or k == len(solved):
            continue
        rows.append(_compare(group, int(distance), model))
        n_solved, n_unsolved = n_solved + k, n_unsolved + len(solved) - k
        pairs += k * (len(solved) - k)
        observed += _twice_u(shares[solved], shares[~solved])
        null = _u_null(shares, k)
        merged: Counter = Counter()
        for a, ca in total.items():
            for b, cb in null.items():
                merged[a + b] += ca * cb
        total = merged
    if not rows:
        return None
    support = np.array(sorted(total))
    weight = np.array([total[v] for v in support], dtype=float)
    weight /= weight.sum()
    deviation = np.abs(support - pairs)  # 2U's null mean is the number of pairs
    p = float(weight[deviation >= abs(observed - pairs) - 1e-9].sum())
    floor = float(weight[deviation >= deviation.max() - 1e-9].sum())
    rows.sort(key=lambda c: (c.distance, c.model))
    return Stratified(tuple(rows), n_solved, n_unsolved, pairs, observed / 2, min(1.0, p), floor)
