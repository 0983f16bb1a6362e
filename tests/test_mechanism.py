"""The mechanism measures on constructed models whose answers are known: W set to matrices of
known spectrum, keep gates pinned by their biases, and the gate trace held against the fused
PyTorch modules.
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
KEEP_BLOCK = 1  # f in nn.LSTM's gate order i, f, g, o; z in nn.GRU's r, z, n


def model(cell: str, hidden: int = H, seed: int = 0, **options) -> SequenceModel:
    torch.manual_seed(seed)
    return SequenceModel(cell, n_inputs=5, n_outputs=3, hidden_size=hidden, **options)


def tokens(T: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(5, (B, T), generator=torch.Generator().manual_seed(seed))


def set_W(m: SequenceModel, *blocks: torch.Tensor) -> None:
    """Set W's gate blocks, in the fused module's order."""
    with torch.no_grad():
        m.core.weight_hh_l0.copy_(torch.cat(blocks))


def orthogonal(n: int, seed: int) -> torch.Tensor:
    return nn.init.orthogonal_(torch.empty(n, n), generator=torch.Generator().manual_seed(seed))


def pin_keep_gate(m: SequenceModel, bias: torch.Tensor) -> None:
    """Zero the keep gate's rows of U and W and give it ``bias`` (b_ih; b_hh zeroed), so the gate
    is sigmoid(bias) at every step whatever the input; every other gate keeps its weights.
    """
    rows = slice(KEEP_BLOCK * H, (KEEP_BLOCK + 1) * H)
    with torch.no_grad():
        m.core.weight_ih_l0[rows] = 0
        m.core.weight_hh_l0[rows] = 0
        m.core.bias_ih_l0[rows] = bias
        m.core.bias_hh_l0[rows] = 0


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
    ("cell", "blocks", "gate"),
    [("rnn", ["W"], None), ("lstm", ["W_i", "W_f", "W_g", "W_o"], "f"),
     ("gru", ["W_r", "W_z", "W_n"], "z")],
)  # fmt: skip
def test_metric_names_are_stable_and_mlflow_safe(cell, blocks, gate):
    got = mechanism.metrics(model(cell), tokens(12), distance=5)
    expected = [f"mech/{block}_{s}" for block in blocks for s in ("radius", "sv")]
    if gate is not None:
        expected += [f"mech/{gate}_tau_{s}" for s in ("median", "max", "share")]
    assert list(got) == expected
    assert all(re.fullmatch(r"mech/[A-Za-z0-9_]+", name) for name in got)
    assert all(isinstance(v, float) for v in got.values())


# --- the gate trace against the fused modules ---


@pytest.mark.parametrize(
    "options", [{"cell": "lstm", "forget_bias": 2.0}, {"cell": "gru", "chrono_t_max": 50}]
)
def test_the_gate_trace_reproduces_the_fused_modules_states_over_200_steps(options):
    m = model(**options)
    x = tokens(200)
    gates = mechanism.trace(m, x)
    with torch.no_grad():
        out, state = m.core(m.encode(x))  # out: [B, T, H]
    assert gates.logit.shape == gates.h.shape == (B, 200, H)
    assert torch.allclose(gates.h.float(), out, atol=1e-5, rtol=0)
    if m.cell == "lstm":
        assert torch.allclose(gates.c[:, -1].float(), state[1][0], atol=1e-5, rtol=0)
    else:
        assert gates.c is None


def test_the_lstm_trace_is_the_forget_gate_the_fused_module_applies():
    """c(t) is linear in c(t-1) with slope f(t) (h(t-1) held): one fused step from c(t-1) and
    from c(t-1) + 1 differ by f(t) in c. This singles out f among the four gates.
    """
    m = model("lstm", forget_bias=1.0)
    x = tokens(30)
    gates = mechanism.trace(m, x)
    t = 17
    h, c = gates.h[:, t - 1].float()[None], gates.c[:, t - 1].float()[None]
    step = m.encode(x)[:, t : t + 1]
    with torch.no_grad():
        _, (_, c_plain) = m.core(step, (h, c))
        _, (_, c_more) = m.core(step, (h, c + 1))
    f = torch.sigmoid(gates.logit[:, t]).float()
    assert torch.allclose(c_more[0] - c_plain[0], f, atol=1e-5)


def test_the_gru_trace_is_the_update_gate_z():
    """z by hand from the fused module's weights (gates stacked r, z, n; the gate sees
    b_ih + b_hh), at the fused module's own h(t-1).
    """
    m = model("gru", update_bias=1.5)
    x = tokens(30)
    gates = mechanism.trace(m, x)
    with torch.no_grad():
        out, _ = m.core(m.encode(x))
        U_z, W_z = m.core.weight_ih_l0.chunk(3)[1], m.core.weight_hh_l0.chunk(3)[1]
        b_z = (m.core.bias_ih_l0 + m.core.bias_hh_l0).chunk(3)[1]
        t = 17
        z = torch.sigmoid(m.encode(x)[:, t] @ U_z.T + out[:, t - 1] @ W_z.T + b_z)
    assert torch.allclose(torch.sigmoid(gates.logit[:, t]).float(), z, atol=1e-5)


# --- time constants ---


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_pinned_keep_gate_gives_each_unit_the_time_constant_one_plus_u(cell):
    """bias log(u), u = 1..8: the gate is u / (1 + u) at every step, 1 / (1 - gate) = 1 + u."""
    m = model(cell)
    u = torch.arange(1.0, H + 1)
    pin_keep_gate(m, torch.log(u))
    x = tokens(40)
    gates = mechanism.trace(m, x)
    assert gates.gate == mechanism.KEEP_GATE[cell]
    tau = mechanism.unit_time_constants(gates)
    assert torch.allclose(tau, 1 + u.double(), rtol=1e-5, atol=0)
    taus = mechanism.time_constants(m, x, distance=5)  # tau: 2, 3, ..., 9
    assert taus.median == pytest.approx(5.5, rel=1e-5)  # between 5 and 6
    assert taus.max == pytest.approx(9.0, rel=1e-5)
    assert taus.share == pytest.approx(5 / 8)  # tau 5, 6, 7, 8, 9
    assert mechanism.time_constants(m, x, distance=10).share == 0
    assert mechanism.time_constants(m, x, distance=1).share == 1


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_a_large_keep_bias_gives_one_over_one_minus_sigmoid_b(cell):
    b = 4.0
    m = model(cell)
    pin_keep_gate(m, torch.full((H,), b))
    taus = mechanism.time_constants(m, tokens(20), distance=50)
    expected = 1 / (1 - 1 / (1 + math.exp(-b)))  # 1 + e^b = 55.6
    assert taus.median == pytest.approx(expected, rel=1e-5)
    assert taus.max == pytest.approx(expected, rel=1e-5)
    assert taus.share == 1.0  # 55.6 >= 50
    assert mechanism.time_constants(m, tokens(20), distance=56).share == 0.0


def test_a_gate_that_rounds_to_one_still_has_a_finite_time_constant():
    m = model("lstm")
    pin_keep_gate(m, torch.full((H,), 40.0))
    assert torch.sigmoid(torch.tensor(40.0)) == 1  # in float32, the fused module's precision
    taus = mechanism.time_constants(m, tokens(10), distance=5)
    assert math.isfinite(taus.max)
    assert taus.median == pytest.approx(1 + math.exp(40), rel=1e-6)
    pin_keep_gate(m, torch.full((H,), 800.0))  # exp(-800) is below float64's smallest number
    assert mechanism.time_constants(m, tokens(10), distance=5).max == math.inf  # not -inf


def test_a_unit_that_resets_every_other_step_has_a_short_time_constant():
    """f alternates sigmoid(5) = 0.993 and sigmoid(-5) = 0.007: the unit keeps 0.007 of its
    past every two steps, so its time constant is about 1.09, not the per-element mean of
    1 / (1 - f) (about 75) nor that of the mean gate (about 2).
    """
    m = SequenceModel("lstm", 1, 1, H, tokens=False, input_layer=False)
    pin_keep_gate(m, torch.full((H,), 5.0))
    with torch.no_grad():
        m.core.weight_ih_l0[H] = -10.0  # unit 0 of f reads the input
    x = torch.tensor([0.0, 1.0] * 20)[None, :, None]  # [1, 40, 1]
    tau = mechanism.unit_time_constants(mechanism.trace(m, x))
    logsig = torch.nn.functional.logsigmoid(torch.tensor([5.0, -5.0], dtype=torch.float64))
    expected = 1 / (1 - math.exp(logsig.mean().item()))
    assert tau[0].item() == pytest.approx(expected, rel=1e-9)
    assert tau[0] < 1.1
    assert tau[1:].tolist() == pytest.approx([1 + math.exp(5)] * (H - 1), rel=1e-9)


# --- what is absent, what is refused, what is untouched ---


def test_an_rnn_has_no_gate_measures():
    m = model("rnn")
    x = tokens(10)
    assert mechanism.trace(m, x) is None
    assert mechanism.time_constants(m, x, distance=5) is None
    assert not any("tau" in name for name in mechanism.metrics(m, x, distance=5))


def test_a_distance_below_one_is_refused():
    with pytest.raises(ValueError, match="distance"):
        mechanism.time_constants(model("lstm"), tokens(5), distance=0)


def test_the_measures_leave_the_model_as_it_was():
    m = model("lstm", forget_bias=2.0)
    before = {k: v.clone() for k, v in m.state_dict().items()}
    blocks = mechanism.blocks(m)
    blocks["W_f"].zero_()  # a copy
    mechanism.metrics(m, tokens(10), distance=3)
    after = m.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in m.parameters())


def test_the_reports_names_of_the_measures_are_those_measured():
    """The report imports no torch, so it writes the measures' names out (``MECH_MEASURES``):
    every cell's measures are among them, and every one of them is some cell's.
    """
    from pipeline.report.results import KEEP_GATES, MECH_MEASURES

    measured = {}
    for cell in ("rnn", "lstm", "gru"):
        names = mechanism.metrics(model(cell), tokens(6), distance=3)
        measured |= dict.fromkeys(name.removeprefix(mechanism.PREFIX) for name in names)
    assert sorted(measured) == sorted(MECH_MEASURES)
    assert KEEP_GATES == mechanism.KEEP_GATE
