"""How fast a gradient fades with distance: the decay fit and the e-folding length.

One definition for the probe, which fits each run's curve, and for the report, which writes the
numbers: numpy only, so the report needs no torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

TINY = 1e-30  # norms at or below this (float32 underflow) are left out of the decay fit


def fit_decay(k: Sequence[float], norms: Sequence[float], k_max: int) -> float:
    """rho: exp of the least-squares slope of log norm on k, 1 <= k <= k_max (nan: < 2 points)."""
    k, norms = np.asarray(k, dtype=np.float64), np.asarray(norms, dtype=np.float64)
    keep = (k >= 1) & (k <= k_max) & np.isfinite(norms) & (norms > TINY)
    if keep.sum() < 2:
        return math.nan
    kk, y = k[keep], np.log(norms[keep])
    slope = ((kk - kk.mean()) * (y - y.mean())).sum() / ((kk - kk.mean()) ** 2).sum()
    return math.exp(slope)


def efold(rho: float | None) -> float:
    """Steps for the gradient to shrink by e: -1 / ln(rho); inf when it does not shrink, 0 when
    it vanishes in one step (rho = 0, the limit of -1 / ln(rho)), nan when rho is unknown.
    """
    if rho is None or math.isnan(rho):
        return math.nan
    if rho <= 0:
        return 0.0
    return math.inf if rho >= 1 else -1 / math.log(rho)
