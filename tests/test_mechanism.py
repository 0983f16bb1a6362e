"""The mechanism measures on constructed models whose answers are known: W set to matrices of
known spectrum.
"""

from __future__ import annotations

import math
import re

import pytest
import torch
from torch import nn

from pipeline import mechanism
from pipeline.models import SequenceModel

H, B = 8, 4


def model(cell: str, hidden: int = H, seed: int = 0, **options) -> SequenceModel:
    torch.manual_seed(seed)
    return SequenceModel(cell, n_inputs=5, n_outputs=3, hidden_size=hidden, **options)


def set_W(m: SequenceModel, *blocks: torch.Tensor) -> None:
    """Set W's gate blocks, in the fused module's order."""
    with torch.no_grad():
        m.core.weight_hh_l0.copy_(torch.cat(blocks))


def orthogonal(n: int, seed: int) -> torch.Tensor:
    return nn.init.orthogonal_(torch.empty(n, n), generator=torch.Generator().manual_seed(seed))


# --- the recurrent matrix ---


def test_half_an_orthogonal_matrix_has_radius_and_norm_one_half():
    m = model("rnn")
    set_W(m, 0.5 * orthogonal(H, seed=0))
    W = mechanism.spectra(m)["W"]
    assert W.radius == pytest.approx(0.5, abs=1e-6)
    assert W.sv == pytest.approx(0.5, abs=1e-6)


def test_a_diagonal_W_has_its_largest_magnitude_entry_as_radius_and_norm():
    m = model("rnn")
    set_W(m, torch.diag(torch.tensor([0.3, -0.9, 0.7, 0.1, -0.2, 0.0, 0.5, 0.6])))
    W = mechanism.spectra(m)["W"]
    assert W.radius == pytest.approx(0.9, abs=1e-6)  # |-0.9|: the sign does not count
    assert W.sv == pytest.approx(0.9, abs=1e-6)


def test_a_non_normal_W_has_radius_below_one_and_norm_above():
    """[[a, b], [0, d]]: eigenvalues a and d; sigma_1^2 the larger root of s^2 - T s + (ad)^2,
    T = a^2 + b^2 + d^2 (the eigenvalues of A^T A), by hand rather than by an SVD.
    """
    a, b, d = 0.5, 2.0, 0.3
    W = torch.zeros(H, H)
    W[:2, :2] = torch.tensor([[a, b], [0.0, d]])
    m = model("rnn")
    set_W(m, W)
    T = a * a + b * b + d * d
    sv = math.sqrt((T + math.sqrt(T * T - 4 * (a * d) ** 2)) / 2)
    got = mechanism.spectra(m)["W"]
    assert got.radius == pytest.approx(0.5, abs=1e-6)
    assert got.sv == pytest.approx(sv, rel=1e-6)
    assert got.radius < 1 < got.sv  # Pascanu et al.'s gap: neither bound decides alone


@pytest.mark.parametrize(("cell", "names"), [("lstm", "ifgo"), ("gru", "rzn")])
def test_each_block_of_W_is_named_by_its_gate(cell, names):
    m = model(cell)
    scales = [0.1 * (k + 1) for k in range(len(names))]  # in the fused module's order
    set_W(m, *(s * orthogonal(H, seed=k) for k, s in enumerate(scales)))
    got = mechanism.spectra(m)
    assert list(got) == [f"W_{gate}" for gate in names]
    for gate, s in zip(names, scales, strict=True):
        assert got[f"W_{gate}"].radius == pytest.approx(s, abs=1e-6), gate
        assert got[f"W_{gate}"].sv == pytest.approx(s, abs=1e-6), gate


@pytest.mark.parametrize(
    ("cell", "blocks"),
    [("rnn", ["W"]), ("lstm", ["W_i", "W_f", "W_g", "W_o"]), ("gru", ["W_r", "W_z", "W_n"])],
)
def test_metric_names_are_stable_and_mlflow_safe(cell, blocks):
    got = mechanism.metrics(model(cell))
    assert list(got) == [f"mech/{block}_{s}" for block in blocks for s in ("radius", "sv")]
    assert all(re.fullmatch(r"mech/[A-Za-z0-9_]+", name) for name in got)
    assert all(isinstance(v, float) for v in got.values())


def test_the_spectra_leave_the_model_as_it_was():
    m = model("lstm")
    before = m.core.weight_hh_l0.detach().clone()
    mechanism.blocks(m)["W_f"].zero_()  # a copy
    mechanism.metrics(m)
    assert torch.equal(m.core.weight_hh_l0, before)
