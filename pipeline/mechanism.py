"""Why a model holds information over a gap: its recurrent matrix, and how long its gates keep.

Two measures of a ``SequenceModel``, in the seed's notation (``../shared/seed/README.md``):

1. **The recurrent matrix W**, per gate block (``W`` of an RNN; ``W_i``, ``W_f``, ``W_g``,
   ``W_o`` of an LSTM; ``W_r``, ``W_z``, ``W_n`` of a GRU, split by ``models.reference_cell``):
   its spectral radius rho(W) = max |eigenvalue| and its largest singular value sigma_1(W) (the
   spectral norm). Pascanu, Mikolov & Bengio 2013 ("On the difficulty of training recurrent
   neural networks", sec. 2.1): for a linear recurrence, rho(W) < 1 suffices for long-term
   components of the gradient to vanish and rho(W) > 1 is necessary for them to explode; with a
   nonlinearity whose derivative is bounded by gamma (1 for tanh), sigma_1(W) < 1 / gamma
   suffices for vanishing and sigma_1(W) > 1 / gamma is necessary for exploding. rho <= sigma_1
   always, equal for a normal W; a non-normal W can have rho < 1 < sigma_1, where neither bound
   decides, so both are reported.

2. **Gate time constants.** The gate that keeps the past (the LSTM's forget gate f:
   c(t) = f(t) * c(t-1) + ...; the GRU's update gate z: h(t) = (1 - z) * n + z * h(t-1), as
   ``models.set_update_bias`` says) is recorded at every sample b, step t and unit u of a batch.
   A constant gate a retains a^k over k steps, with the time constant 1 / (1 - a) of Tallec &
   Ollivier 2018 ("Can recurrent neural networks warp time?"; ``models.chrono_init`` uses the
   same: a bias log(u) gives 1 / (1 - f) = 1 + u). For a gate that varies, each unit's time
   constant is that of its **geometric mean** gate over samples and steps::

       a_u   = exp(mean_{b,t} log a(b, t, u))      (so a_u^T = geometric mean over b of prod_t a)
       tau_u = 1 / (1 - a_u)

   Why this and not the mean of the per-element 1 / (1 - a): the path c(t-1) -> c(t) multiplies
   the gates, so what a unit retains over k steps is their product; the per-element mean is
   dominated by saturated elements (one a = 1 - 1e-9 counts 1e9, however often the unit
   resets), and the time constant of the arithmetic mean gate overstates a unit that resets now
   and then (a gate alternating 0.99 and 0.01 has arithmetic mean 0.5, tau 2, but keeps 0.01 of
   its past every two steps: geometric mean 0.1, tau 1.1). log a is taken as logsigmoid of the
   gate's pre-activation in float64, so a gate that rounds to 1 still has a finite time constant.
   Summaries over units: the median (robust to a few saturated units), the largest (can any
   unit span the gap?), and the share of units with tau_u >= ``distance``. These are time
   constants of the gate path alone: the paths through W (h(t-1) into the gates, the GRU's n)
   add to or cut what a unit keeps.

An RNN has no gate: its gate measures are absent (None, no metrics), never a made-up number.

Contract: functions take a one-layer ``SequenceModel`` (as ``reference_cell`` covers) and, for
the gates, a batch x as ``model(x)`` takes it, on the model's device; they compute under
``no_grad`` in float64 there, leave the model unchanged, and write nothing. ``metrics`` returns
a flat dict of floats named for MLflow (``mech/W_f_radius``, ``mech/W_f_sv``,
``mech/f_tau_median``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from pipeline.models import GRUCell, LSTMCell, SequenceModel, reference_cell

PREFIX = "mech/"  # every metric name starts with it
DTYPE = torch.float64
KEEP_GATE = {"lstm": "f", "gru": "z"}  # the gate whose value is the share of the past kept


@dataclass(frozen=True)
class Spectrum:
    """One block of W: ``radius`` = max |eigenvalue|, ``sv`` = the largest singular value."""

    radius: float
    sv: float


@dataclass(frozen=True)
class GateTrace:
    """A batch unrolled by the seed's equations: the keep gate's pre-activation ``logit``
    (the gate is sigmoid(logit)) and the states, each ``[B, T, H]`` in float64; ``c`` is None
    for a GRU.
    """

    gate: str  # "f" or "z"
    logit: Tensor
    h: Tensor
    c: Tensor | None


@dataclass(frozen=True)
class TimeConstants:
    """Summaries over units of tau_u = 1 / (1 - a_u), a_u the unit's geometric mean gate."""

    gate: str  # "f" or "z"
    median: float
    max: float
    share: float  # of units with tau_u >= distance
    distance: int


def blocks(model: SequenceModel) -> dict[str, Tensor]:
    """W's gate blocks, H x H each, by the seed's names: ``W`` (RNN), ``W_i``, ``W_f``, ``W_g``,
    ``W_o`` (LSTM), ``W_r``, ``W_z``, ``W_n`` (GRU), in that order. Copies: editing them leaves
    the model as is.
    """
    cell = reference_cell(model.core)
    if isinstance(cell.W, Tensor):
        return {"W": cell.W.detach()}
    return {f"W_{gate}": cell.W[gate].detach() for gate in cell.GATES}  # the fused order


def spectra(model: SequenceModel) -> dict[str, Spectrum]:
    """Per block of W (named as ``blocks`` names them), its spectral radius and norm."""
    out = {}
    for name, W in blocks(model).items():
        W = W.to(DTYPE)
        radius = torch.linalg.eigvals(W).abs().max().item()
        sv = torch.linalg.matrix_norm(W, ord=2).item()
        out[name] = Spectrum(radius=radius, sv=sv)
    return out


def _lstm_step(cell: LSTMCell, x: Tensor, h: Tensor, c: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """One step of the seed's LSTM; returns f's pre-activation, h(t) and c(t)."""
    pre = {k: h @ cell.W[k].T + x @ cell.U[k].T + cell.b[k] for k in LSTMCell.GATES}
    f, i, o = (torch.sigmoid(pre[k]) for k in "fio")
    g = torch.tanh(pre["g"])
    c = f * c + i * g
    return pre["f"], o * torch.tanh(c), c


def _gru_step(cell: GRUCell, x: Tensor, h: Tensor) -> tuple[Tensor, Tensor]:
    """One step of ``nn.GRU``'s equations; returns z's pre-activation and h(t)."""
    r = torch.sigmoid(x @ cell.U["r"].T + h @ cell.W["r"].T + cell.b["r"])
    z_pre = x @ cell.U["z"].T + h @ cell.W["z"].T + cell.b["z"]
    n = torch.tanh(x @ cell.U["n"].T + cell.b_in + r * (h @ cell.W["n"].T + cell.b_hn))
    z = torch.sigmoid(z_pre)
    return z_pre, (1 - z) * n + z * h


def trace(model: SequenceModel, x: Tensor) -> GateTrace | None:
    """Unroll ``model``'s core over the batch x (as ``model(x)`` takes it) from a zero state,
    recording the keep gate; None for an RNN. The reference cells return states only, so the
    gates are computed here from their weights with the seed's equations (the tests check that
    the states agree with the fused module's).
    """
    if model.cell not in KEEP_GATE:
        return None
    with torch.no_grad():
        cell = reference_cell(model.core).to(device=x.device, dtype=DTYPE)
        inputs = model.encode(x).to(DTYPE)  # x_t: [B, T, width]
        B, T, _ = inputs.shape
        h = inputs.new_zeros(B, model.hidden_size)
        c = torch.zeros_like(h) if model.cell == "lstm" else None
        logits, hs, cs = [], [], []
        for t in range(T):
            if c is None:
                logit, h = _gru_step(cell, inputs[:, t], h)
            else:
                logit, h, c = _lstm_step(cell, inputs[:, t], h, c)
                cs.append(c)
            logits.append(logit)
            hs.append(h)
    return GateTrace(
        gate=KEEP_GATE[model.cell],
        logit=torch.stack(logits, dim=1),
        h=torch.stack(hs, dim=1),
        c=torch.stack(cs, dim=1) if cs else None,
    )


def unit_time_constants(gates: GateTrace) -> Tensor:
    """tau_u = 1 / (1 - exp(mean_{b,t} log a)), ``[H]``; +inf only where every log a rounds to
    0 (pre-activations beyond about 745, where exp(-a) leaves float64).
    """
    log_a = F.logsigmoid(gates.logit).mean(dim=(0, 1))  # [H]
    # expm1: 1 - exp(log_a) to full precision for log_a near 0 (1 - a would round to 0)
    return torch.where(log_a < 0, 1 / -torch.expm1(log_a), torch.inf)


def _median(values: Tensor) -> float:
    """The middle value, or the mean of the two middle ones (inf if either is: quantile's
    interpolation would give nan between two infs).
    """
    ordered = values.sort().values
    lo, hi = ordered[(len(ordered) - 1) // 2].item(), ordered[len(ordered) // 2].item()
    return lo if lo == hi else (lo + hi) / 2


def time_constants(model: SequenceModel, x: Tensor, distance: int) -> TimeConstants | None:
    """The keep gate's time constants on the batch x, summarised over units (module docstring);
    None for an RNN. Raises ValueError for a distance below 1.
    """
    if distance < 1:
        raise ValueError(f"distance must be at least 1, got {distance}")
    gates = trace(model, x)
    if gates is None:
        return None
    tau = unit_time_constants(gates)
    return TimeConstants(
        gate=gates.gate,
        median=_median(tau),
        max=tau.max().item(),
        share=(tau >= distance).to(DTYPE).mean().item(),
        distance=distance,
    )


def metrics(model: SequenceModel, x: Tensor, distance: int) -> dict[str, float]:
    """Every measure as a flat dict of metric names: ``mech/<block>_radius`` and
    ``mech/<block>_sv`` per block of W; for an LSTM (gate f) or a GRU (gate z) also
    ``mech/<gate>_tau_median``, ``mech/<gate>_tau_max`` and ``mech/<gate>_tau_share`` (the share
    of units with tau >= distance). Values may be inf (a saturated unit); the caller decides
    what to log.
    """
    out = {}
    for name, spectrum in spectra(model).items():
        out[f"{PREFIX}{name}_radius"] = spectrum.radius
        out[f"{PREFIX}{name}_sv"] = spectrum.sv
    taus = time_constants(model, x, distance)
    if taus is not None:
        stem = f"{PREFIX}{taus.gate}_tau"
        out |= {f"{stem}_median": taus.median, f"{stem}_max": taus.max}
        out[f"{stem}_share"] = taus.share
    return out
