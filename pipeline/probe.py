"""Gradient norm against distance: how much of the loss's gradient reaches each earlier step.

For a model and a probe batch of its own task and distance, with L the summed loss at the scored
step s, the probe unrolls the reference cell (``models.reference_cell``) with the model's weights
**in float64** (float32 underflows to exactly 0 within a few dozen steps of a tanh RNN) and reads
the total derivatives dL/dh_t (and dL/dc_t for an LSTM) at every step t by ``torch.autograd.grad``
on every state (the same totals as ``retain_grad``, and the model's ``.grad`` is untouched). Each
sample's gradient is that sample's own loss's (samples do not interact), so per-sample norms are
taken and summarised over the batch by the median and the quartiles, against k = s - t, the
distance back from the output. (The gradient of the fused module's output sequence is not this:
it misses the paths through later steps.)

Besides the loss's gradient, the probe measures the loss-free Jacobian norm
||dh_s/dh_{s-k}||_F / sqrt(H) (and ||dh_s/dc_{s-k}||_F / sqrt(H) for an LSTM): how strongly the
state k steps back still moves the output step's state, whatever the output residual. It is
estimated with ``JACOBIAN_VECTORS`` random vector-Jacobian products per sample (Hutchinson's
estimator with Rademacher vectors v: E||v^T J||^2 = ||J||_F^2, exact for a diagonal J) and
summarised as the root mean square over the batch, an unbiased estimate of the batch's mean
squared norm. The identity gives exactly 1 at k = 0.

Summaries, per state h (and c):
- ``key_share``: the median over samples of each sample's own ratio ||dL/dh_key|| / ||dL/dh_s||,
  the share of the output step's gradient that reaches the step holding the information
  (k = distance), with its quartiles ``key_share_q25`` and ``key_share_q75``;
- ``rho`` and ``rho_r2``: the per-step decay factor, exp of the slope of log median-norm against
  k over 1 <= k <= distance, and the fit's R^2 (``decay.fit_decay``); ``efold = -1 / ln(rho)``,
  the e-folding length in steps (inf if rho >= 1), meaningful where the curve is geometric;
- ``jacobian_key``: the Jacobian norm at the key step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor
from torch.nn import functional as F

from pipeline.decay import efold, fit_decay
from pipeline.models import SequenceModel, reference_cell, unroll

JACOBIAN_VECTORS = 2  # random probes per sample for the Jacobian norm
DTYPE = torch.float64


@dataclass
class Profile:
    """One probe: per-k statistics (index = k, 0..s) and the summaries."""

    k: list[int]
    h: dict[str, list[float]]  # "median", "q25", "q75", "jacobian": per k
    c: dict[str, list[float]] | None
    summary: dict[str, float] = field(default_factory=dict)

    def rows(self) -> list[dict]:
        """Tidy rows: one per k, columns k, h_median, h_q25, h_q75, h_jacobian (and c_...)."""
        out = []
        for i, k in enumerate(self.k):
            row = {"k": k, **{f"h_{s}": v[i] for s, v in self.h.items()}}
            if self.c is not None:
                row.update({f"c_{s}": v[i] for s, v in self.c.items()})
            out.append(row)
        return out


@dataclass(frozen=True)
class ProbeRecord:
    """A profile taken during a run: its phase (``init``, ``step_<n>``, ``final``), the
    training step it was taken at, and the mechanism's measures taken on the same batch at the
    same step (``mechanism.metrics``' names without their ``mech/`` prefix: ``W_f_radius``,
    ``f_tau_median``, ...; values may be inf).
    """

    phase: str
    step: int
    profile: Profile
    mechanism: dict[str, float] = field(default_factory=dict)

    def row(self) -> dict:
        """One row for the whole probe: phase, step, the profile's summaries, the measures."""
        return {"phase": self.phase, "step": self.step, **self.profile.summary, **self.mechanism}


def _per_k(grads: list[Tensor], s: int) -> Tensor:
    """Per-sample norms of the gradients at t = s, s-1, ..., 0: ``[s + 1, B]`` (row k)."""
    return torch.stack([grads[t].norm(dim=-1) for t in range(s, -1, -1)])


def _quartiles(values: Tensor) -> list[Tensor]:
    """q25, median, q75 over the last dimension, ignoring nan."""
    levels = torch.tensor([0.25, 0.5, 0.75], dtype=values.dtype, device=values.device)
    return list(torch.nanquantile(values, levels, dim=-1))


def _stats(norms: Tensor, jacobian: Tensor) -> dict[str, list[float]]:
    q25, median, q75 = _quartiles(norms)
    return {
        "median": median.tolist(),
        "q25": q25.tolist(),
        "q75": q75.tolist(),
        "jacobian": jacobian.tolist(),
    }


def _summaries(prefix: str, norms: Tensor, stats: dict, distance: int) -> dict[str, float]:
    at_output = norms[0]
    ratios = torch.where(at_output > 0, norms[distance] / at_output, math.nan)
    q25, median, q75 = (q.item() for q in _quartiles(ratios))
    fit = fit_decay(range(len(stats["median"])), stats["median"], distance)
    return {
        f"{prefix}_key_share": median,
        f"{prefix}_key_share_q25": q25,
        f"{prefix}_key_share_q75": q75,
        f"{prefix}_rho": fit.rho,
        f"{prefix}_rho_r2": fit.r2,
        f"{prefix}_efold": efold(fit.rho),
        f"{prefix}_jacobian_key": stats["jacobian"][distance],
    }


def _jacobians(h_s: Tensor, states: list[Tensor], s: int, H: int) -> list[Tensor]:
    """Per state kind, ||dh_s/dstate_{s-k}||_F / sqrt(H) as the batch's root mean square, per k.

    ``states`` are h_0..h_s (then c_0..c_s); a fixed generator keeps the probe deterministic.
    """
    g = torch.Generator(device=h_s.device).manual_seed(0)
    squared = None
    for _ in range(JACOBIAN_VECTORS):
        signs = torch.randint(0, 2, h_s.shape, generator=g, device=h_s.device)
        v = (2 * signs - 1).to(h_s.dtype)  # Rademacher: +-1
        vjp = torch.autograd.grad(h_s, states, grad_outputs=v, retain_graph=True)
        now = torch.stack([p.pow(2).sum(-1) for p in vjp])  # [len(states), B]
        squared = now if squared is None else squared + now
    rms = (squared.mean(-1) / JACOBIAN_VECTORS / H).sqrt()  # [len(states)]
    per_state = rms.view(-1, s + 1)  # one row per kind of state, column t
    return [row.flip(0) for row in per_state]  # index k = s - t


def gradient_profile(model: SequenceModel, task, x: Tensor, y: Tensor, distance: int) -> Profile:
    """Probe ``model`` on a batch ``(x, y)`` of ``task`` at ``distance``; the model is unchanged."""
    s = task.scored_step(distance)
    cell = reference_cell(model.core).to(device=x.device, dtype=DTYPE)
    V = model.V
    with torch.enable_grad():
        inputs = model.encode(x).detach().to(DTYPE)  # x_t: [B, T, hidden]
        hs, cs = unroll(cell, inputs[:, : s + 1])  # steps after s do not reach L
        states = hs + (cs or [])
        out = F.linear(hs[s], V.weight.detach().to(DTYPE), V.bias.detach().to(DTYPE))
        loss = task.scored_loss(out, y, distance)
        grads = torch.autograd.grad(loss, states, retain_graph=True)
        jacobians = _jacobians(hs[s], states, s, hs[s].shape[-1])
    kinds = [("h", list(grads[: len(hs)]), jacobians[0])]
    if cs is not None:
        kinds.append(("c", list(grads[len(hs) :]), jacobians[1]))
    stats, summary = {}, {}
    for prefix, state_grads, jacobian in kinds:
        norms = _per_k(state_grads, s)
        stats[prefix] = _stats(norms, jacobian)
        summary |= _summaries(prefix, norms, stats[prefix], distance)
    return Profile(k=list(range(s + 1)), h=stats["h"], c=stats.get("c"), summary=summary)
