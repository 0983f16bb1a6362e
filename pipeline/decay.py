"""How fast a gradient fades with distance: the decay fit and the e-folding length.

One definition for the probe, which fits each run's curve, and for the report, which writes the
numbers.

A curve is *geometric* when log norm falls on a straight line in k; the fit's R^2 says how well
it does. Where R^2 is below ``GEOMETRIC_R2`` the per-step factor rho summarises the curve badly
(a curve that falls, then levels off, say), and the report prints no e-folding length for it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

TINY = 1e-300  # norms at or below this (float64 underflow) are left out of the decay fit
GEOMETRIC_R2 = 0.9  # R^2 of log norm on k at or above which a curve counts as geometric


@dataclass(frozen=True)
class DecayFit:
    """``rho``: exp of the least-squares slope of log norm on k; ``r2``: the fit's R^2 (1 for a
    flat curve, which the line fits exactly); ``points``: how many k were fitted.
    """

    rho: float
    r2: float
    points: int

    @property
    def geometric(self) -> bool:
        return self.points >= 3 and self.r2 >= GEOMETRIC_R2


def fit_decay(k: Sequence[float], norms: Sequence[float], k_max: int) -> DecayFit:
    """Fit log norm = a + k ln(rho) over 1 <= k <= k_max (finite norms above ``TINY`` only);
    rho and r2 are nan with fewer than 2 points.
    """
    k, norms = np.asarray(k, dtype=np.float64), np.asarray(norms, dtype=np.float64)
    keep = (k >= 1) & (k <= k_max) & np.isfinite(norms) & (norms > TINY)
    n = int(keep.sum())
    if n < 2:
        return DecayFit(math.nan, math.nan, n)
    kk, y = k[keep], np.log(norms[keep])
    dk, dy = kk - kk.mean(), y - y.mean()
    slope = (dk * dy).sum() / (dk**2).sum()
    total = (dy**2).sum()
    residual = ((dy - slope * dk) ** 2).sum()
    r2 = 1.0 if total <= 1e-24 * max(1.0, float((y**2).sum())) else 1 - residual / total
    return DecayFit(math.exp(slope), float(r2), n)


def efold(rho: float | None) -> float:
    """Steps for the gradient to shrink by e: -1 / ln(rho); inf when it does not shrink, 0 when
    it vanishes in one step (rho = 0, the limit of -1 / ln(rho)), nan when rho is unknown.
    """
    if rho is None or math.isnan(rho):
        return math.nan
    if rho <= 0:
        return 0.0
    return math.inf if rho >= 1 else -1 / math.log(rho)
