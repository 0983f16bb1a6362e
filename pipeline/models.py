"""Full definition of the sequence models, and reference cells that spell out their equations.

``SequenceModel`` is a plain ``nn.Module`` (nothing here knows about Lightning, MLflow or files):
an input layer (an embedding for token tasks, a linear map for the adding task's two channels), a
fused recurrent core picked by ``cell`` at construction (``nn.RNN`` with tanh, ``nn.LSTM``,
``nn.GRU``; batch-first), and a linear head V read out at the last step or at every step.

The reference cells write the seed's equations step by step (``../shared/seed/README.md``), with
the seed's names: U input->hidden, W hidden->hidden, b bias, and for the LSTM the gates f, i, g, o
and the cell c. ``reference_cell(model.core)`` copies a fused module's weights into one, so the
gradient probe can unroll the trained network one step at a time and read dL/dh_t at every step.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

CORES = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class SequenceModel(nn.Module):
    """x ``[B, T]`` token ids (or ``[B, T, n_inputs]`` floats) -> logits ``[B, n_outputs]``
    (``readout="last"``) or ``[B, T, n_outputs]`` (``readout="all"``).
    """

    def __init__(
        self,
        cell: str,
        n_inputs: int,
        n_outputs: int,
        hidden_size: int,
        readout: str = "last",
        tokens: bool = True,
        forget_bias: float | None = None,
        chrono_t_max: int | None = None,
        nonlinearity: str = "tanh",
        recurrent_init: str = "pytorch",
        update_bias: float | None = None,
        input_layer: bool = True,
        input_init: str = "pytorch",
    ) -> None:
        """Init options (each refuses a core it does not apply to): ``nonlinearity`` of an RNN
        (tanh or relu); ``recurrent_init`` of W (``pytorch``, ``orthogonal`` or ``glorot`` per
        gate block, or, for an RNN, ``identity`` with zero biases); an LSTM's ``forget_bias``; a
        GRU's ``update_bias``; ``chrono_t_max`` for an LSTM or a GRU. None or the defaults keep
        PyTorch's own initialisation. ``input_layer=False`` feeds the inputs straight into the
        cell (token ids one-hot, float channels as they are), as the seed's equations and most
        papers do, instead of through an embedding (or linear map) of the hidden width;
        ``input_init="glorot"`` draws each gate's block of the input matrix U from Glorot &
        Bengio's uniform, as Arjovsky et al. 2016 did.
        """
        super().__init__()
        if readout not in ("last", "all"):
            raise ValueError(f"readout must be 'last' or 'all', got {readout!r}")
        self.cell, self.readout, self.hidden_size = cell, readout, hidden_size
        self.tokens = tokens
        # token ids -> vectors of the hidden size; float channels -> the same width; or none
        self.encoder = None
        if input_layer:
            self.encoder = (
                nn.Embedding(n_inputs, hidden_size) if tokens else nn.Linear(n_inputs, hidden_size)
            )
        elif tokens:  # token ids as one-hot rows of the identity (not a parameter, not saved)
            self.register_buffer("one_hot", torch.eye(n_inputs), persistent=False)
        width = hidden_size if input_layer else n_inputs
        options = {"nonlinearity": nonlinearity} if cell == "rnn" else {}
        if cell != "rnn" and nonlinearity != "tanh":
            raise ValueError(f"nonlinearity is an RNN option, got {cell!r}")
        self.core = CORES[cell](width, hidden_size, batch_first=True, **options)
        self.V = nn.Linear(hidden_size, n_outputs)
        init_recurrent(self.core, recurrent_init)
        init_input(self.core, input_init)
        if forget_bias is not None:
            set_forget_bias(self.core, forget_bias)
        if update_bias is not None:
            set_update_bias(self.core, update_bias)
        if chrono_t_max is not None:
            chrono_init(self.core, chrono_t_max)

    def encode(self, x: Tensor) -> Tensor:
        """The input vectors x_t the recurrence sees, ``[B, T, width]`` (the hidden size, or
        without an input layer the number of inputs).
        """
        if self.encoder is None:
            return self.one_hot[x.long()] if self.tokens else x
        return self.encoder(x.long() if self.tokens else x)

    def forward(self, x: Tensor) -> Tensor:
        h, _ = self.core(self.encode(x))  # h: [B, T, hidden_size]
        return self.V(h[:, -1] if self.readout == "last" else h)


def _gate(param: Tensor, index: int, hidden: int) -> Tensor:
    return param[index * hidden : (index + 1) * hidden]


def _per_gate(weight: Tensor, hidden: int, init) -> None:
    """Apply the in-place ``init`` to each gate's block of ``weight``, H rows each."""
    for gate in range(weight.shape[0] // hidden):
        init(_gate(weight, gate, hidden))


def _require_lstm(core: nn.Module, option: str) -> None:
    # the f block of a GRU's biases is its update gate z, and an RNN's is empty: never a no-op
    if not isinstance(core, nn.LSTM):
        raise ValueError(f"{option} is an LSTM-only option, got {type(core).__name__}")


def init_recurrent(core: nn.RNNBase, how: str) -> None:
    """Initialise the recurrent matrix W (``weight_hh``): ``pytorch`` leaves PyTorch's uniform
    init; ``orthogonal`` makes each gate's H x H block a random orthogonal matrix (Saxe et al.
    2014; Henaff et al. 2016), so W preserves norms at the start; ``glorot`` draws each gate's
    block from Glorot & Bengio's uniform, U[-sqrt(3/H), sqrt(3/H)] (variance 1/H, spectral radius
    near 1; PyTorch's U[-1/sqrt(H), 1/sqrt(H)] gives about 0.58), as Arjovsky et al. 2016 did;
    ``identity`` (an RNN only, the IRNN of Le et al. 2015) sets W = I and both bias vectors to
    0. Raises ValueError otherwise.
    """
    if how == "pytorch":
        return
    H = core.hidden_size
    with torch.no_grad():
        if how in ("orthogonal", "glorot"):
            init = nn.init.orthogonal_ if how == "orthogonal" else nn.init.xavier_uniform_
            _per_gate(core.weight_hh_l0, H, init)
        elif how == "identity":
            if not isinstance(core, nn.RNN):
                raise ValueError(f"identity init is an RNN-only option, got {type(core).__name__}")
            core.weight_hh_l0.copy_(torch.eye(H))
            core.bias_ih_l0.zero_()
            core.bias_hh_l0.zero_()
        else:
            raise ValueError(
                f"recurrent_init must be pytorch, orthogonal, glorot or identity, got {how!r}"
            )


def init_input(core: nn.RNNBase, how: str) -> None:
    """Initialise the input matrix U (``weight_ih``): ``pytorch`` leaves PyTorch's uniform init;
    ``glorot`` draws each gate's block, H x width, from U[-sqrt(6/(width + H)), +sqrt(...)].
    Raises ValueError otherwise.
    """
    if how == "pytorch":
        return
    if how != "glorot":
        raise ValueError(f"input_init must be pytorch or glorot, got {how!r}")
    with torch.no_grad():
        _per_gate(core.weight_ih_l0, core.hidden_size, nn.init.xavier_uniform_)


def set_update_bias(gru: nn.GRU, value: float) -> None:
    """Give the GRU's update gate z the bias ``value`` (``nn.GRU`` orders its gates r, z, n; b_ih's
    z block is set, b_hh's zeroed). With h(t) = (1 - z) n + z h(t-1), a positive bias keeps h:
    the GRU's counterpart of an LSTM's forget bias. Raises ValueError for another core.
    """
    if not isinstance(gru, nn.GRU):
        raise ValueError(f"update_bias is a GRU-only option, got {type(gru).__name__}")
    hidden = gru.hidden_size
    with torch.no_grad():
        _gate(gru.bias_ih_l0, 1, hidden).fill_(value)
        _gate(gru.bias_hh_l0, 1, hidden).zero_()


def set_forget_bias(lstm: nn.LSTM, value: float) -> None:
    """Give the LSTM's forget gate the bias ``value``.

    ``nn.LSTM`` keeps two bias vectors, b_ih and b_hh, in the gate order i, f, g, o; the gate sees
    their sum, so b_ih's f block is set to ``value`` and b_hh's to zero. Raises ValueError for a
    core that is not an LSTM.
    """
    _require_lstm(lstm, "forget_bias")
    hidden = lstm.hidden_size
    with torch.no_grad():
        _gate(lstm.bias_ih_l0, 1, hidden).fill_(value)
        _gate(lstm.bias_hh_l0, 1, hidden).zero_()


def chrono_init(core: nn.RNNBase, t_max: int, generator: torch.Generator | None = None) -> None:
    """Chrono init (Tallec & Ollivier 2018): b_f = log(u), u ~ U[1, t_max - 1], and b_i = -b_f.

    A forget bias of log(u) gives the cell a memory time scale of about u steps (1 / (1 - f) =
    1 + u), so the units' time scales spread over the range of dependencies the task has. For a
    GRU, whose update gate z plays the forget gate's part (h keeps z of h(t-1)), b_z = log(u)
    gives the same time scale, 1 / (1 - z) = 1 + u; the GRU has no separate input gate (1 - z
    is its input weight), so nothing else is set. Raises ValueError for an RNN.
    """
    if isinstance(core, nn.GRU):
        blocks = {1: 1.0}  # z: +log(u)
    elif isinstance(core, nn.LSTM):
        blocks = {1: 1.0, 0: -1.0}  # f: +log(u), i: -log(u)
    else:
        raise ValueError(f"chrono_t_max is an LSTM and GRU option, got {type(core).__name__}")
    hidden = core.hidden_size
    u = torch.rand(hidden, generator=generator) * (t_max - 2) + 1
    with torch.no_grad():
        for block, sign in blocks.items():
            _gate(core.bias_ih_l0, block, hidden).copy_(sign * torch.log(u))
            _gate(core.bias_hh_l0, block, hidden).zero_()


class ElmanCell(nn.Module):
    """h(t) = tanh(W h(t-1) + U x(t) + b), the seed's RNN (which leaves b out; here b = b_ih +
    b_hh), or with ``nonlinearity="relu"`` h(t) = max(0, W h(t-1) + U x(t) + b), the IRNN's.
    """

    ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu}

    def __init__(self, U: Tensor, W: Tensor, b: Tensor, nonlinearity: str = "tanh") -> None:
        super().__init__()
        self.U, self.W, self.b = nn.Parameter(U), nn.Parameter(W), nn.Parameter(b)
        self.nonlinearity = nonlinearity
        self.activation = self.ACTIVATIONS[nonlinearity]

    def forward(self, x: Tensor, h: Tensor, c: Tensor | None = None) -> tuple[Tensor, None]:
        return self.activation(h @ self.W.T + x @ self.U.T + self.b), None


class LSTMCell(nn.Module):
    """The seed's LSTM, one step::

    f = sigma(W_f h + U_f x + b_f)     i = sigma(W_i h + U_i x + b_i)
    g = tanh (W_g h + U_g x + b_g)     o = sigma(W_o h + U_o x + b_o)
    c(t) = f * c(t-1) + i * g          h(t) = o * tanh(c(t))
    """

    GATES = ("i", "f", "g", "o")  # nn.LSTM's order

    def __init__(self, U: dict[str, Tensor], W: dict[str, Tensor], b: dict[str, Tensor]) -> None:
        super().__init__()
        self.U = nn.ParameterDict({k: nn.Parameter(v) for k, v in U.items()})
        self.W = nn.ParameterDict({k: nn.Parameter(v) for k, v in W.items()})
        self.b = nn.ParameterDict({k: nn.Parameter(v) for k, v in b.items()})

    def _pre(self, gate: str, x: Tensor, h: Tensor) -> Tensor:
        return h @ self.W[gate].T + x @ self.U[gate].T + self.b[gate]

    def forward(self, x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        f = torch.sigmoid(self._pre("f", x, h))  # how much of c(t-1) to keep
        i = torch.sigmoid(self._pre("i", x, h))  # how much new information to write
        g = torch.tanh(self._pre("g", x, h))  # the new information
        c = f * c + i * g
        o = torch.sigmoid(self._pre("o", x, h))  # how much of the cell to show
        return o * torch.tanh(c), c


class GRUCell(nn.Module):
    """PyTorch's GRU, one step (the seed names no GRU equations; these follow ``nn.GRU``)::

    r = sigma(U_r x + W_r h + b_r)     z = sigma(U_z x + W_z h + b_z)
    n = tanh(U_n x + b_in + r * (W_n h + b_hn))
    h(t) = (1 - z) * n + z * h(t-1)
    """

    GATES = ("r", "z", "n")  # nn.GRU's order

    def __init__(self, U: dict, W: dict, b: dict, b_in: Tensor, b_hn: Tensor) -> None:
        super().__init__()
        self.U = nn.ParameterDict({k: nn.Parameter(v) for k, v in U.items()})
        self.W = nn.ParameterDict({k: nn.Parameter(v) for k, v in W.items()})
        self.b = nn.ParameterDict({k: nn.Parameter(v) for k, v in b.items()})  # r and z
        self.b_in, self.b_hn = nn.Parameter(b_in), nn.Parameter(b_hn)

    def forward(self, x: Tensor, h: Tensor, c: Tensor | None = None) -> tuple[Tensor, None]:
        r = torch.sigmoid(x @ self.U["r"].T + h @ self.W["r"].T + self.b["r"])
        z = torch.sigmoid(x @ self.U["z"].T + h @ self.W["z"].T + self.b["z"])
        n = torch.tanh(x @ self.U["n"].T + self.b_in + r * (h @ self.W["n"].T + self.b_hn))
        return (1 - z) * n + z * h, None


def _split(fused: nn.RNNBase, gates: tuple[str, ...]) -> tuple[dict, dict, dict, dict]:
    """Per-gate U (from weight_ih), W (from weight_hh), b_ih and b_hh of a one-layer fused core."""
    H = fused.hidden_size
    U, W, b_ih, b_hh = {}, {}, {}, {}
    for index, gate in enumerate(gates):
        U[gate] = _gate(fused.weight_ih_l0, index, H).detach().clone()
        W[gate] = _gate(fused.weight_hh_l0, index, H).detach().clone()
        b_ih[gate] = _gate(fused.bias_ih_l0, index, H).detach().clone()
        b_hh[gate] = _gate(fused.bias_hh_l0, index, H).detach().clone()
    return U, W, b_ih, b_hh


def reference_cell(fused: nn.RNNBase) -> nn.Module:
    """A step-by-step cell holding a copy of a one-layer fused core's weights."""
    if fused.num_layers != 1 or fused.bidirectional or not fused.bias:
        raise ValueError("reference cells cover one-layer, one-way cores with biases")
    if isinstance(fused, nn.LSTM):
        U, W, b_ih, b_hh = _split(fused, LSTMCell.GATES)
        return LSTMCell(U, W, {k: b_ih[k] + b_hh[k] for k in U})
    if isinstance(fused, nn.GRU):
        U, W, b_ih, b_hh = _split(fused, GRUCell.GATES)
        b = {k: b_ih[k] + b_hh[k] for k in ("r", "z")}
        return GRUCell(U, W, b, b_ih["n"], b_hh["n"])
    if isinstance(fused, nn.RNN) and fused.nonlinearity in ElmanCell.ACTIVATIONS:
        U, W, b_ih, b_hh = _split(fused, ("h",))
        return ElmanCell(U["h"], W["h"], b_ih["h"] + b_hh["h"], fused.nonlinearity)
    raise ValueError(f"no reference cell for {fused!r}")


def unroll(cell: nn.Module, x: Tensor) -> tuple[list[Tensor], list[Tensor] | None]:
    """Run ``cell`` over x ``[B, T, D]`` from a zero state; returns h_1..h_T (and c_1..c_T).

    Each h_t is its own graph node, so ``h_t.retain_grad()`` followed by a backward pass yields
    the total derivative dL/dh_t through every later step.
    """
    B, T, _ = x.shape
    H = cell.W["f"].shape[0] if isinstance(cell, LSTMCell) else _hidden(cell)
    h = x.new_zeros(B, H)
    c = x.new_zeros(B, H) if isinstance(cell, LSTMCell) else None
    hs, cs = [], [] if c is not None else None
    for t in range(T):
        h, c = cell(x[:, t], h, c)
        hs.append(h)
        if cs is not None:
            cs.append(c)
    return hs, cs


def _hidden(cell: nn.Module) -> int:
    return cell.W.shape[0] if isinstance(cell, ElmanCell) else cell.W["z"].shape[0]


def parameter_count(model: nn.Module) -> int:
    return sum(math.prod(p.shape) for p in model.parameters())
