"""Gradient norm against distance: how much of the loss's gradient reaches each earlier step.

For a model and a probe batch of its own task and distance, with L the summed loss at the scored
step s, the probe unrolls the reference cell (``models.reference_cell``) with the model's weights
and reads the total derivatives dL/dh_t (and dL/dc_t for an LSTM) at every step t (by
``torch.autograd.grad`` on every state: the same totals as ``retain_grad``). Each sample's gradient
is that sample's own loss's (samples do not interact), so per-sample norms are taken and
summarised over the batch by the median and the quartiles, against k = s - t, the distance back
from the output. (The gradient of the fused module's output sequence is not this: it misses the
paths through later steps.)

Summaries:
- ``key_share``: ||dL/dh_key|| / ||dL/dh_s||, the share of the output step's gradient that reaches
  the step holding the information (k = distance); likewise for c;
- ``rho``: the per-step decay factor, exp of the slope of log median-norm against k fitted over
  1 <= k <= distance, and ``efold = -1 / ln(rho)``, the e-folding length in steps (inf if rho >= 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
from torch import Tensor

from pipeline.decay import efold, fit_decay
from pipeline.models import SequenceModel, reference_cell, unroll


@dataclass
class Profile:
    """One probe: per-k statistics (index = k, 0..s) and the summaries."""

    k: list[int]
    h: dict[str, list[float]]  # "median", "q25", "q75": per k
    c: dict[str, list[float]] | None
    summary: dict[str, float] = field(default_factory=dict)

    def rows(self) -> list[dict]:
        """Tidy rows: one per k, columns k, h_median, h_q25, h_q75 (and c_...)."""
        out = []
        for i, k in enumerate(self.k):
            row = {"k": k, **{f"h_{s}": v[i] for s, v in self.h.items()}}
            if self.c is not None:
                row.update({f"c_{s}": v[i] for s, v in self.c.items()})
            out.append(row)
        return out


def _stats(grads: list[Tensor], s: int) -> dict[str, list[float]]:
    """Per-sample norms of dL/dstate_t for t = s, s-1, ..., 0 -> quantiles over the batch."""
    norms = torch.stack([grads[t].norm(dim=-1) for t in range(s, -1, -1)])  # [s + 1, B]
    levels = torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64, device=norms.device)
    q = torch.quantile(norms.double(), levels, dim=1)
    return {"q25": q[0].tolist(), "median": q[1].tolist(), "q75": q[2].tolist()}


def _summaries(prefix: str, stats: dict[str, list[float]], distance: int) -> dict[str, float]:
    med = stats["median"]
    share = med[distance] / med[0] if med[0] > 0 else math.nan
    rho = fit_decay(range(len(med)), med, distance)
    return {f"{prefix}_key_share": share, f"{prefix}_rho": rho, f"{prefix}_efold": efold(rho)}


def gradient_profile(model: SequenceModel, task, x: Tensor, y: Tensor, distance: int) -> Profile:
    """Probe ``model`` on a batch ``(x, y)`` of ``task`` at ``distance``; the model is unchanged."""
    s = task.scored_step(distance)
    cell = reference_cell(model.core).to(x.device)
    with torch.enable_grad():
        inputs = model.encode(x).detach()  # x_t: [B, T, hidden]
        hs, cs = unroll(cell, inputs[:, : s + 1])  # steps after s do not reach L
        states = hs + (cs or [])
        loss = task.scored_loss(model.V(hs[s]), y, distance)
        # the same totals as retain_grad() + backward(), without touching any parameter's .grad
        grads = torch.autograd.grad(loss, states)
    h = _stats(list(grads[: len(hs)]), s)
    c = _stats(list(grads[len(hs) :]), s) if cs is not None else None
    summary = _summaries("h", h, distance) | (_summaries("c", c, distance) if c else {})
    return Profile(k=list(range(s + 1)), h=h, c=c, summary=summary)
