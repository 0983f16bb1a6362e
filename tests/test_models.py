"""The models: the reference cells follow the seed's equations and agree with the fused PyTorch
modules step for step; init options set what they say; the sequence model has the right shapes.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from pipeline import models
from pipeline.config import runs
from pipeline.config.runs import evaluation_runs
from pipeline.models import SequenceModel, chrono_init, reference_cell, set_forget_bias, unroll

H, B, STEPS = 16, 4, 250


def fused_core(cell: str, seed: int = 0, **options) -> nn.RNNBase:
    torch.manual_seed(seed)
    return models.CORES[cell](H, H, batch_first=True, **options)


def with_forget_bias(core: nn.LSTM) -> nn.LSTM:
    set_forget_bias(core, 3.0)
    return core


def with_chrono(core: nn.LSTM) -> nn.LSTM:
    chrono_init(core, STEPS, generator=torch.Generator().manual_seed(1))
    return core


def initialised(core: nn.RNNBase, how: str) -> nn.RNNBase:
    models.init_recurrent(core, how)
    return core


def irnn() -> nn.RNN:
    """Le et al.'s IRNN, moved off the identity a little (damped, with small random weights) so
    the test is not trivial and 250 ReLU steps stay bounded.
    """
    core = initialised(fused_core("rnn", nonlinearity="relu"), "identity")
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        core.weight_hh_l0.mul_(0.9).add_(0.02 * torch.randn(H, H, generator=g))
        core.bias_ih_l0.fill_(0.01)
    return core


def gru_with(update_bias=None, chrono=None) -> nn.GRU:
    core = fused_core("gru")
    if update_bias is not None:
        models.set_update_bias(core, update_bias)
    if chrono is not None:
        chrono_init(core, chrono, generator=torch.Generator().manual_seed(1))
    return core


VARIANTS = {
    "rnn": lambda: fused_core("rnn"),
    "rnn_orthogonal": lambda: initialised(fused_core("rnn"), "orthogonal"),
    "irnn": irnn,
    "gru": lambda: fused_core("gru"),
    "gru_update_bias": lambda: gru_with(update_bias=2.0),
    "gru_chrono": lambda: gru_with(chrono=STEPS),
    "lstm": lambda: fused_core("lstm"),
    "lstm_forget_bias_3": lambda: with_forget_bias(fused_core("lstm")),
    "lstm_chrono": lambda: with_chrono(fused_core("lstm")),
    "lstm_orthogonal": lambda: initialised(fused_core("lstm"), "orthogonal"),
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_reference_cell_agrees_with_fused_core_over_250_steps(variant):
    core = VARIANTS[variant]()
    x = torch.randn(B, STEPS, H, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        out, state = core(x)  # out: [B, T, H]
        hs, cs = unroll(reference_cell(core), x)
    assert len(hs) == STEPS
    assert torch.allclose(torch.stack(hs, dim=1), out, atol=1e-5, rtol=0)
    h_n = state[0] if isinstance(core, nn.LSTM) else state
    assert torch.allclose(hs[-1], h_n[0], atol=1e-5, rtol=0)
    if isinstance(core, nn.LSTM):
        assert len(cs) == STEPS
        assert torch.allclose(cs[-1], state[1][0], atol=1e-5, rtol=0)
    else:
        assert cs is None


def test_reference_cell_agrees_inside_the_sequence_model():
    torch.manual_seed(3)
    model = SequenceModel("lstm", n_inputs=10, n_outputs=5, hidden_size=H, forget_bias=2.0)
    x = torch.randint(10, (B, 220))
    with torch.no_grad():
        hs, _ = unroll(reference_cell(model.core), model.encode(x))
        assert torch.allclose(model.V(hs[-1]), model(x), atol=1e-5, rtol=0)


def test_reference_cell_is_a_copy():
    core = fused_core("lstm")
    cell = reference_cell(core)
    with torch.no_grad():
        core.weight_hh_l0.zero_()
    assert cell.W["f"].abs().sum() > 0


@pytest.mark.parametrize(
    "core",
    [
        nn.LSTM(4, 4, num_layers=2),
        nn.GRU(4, 4, bidirectional=True),
        nn.RNN(4, 4, bias=False),
    ],
    ids=["two layers", "bidirectional", "no bias"],
)
def test_reference_cell_refuses_what_it_does_not_cover(core):
    with pytest.raises(ValueError):
        reference_cell(core)


# --- the seed's equations, by hand ---


def test_elman_cell_is_tanh_of_W_h_plus_U_x_plus_b():
    core = fused_core("rnn")
    x, h = torch.randn(B, H), torch.randn(B, H)
    U, W = core.weight_ih_l0, core.weight_hh_l0
    b = core.bias_ih_l0 + core.bias_hh_l0
    by_hand = torch.tanh(h @ W.T + x @ U.T + b)
    with torch.no_grad():
        fused, _ = core(x[:, None], h[None])
        ref, _ = reference_cell(core)(x, h)
    assert torch.allclose(fused[:, 0], by_hand, atol=1e-6)
    assert torch.allclose(ref, by_hand, atol=1e-6)


def test_lstm_cell_is_the_seeds_equations():
    core = fused_core("lstm")
    x, h, c = torch.randn(B, H), torch.randn(B, H), torch.randn(B, H)
    # nn.LSTM stacks the gates i, f, g, o; the gate bias is b_ih + b_hh
    U = dict(zip("ifgo", core.weight_ih_l0.chunk(4), strict=True))
    W = dict(zip("ifgo", core.weight_hh_l0.chunk(4), strict=True))
    b = dict(zip("ifgo", (core.bias_ih_l0 + core.bias_hh_l0).chunk(4), strict=True))
    pre = {k: h @ W[k].T + x @ U[k].T + b[k] for k in "ifgo"}
    f, i, o = (torch.sigmoid(pre[k]) for k in "fio")
    g = torch.tanh(pre["g"])
    c_next = f * c + i * g
    h_next = o * torch.tanh(c_next)
    with torch.no_grad():
        _, (h_fused, c_fused) = core(x[:, None], (h[None], c[None]))
        h_ref, c_ref = reference_cell(core)(x, h, c)
    assert torch.allclose(h_fused[0], h_next, atol=1e-6)
    assert torch.allclose(c_fused[0], c_next, atol=1e-6)
    assert torch.allclose(h_ref, h_next, atol=1e-6)
    assert torch.allclose(c_ref, c_next, atol=1e-6)


# --- init options ---


@pytest.mark.parametrize("value", [0.0, 1.0, 3.0, -2.5])
def test_set_forget_bias_sets_the_sum_of_the_two_biases(value):
    core = fused_core("lstm")
    before_ih, before_hh = core.bias_ih_l0.detach().clone(), core.bias_hh_l0.detach().clone()
    set_forget_bias(core, value)
    f = slice(H, 2 * H)
    assert torch.allclose(core.bias_ih_l0[f] + core.bias_hh_l0[f], torch.full((H,), value))
    others = torch.ones(4 * H, dtype=torch.bool)
    others[f] = False
    assert torch.equal(core.bias_ih_l0[others], before_ih[others])
    assert torch.equal(core.bias_hh_l0[others], before_hh[others])
    assert reference_cell(core).b["f"].tolist() == pytest.approx([value] * H)


def test_orthogonal_init_makes_each_gate_block_orthogonal():
    for cell, gates in (("rnn", 1), ("gru", 3), ("lstm", 4)):
        core = initialised(fused_core(cell), "orthogonal")
        for g in range(gates):
            W = core.weight_hh_l0[g * H : (g + 1) * H].detach()
            assert torch.allclose(W @ W.T, torch.eye(H), atol=1e-5), (cell, g)
    untouched = fused_core("rnn").weight_hh_l0.detach()
    assert not torch.allclose(untouched @ untouched.T, torch.eye(H), atol=1e-2)


def test_glorot_init_draws_each_gate_block_from_glorot_uniform():
    """Glorot & Bengio's uniform for an H x H block: U[-sqrt(3/H), sqrt(3/H)], variance 1/H."""
    hidden = 256
    for cell, gates in (("rnn", 1), ("lstm", 4)):
        core = models.CORES[cell](hidden, hidden, batch_first=True)
        models.init_recurrent(core, "glorot")
        bound = math.sqrt(3 / hidden)
        for g in range(gates):
            W = core.weight_hh_l0[g * hidden : (g + 1) * hidden].detach()
            assert W.abs().max() <= bound and W.abs().max() > 0.99 * bound, (cell, g)
            assert W.var().item() == pytest.approx(1 / hidden, rel=0.02)
    pytorch = models.CORES["rnn"](hidden, hidden).weight_hh_l0.detach()
    assert pytorch.var().item() == pytest.approx(1 / (3 * hidden), rel=0.02)  # a third of it


def test_glorot_input_init_draws_each_gate_block_of_u_by_its_fan_in():
    """U's block for one gate is H x width: U[-sqrt(6/(width + H)), +sqrt(...)]."""
    hidden, width = 128, 2
    model = SequenceModel("lstm", width, 1, hidden, tokens=False, input_layer=False,
                          input_init="glorot")  # fmt: skip
    bound = math.sqrt(6 / (width + hidden))
    for g in range(4):
        U = model.core.weight_ih_l0[g * hidden : (g + 1) * hidden].detach()
        assert U.abs().max() <= bound and U.abs().max() > 0.95 * bound, g
    pytorch = SequenceModel("lstm", width, 1, hidden, tokens=False, input_layer=False)
    assert pytorch.core.weight_ih_l0.abs().max() <= 1 / math.sqrt(hidden)  # 0.088 against 0.12
    with pytest.raises(ValueError, match="input_init"):
        models.init_input(model.core, "orthogonal")


def test_identity_init_is_the_irnn():
    core = initialised(fused_core("rnn", nonlinearity="relu"), "identity")
    assert torch.equal(core.weight_hh_l0, torch.eye(H))
    assert not core.bias_ih_l0.any() and not core.bias_hh_l0.any()
    with pytest.raises(ValueError, match="RNN-only"):
        models.init_recurrent(fused_core("lstm"), "identity")


def test_irnn_cell_is_relu_of_W_h_plus_U_x_plus_b():
    core = irnn()
    x, h = torch.randn(B, H), torch.randn(B, H)
    U, W = core.weight_ih_l0, core.weight_hh_l0
    b = core.bias_ih_l0 + core.bias_hh_l0
    expected = torch.relu(h @ W.T + x @ U.T + b)
    got, _ = reference_cell(core)(x, h)
    assert torch.allclose(got, expected, atol=1e-6)
    assert (got == 0).any() and (got > 0).any()  # the ReLU is doing something


@pytest.mark.parametrize("value", [0.0, 2.0, -1.5])
def test_update_bias_sets_the_gru_z_gate(value):
    core = gru_with(update_bias=value)
    assert reference_cell(core).b["z"].tolist() == pytest.approx([value] * H)
    with pytest.raises(ValueError, match="GRU-only"):
        models.set_update_bias(fused_core("lstm"), value)


def test_gru_chrono_sets_z_to_log_of_time_scales():
    core = gru_with(chrono=100)
    z = reference_cell(core).b["z"]
    assert (z >= 0).all() and (z <= math.log(99) + 1e-6).all() and z.std() > 0.3
    with pytest.raises(ValueError, match="LSTM and GRU"):
        chrono_init(fused_core("rnn"), 50)


def test_chrono_init_spreads_time_scales_up_to_t_max():
    core = fused_core("lstm")
    t_max = 100
    chrono_init(core, t_max, generator=torch.Generator().manual_seed(0))
    b = reference_cell(core).b
    assert (b["f"] >= 0).all() and (b["f"] <= math.log(t_max - 1) + 1e-6).all()
    assert torch.allclose(b["i"], -b["f"])
    assert b["f"].std() > 0.3  # spread, not one value


def test_sequence_model_forget_bias_option():
    torch.manual_seed(0)
    model = SequenceModel("lstm", 10, 4, H, forget_bias=3.0)
    assert torch.allclose(reference_cell(model.core).b["f"], torch.full((H,), 3.0))


@pytest.mark.parametrize("cell", ["rnn", "gru"])
def test_lstm_only_init_options_refuse_other_cores(cell):
    """A GRU's second bias block is its update gate: setting it as a forget gate is an error."""
    core = fused_core(cell)
    before = core.bias_ih_l0.detach().clone()
    with pytest.raises(ValueError, match="LSTM-only"):
        set_forget_bias(core, 3.0)
    assert torch.equal(core.bias_ih_l0, before)
    with pytest.raises(ValueError, match="LSTM-only"):
        SequenceModel(cell, 4, 2, H, forget_bias=3.0)
    with pytest.raises(ValueError, match="RNN option"):
        SequenceModel("lstm", 4, 2, H, nonlinearity="relu")


# --- the sequence model ---


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("readout", ["last", "all"])
def test_sequence_model_shapes_for_tokens(cell, readout):
    model = SequenceModel(cell, n_inputs=12, n_outputs=5, hidden_size=H, readout=readout)
    x = torch.randint(12, (3, 7), dtype=torch.uint8)
    assert model.encode(x).shape == (3, 7, H)
    assert model(x).shape == ((3, 5) if readout == "last" else (3, 7, 5))


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_sequence_model_shapes_for_float_inputs(cell):
    model = SequenceModel(cell, n_inputs=2, n_outputs=1, hidden_size=H, tokens=False)
    x = torch.rand(3, 9, 2)
    assert isinstance(model.encoder, nn.Linear)
    assert model(x).shape == (3, 1)


def test_last_readout_is_the_last_step_of_all():
    torch.manual_seed(0)
    last = SequenceModel("gru", 12, 5, H, readout="last")
    every = SequenceModel("gru", 12, 5, H, readout="all")
    every.load_state_dict(last.state_dict())
    x = torch.randint(12, (3, 7))
    assert torch.allclose(every(x)[:, -1], last(x))


def test_sequence_model_rejects_unknown_readout():
    with pytest.raises(ValueError, match="readout"):
        SequenceModel("rnn", 4, 2, H, readout="first")


def test_one_model_class_for_every_cell():
    cores = {cell: type(SequenceModel(cell, 4, 2, H).core) for cell in ("rnn", "lstm", "gru")}
    assert cores == {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
    assert SequenceModel("rnn", 4, 2, H).core.nonlinearity == "tanh"
    assert SequenceModel("rnn", 4, 2, H).core.batch_first


def test_parameter_count():
    model = SequenceModel("lstm", n_inputs=10, n_outputs=3, hidden_size=H)
    embedding, lstm, head = 10 * H, 4 * H * (H + H + 2), H * 3 + 3
    assert models.parameter_count(model) == embedding + lstm + head


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
@pytest.mark.parametrize("tokens", [True, False])
@pytest.mark.parametrize("input_layer", [True, False])
def test_counted_parameters_match_the_built_model(cell, tokens, input_layer):
    for hidden in (1, 7, 40):
        model = SequenceModel(cell, 10, 3, hidden, tokens=tokens, input_layer=input_layer)
        counted = runs.count_parameters(cell, 10, 3, hidden, tokens, input_layer)
        assert counted == models.parameter_count(model)


def test_without_an_input_layer_the_cell_reads_one_hot_tokens_or_raw_channels():
    tokens = SequenceModel("lstm", n_inputs=10, n_outputs=9, hidden_size=40, input_layer=False)
    x = torch.tensor([[3, 0, 9]])
    assert torch.equal(tokens.encode(x), nn.functional.one_hot(x, 10).float())
    assert tokens.core.input_size == 10 and tokens(x).shape == (1, 9)
    # Arjovsky et al. 2016's copy LSTM (40 units, 10 inputs, 9 outputs), no peephole
    assert models.parameter_count(tokens) == 4 * (40 * 10 + 40 * 40 + 2 * 40) + 40 * 9 + 9
    floats = SequenceModel("rnn", 2, 1, 8, tokens=False, input_layer=False)
    values = torch.rand(1, 5, 2)
    assert torch.equal(floats.encode(values), values) and floats.core.input_size == 2
    cell = models.reference_cell(tokens.core)
    hs, _ = models.unroll(cell, tokens.encode(x))
    fused, _ = tokens.core(tokens.encode(x))
    assert torch.allclose(hs[-1], fused[:, -1], atol=1e-6)


@pytest.mark.parametrize("cell", ["rnn", "gru", "lstm"])
def test_a_parameter_budget_gives_the_largest_hidden_size_within_it(cell):
    budget = 6500
    hidden = runs.hidden_for_budget(cell, 10, 9, True, budget)
    assert runs.count_parameters(cell, 10, 9, hidden, True) <= budget
    assert runs.count_parameters(cell, 10, 9, hidden + 1, True) > budget
    matched = {c: runs.hidden_for_budget(c, 10, 9, True, budget) for c in ("rnn", "lstm")}
    assert matched["rnn"] > 1.8 * matched["lstm"]  # the RNN gets about twice the units


@pytest.mark.parametrize("input_layer", [True, False])
def test_a_runs_counted_parameters_are_those_of_the_model_it_trains(input_layer):
    from pipeline import config
    from pipeline.train.saved import build_model

    exp = config.Experiment(
        name="count",
        tasks=[{"task": "recall", "distances": [10]}, {"task": "adding", "distances": [10]}],
        models=[
            {"name": "lstm", "cell": "lstm", "hidden_size": 16, "input_layer": input_layer},
            {"name": "gru", "cell": "gru", "parameters": "lstm", "input_layer": input_layer},
        ],
        seeds=[0],
    )
    for spec in evaluation_runs(exp):
        assert spec.parameter_count == models.parameter_count(build_model(spec))
