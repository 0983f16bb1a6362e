"""The decay fit and the e-folding length: one definition, shared by the probe and the report."""

from __future__ import annotations

import math

import pytest
import torch

from pipeline import decay
from pipeline.decay import GEOMETRIC_R2, efold, fit_decay

H = 16


def geometric(rho: float, n: int, scale: float = 1.0) -> list[float]:
    return [scale * rho**k for k in range(n)]


@pytest.mark.parametrize("rho", [0.3, 0.8, 0.99, 1.0, 1.2])
def test_fit_decay_recovers_an_exact_geometric_decay(rho):
    assert fit_decay(range(31), geometric(rho, 31, scale=7.0), k_max=30).rho == pytest.approx(rho)


def test_fit_decay_of_a_linear_recurrence():
    """h_t = a h_{t-1} + x_t, loss on the last step: ||dL/dh_{T-k}|| = |a|^k ||dL/dh_T||."""
    a, T = -0.7, 25
    x = torch.randn(8, T, H, dtype=torch.float64, requires_grad=True)
    h, hs = torch.zeros(8, H, dtype=torch.float64), []
    for t in range(T):
        h = a * h + x[:, t]
        hs.append(h)
    grads = torch.autograd.grad((hs[-1] ** 2).sum(), hs)
    norms = [grads[T - 1 - k].norm().item() for k in range(T)]
    assert norms == pytest.approx(geometric(abs(a), T, scale=norms[0]), rel=1e-9)
    assert fit_decay(range(T), norms, k_max=T - 1).rho == pytest.approx(abs(a), rel=1e-9)


def test_fit_decay_uses_only_1_to_k_max():
    norms = geometric(0.5, 11) + geometric(2.0, 10, scale=0.5**11)  # turns around after k = 10
    norms[0] = 1e6  # k = 0 is never fitted
    assert fit_decay(range(21), norms, k_max=10).rho == pytest.approx(0.5)
    assert fit_decay(range(21), norms, k_max=20).rho != pytest.approx(0.5, rel=0.1)


def test_fit_decay_leaves_out_underflow_and_needs_two_points():
    norms = [1.0, 0.5, 0.25, 0.0, 0.0, 1e-310]  # 1e-310: below float64's normal range
    assert fit_decay(range(6), norms, k_max=5).rho == pytest.approx(0.5)
    assert math.isnan(fit_decay(range(6), [1.0, 0.5, 0.0, 0.0, 0.0, 0.0], k_max=5).rho)
    assert math.isnan(fit_decay(range(3), [1.0, 0.5, 0.25], k_max=1).rho)
    assert math.isnan(fit_decay(range(3), [1.0, float("nan"), float("inf")], k_max=2).rho)


@pytest.mark.parametrize(
    ("rho", "steps"),
    [
        (math.exp(-1), 1.0),
        (math.exp(-1 / 5), 5.0),
        (0.5, 1 / math.log(2)),
        (1.0, math.inf),
        (1.3, math.inf),
        (0.0, 0.0),
    ],
)
def test_efold(rho, steps):
    assert efold(rho) == pytest.approx(steps)


def test_efold_of_nan_is_nan():
    assert math.isnan(efold(math.nan))


def test_efold_grows_with_rho():
    values = [efold(r) for r in (0.1, 0.5, 0.9, 0.99, 0.999)]
    assert values == sorted(values) and values[-1] > 900


def test_r2_tells_a_geometric_curve_from_one_that_levels_off():
    straight = fit_decay(range(21), geometric(0.7, 21), k_max=20)
    assert straight.r2 == pytest.approx(1.0) and straight.geometric and straight.points == 20
    bent = geometric(0.5, 6) + [0.5**5] * 15  # falls for 5 steps, then flat
    fit = fit_decay(range(21), bent, k_max=20)
    assert fit.r2 < GEOMETRIC_R2 and not fit.geometric
    flat = fit_decay(range(11), [2.0] * 11, k_max=10)
    assert flat.rho == pytest.approx(1.0) and flat.r2 == 1.0
    assert not fit_decay(range(3), [1.0, 0.5, 0.25], k_max=2).geometric  # two points: a line


def test_tiny_norms_are_left_out_of_the_fit():
    assert decay.TINY < 1e-200  # float64 range: only true underflow is left out
    assert math.isnan(fit_decay([0, 1, 2], [1.0, decay.TINY, decay.TINY / 2], k_max=2).rho)


def test_efold_of_an_unknown_rho_is_nan():
    assert math.isnan(efold(None))
