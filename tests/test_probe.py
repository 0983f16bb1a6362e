"""The gradient probe on cases whose answer is known: geometric decay through a near-linear RNN
and through an LSTM cell whose forget gate is pinned, agreement with autograd on the fused
modules, and the RNN-vs-LSTM ordering at initialisation.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from pipeline.models import SequenceModel, reference_cell, unroll
from pipeline.probe import gradient_profile
from pipeline.tasks import Adding, Copy, Recall

H, DISTANCE, BATCH = 16, 30, 64


def geometric(rho: float, n: int, scale: float = 1.0) -> list[float]:
    return [scale * rho**k for k in range(n)]


# --- analytic cases through the real probe ---


def near_linear_rnn(a: float) -> SequenceModel:
    """A tanh RNN kept in tanh's linear range: W = a I, tiny inputs, no biases, so
    dL/dh_{t-1} = W^T diag(1 - h_t^2) dL/dh_t ~ a dL/dh_t.
    """
    torch.manual_seed(0)
    model = SequenceModel("rnn", n_inputs=2, n_outputs=1, hidden_size=H, tokens=False)
    with torch.no_grad():
        model.encoder.weight.mul_(1e-3)
        model.encoder.bias.zero_()
        model.core.weight_hh_l0.copy_(a * torch.eye(H))
        model.core.weight_ih_l0.mul_(0.1)
        model.core.bias_ih_l0.zero_()
        model.core.bias_hh_l0.zero_()
    return model


@pytest.mark.parametrize("a", [0.5, 0.8, 0.95, -0.8])
def test_near_linear_rnn_gradient_decays_like_a_to_the_k(a):
    task = Adding()
    x, y = task.generate(DISTANCE, BATCH, seed=0)
    profile = gradient_profile(near_linear_rnn(a), task, x, y, DISTANCE)
    median = profile.h["median"]
    expected = geometric(abs(a), DISTANCE + 1, scale=median[0])
    assert median == pytest.approx(expected, rel=1e-3)
    assert profile.summary["h_rho"] == pytest.approx(abs(a), rel=0.01)
    assert profile.summary["h_key_share"] == pytest.approx(abs(a) ** DISTANCE, rel=0.01)
    assert profile.summary["h_efold"] == pytest.approx(-1 / math.log(abs(a)), rel=0.05)
    assert profile.summary["h_rho_r2"] > 0.999  # a straight line in log norm
    assert profile.c is None
    # loss-free: with W = a I in tanh's linear range, dh_s/dh_{s-k} = a^k I
    jacobian = profile.h["jacobian"]
    assert jacobian[0] == pytest.approx(1.0, rel=1e-12)
    assert jacobian == pytest.approx(geometric(abs(a), DISTANCE + 1), rel=1e-3)
    assert profile.summary["h_jacobian_key"] == pytest.approx(abs(a) ** DISTANCE, rel=1e-3)


def pinned_forget_lstm(f: float, task: Recall, hidden_to_hidden: bool) -> SequenceModel:
    """An LSTM whose forget gate is the constant f: U_f = W_f = 0, b_f = logit(f). With
    ``hidden_to_hidden`` off every W is 0, so dL/dc_{t-1} = f dL/dc_t exactly; with it on, the
    input gate is shut (b_i = -6) and the output gate open (b_o = 6), so the paths through h and
    the other gates carry only sigma'(6) ~ 0.0025 of the gradient.
    """
    torch.manual_seed(0)
    model = SequenceModel("lstm", task.n_inputs, task.n_outputs, hidden_size=H)
    i, f_, o = slice(0, H), slice(H, 2 * H), slice(3 * H, 4 * H)  # nn.LSTM's order: i, f, g, o
    core = model.core
    with torch.no_grad():
        core.weight_ih_l0[f_].zero_()
        core.weight_hh_l0[f_].zero_()
        core.bias_hh_l0.zero_()
        core.bias_ih_l0[f_].fill_(math.log(f / (1 - f)))
        if hidden_to_hidden:
            core.bias_ih_l0[i].fill_(-6.0)
            core.bias_ih_l0[o].fill_(6.0)
        else:
            core.weight_hh_l0.zero_()
    return model


@pytest.mark.parametrize("f", [0.8, 0.9, 0.95])
def test_pinned_forget_gate_exact(f):
    task = Recall()
    x, y = task.generate(DISTANCE, BATCH, seed=1)
    profile = gradient_profile(pinned_forget_lstm(f, task, False), task, x, y, DISTANCE)
    median = profile.c["median"]
    assert median == pytest.approx(geometric(f, len(median), scale=median[0]), rel=1e-4)
    assert profile.summary["c_rho"] == pytest.approx(f, rel=1e-5)
    # with W = 0, h_t reaches the loss only at the scored step
    assert profile.h["median"][0] > 0 and max(profile.h["q75"][1:]) == 0
    # the loss-free measure too: dh_s/dc_{s-k} = o_s tanh'(c_s) f^k, and h_{s-k} moves nothing
    jc = profile.c["jacobian"]
    assert [j / jc[0] for j in jc] == pytest.approx(geometric(f, len(jc)), rel=1e-6)
    assert profile.h["jacobian"][0] == pytest.approx(1.0) and max(profile.h["jacobian"][1:]) == 0


@pytest.mark.parametrize("f", [0.8, 0.9, 0.95])
def test_pinned_forget_gate_with_recurrent_weights(f):
    task = Recall()
    x, y = task.generate(DISTANCE, BATCH, seed=1)
    profile = gradient_profile(pinned_forget_lstm(f, task, True), task, x, y, DISTANCE)
    median = profile.c["median"]
    assert median == pytest.approx(geometric(f, len(median), scale=median[0]), rel=0.05)
    assert profile.summary["c_rho"] == pytest.approx(f, rel=0.02)
    assert profile.summary["c_key_share"] == pytest.approx(f**DISTANCE, rel=0.05)


# --- agreement with autograd on the fused module ---


def make_model(cell: str, task, seed: int, input_layer: bool = True) -> SequenceModel:
    torch.manual_seed(seed)
    tokens = not isinstance(task, Adding)
    return SequenceModel(
        cell, task.n_inputs, task.n_outputs, H, task.readout, tokens, input_layer=input_layer
    )


def fused_state_gradients(model: SequenceModel, task, x, y, distance: int, t: int):
    """Total dL/dh_t and (LSTM) dL/dc_t, ``[B, H]``, from the fused core alone: run it to t, make
    the state a leaf, run it on from that state to the scored step. Like the probe, dL/dc_t
    counts the path c_t -> h_t = o_t tanh(c_t) too, added here with o_t from the fused weights.
    """
    s, core = task.scored_step(distance), model.core
    inputs = model.encode(x).detach()
    out, state = core(inputs[:, : t + 1])
    lstm = isinstance(core, nn.LSTM)
    leaves = [v.detach()[0].requires_grad_() for v in (state if lstm else (state,))]
    if t == s:
        h_s = leaves[0]
    else:
        initial = tuple(v[None] for v in leaves) if lstm else leaves[0][None]
        h_s = core(inputs[:, t + 1 : s + 1], initial)[0][:, -1]
    loss = task.scored_loss(model.V(h_s), y, distance)
    grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    if not lstm:
        return grads[0], None
    dh, dc = grads[0], grads[1] if grads[1] is not None else torch.zeros_like(grads[0])
    with torch.no_grad():
        n = model.hidden_size
        o_gate = slice(3 * n, 4 * n)  # nn.LSTM's gate order: i, f, g, o
        h_before = out[:, t - 1] if t > 0 else torch.zeros_like(dh)
        o = torch.sigmoid(
            h_before @ core.weight_hh_l0[o_gate].T
            + inputs[:, t] @ core.weight_ih_l0[o_gate].T
            + core.bias_ih_l0[o_gate]
            + core.bias_hh_l0[o_gate]
        )
        return dh, dc + dh * o * (1 - torch.tanh(leaves[1]) ** 2)


def per_sample_median(grad: torch.Tensor) -> float:
    norms = grad.norm(dim=-1).double()
    return torch.quantile(norms, 0.5).item()


TASKS = [(Recall(n_keys=4), 12), (Copy(n_symbols=4, copy_length=3), 8), (Adding(), 10)]


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize(("task", "distance"), TASKS, ids=[t.name for t, _ in TASKS])
@pytest.mark.parametrize("input_layer", [True, False], ids=["input-layer", "direct"])
def test_probe_matches_fused_autograd_on_states(cell, task, distance, input_layer):
    x, y = task.generate(distance, 32, seed=2)
    model = make_model(cell, task, seed=3, input_layer=input_layer)
    profile = gradient_profile(model, task, x, y, distance)
    s = task.scored_step(distance)
    for k in (0, 1, distance // 2, distance):
        grads = fused_state_gradients(model, task, x, y, distance, s - k)
        assert profile.h["median"][k] == pytest.approx(per_sample_median(grads[0]), rel=1e-4)
        if cell == "lstm":
            assert profile.c["median"][k] == pytest.approx(per_sample_median(grads[1]), rel=1e-4)


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize(("task", "distance"), TASKS, ids=[t.name for t, _ in TASKS])
def test_reference_unroll_input_gradients_match_fused(cell, task, distance):
    """dL/dx_t for every encoded input x_t: the probe's unroll against the fused core."""
    x, y = task.generate(distance, 32, seed=4)
    model = make_model(cell, task, seed=5)
    s = task.scored_step(distance)
    inputs = model.encode(x).detach().requires_grad_()
    hs, _ = unroll(reference_cell(model.core), inputs[:, : s + 1])
    (reference,) = torch.autograd.grad(task.scored_loss(model.V(hs[s]), y, distance), inputs)
    out, _ = model.core(inputs)
    (fused,) = torch.autograd.grad(task.scored_loss(model.V(out[:, s]), y, distance), inputs)
    assert fused.abs().max() > 0
    assert torch.allclose(reference, fused, atol=1e-5)
    assert (reference[:, s + 1 :] == 0).all()  # steps after the scored one do not reach L


def test_key_share_is_the_median_of_each_samples_own_ratio():
    task, distance = Recall(n_keys=4), 12
    x, y = task.generate(distance, 33, seed=6)
    model = make_model("rnn", task, seed=7)
    s = task.scored_step(distance)
    at_output = fused_state_gradients(model, task, x, y, distance, s)[0].norm(dim=-1).double()
    at_key = fused_state_gradients(model, task, x, y, distance, s - distance)[0].norm(dim=-1)
    ratios = at_key.double() / at_output
    summary = gradient_profile(model, task, x, y, distance).summary
    assert summary["h_key_share"] == pytest.approx(torch.quantile(ratios, 0.5).item(), rel=1e-4)
    assert summary["h_key_share_q25"] < summary["h_key_share"] < summary["h_key_share_q75"]
    ratio_of_medians = torch.quantile(at_key.double(), 0.5) / torch.quantile(at_output, 0.5)
    assert summary["h_key_share"] != pytest.approx(ratio_of_medians.item(), rel=1e-3)


def test_float64_measures_what_float32_rounds_to_zero():
    """A tanh RNN at distance 80: float32 underflows to 0, the float64 probe measures a share."""
    task, distance = Recall(), 80
    x, y = task.generate(distance, 32, seed=0)
    torch.manual_seed(0)
    model = SequenceModel("rnn", task.n_inputs, task.n_outputs, hidden_size=64)
    s = task.scored_step(distance)
    in_float32 = fused_state_gradients(model, task, x, y, distance, s - distance)[0]
    assert (in_float32.norm(dim=-1) == 0).all()  # squares below float32's range: what a
    # float32 probe reported
    summary = gradient_profile(model, task, x, y, distance).summary
    assert 0 < summary["h_key_share"] < 1e-20
    assert summary["h_jacobian_key"] > 0


def test_probe_leaves_the_model_unchanged():
    task = Recall(n_keys=4)
    x, y = task.generate(10, 16, seed=0)
    model = make_model("lstm", task, seed=0)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    gradient_profile(model, task, x, y, 10)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())


def test_profile_rows():
    task = Recall(n_keys=4)
    x, y = task.generate(10, 16, seed=0)
    profile = gradient_profile(make_model("lstm", task, seed=0), task, x, y, 10)
    rows = profile.rows()
    assert [r["k"] for r in rows] == list(range(task.scored_step(10) + 1))
    stats = ("median", "q25", "q75", "jacobian")
    assert set(rows[0]) == {"k"} | {f"{state}_{stat}" for state in "hc" for stat in stats}
    assert all(r["h_q25"] <= r["h_median"] <= r["h_q75"] for r in rows)
    names = ("key_share", "key_share_q25", "key_share_q75", "rho", "rho_r2", "efold")
    assert set(profile.summary) == {
        f"{state}_{name}" for state in "hc" for name in (*names, "jacobian_key")
    }


# --- the point of the project, at initialisation ---


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_at_init_rnn_gradient_vanishes_while_lstm_cell_keeps_it(seed):
    task = Recall()
    x, y = task.generate(DISTANCE, BATCH, seed=seed)
    torch.manual_seed(seed)
    rnn = SequenceModel("rnn", task.n_inputs, task.n_outputs, 64)
    lstm = SequenceModel("lstm", task.n_inputs, task.n_outputs, 64, forget_bias=3.0)
    r = gradient_profile(rnn, task, x, y, DISTANCE).summary
    c = gradient_profile(lstm, task, x, y, DISTANCE).summary
    assert r["h_key_share"] < 1e-2  # orders of magnitude in 30 steps
    assert c["c_key_share"] > 100 * r["h_key_share"]
    assert c["c_rho"] > r["h_rho"]
    assert c["c_efold"] > r["h_efold"]


def test_probe_on_an_irnn_in_relus_linear_range_sees_no_decay():
    """IRNN (Le et al. 2015): W = I, zero biases, ReLU. With positive inputs every unit stays
    active, so dh_t/dh_{t-1} = I: the gradient neither decays nor grows, and the Jacobian is I.
    """
    task = Adding()
    x, y = task.generate(DISTANCE, BATCH, seed=0)
    torch.manual_seed(0)
    model = SequenceModel(
        "rnn", 2, 1, hidden_size=H, tokens=False, nonlinearity="relu", recurrent_init="identity"
    )
    with torch.no_grad():
        model.encoder.weight.abs_()
        model.encoder.bias.fill_(0.1)
        model.core.weight_ih_l0.abs_().mul_(0.1)
    profile = gradient_profile(model, task, x, y, DISTANCE)
    assert profile.h["median"] == pytest.approx([profile.h["median"][0]] * (DISTANCE + 1))
    assert profile.h["jacobian"] == pytest.approx([1.0] * (DISTANCE + 1))
    assert profile.summary["h_rho"] == pytest.approx(1.0) and profile.summary["h_key_share"] == 1.0
    assert math.isinf(profile.summary["h_efold"])
