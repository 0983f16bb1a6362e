"""Why a model holds information over a gap: its recurrent matrix.

A measure of a ``SequenceModel``, in the seed's notation (``../shared/seed/README.md``):

**The recurrent matrix W**, per gate block (``W`` of an RNN; ``W_i``, ``W_f``, ``W_g``,
``W_o`` of an LSTM; ``W_r``, ``W_z``, ``W_n`` of a GRU, split by ``models.reference_cell``):
its spectral radius rho(W) = max |eigenvalue| and its largest singular value sigma_1(W) (the
spectral norm). Pascanu, Mikolov & Bengio 2013 ("On the difficulty of training recurrent
neural networks", sec. 2.1): for a linear recurrence, rho(W) < 1 suffices for long-term
components of the gradient to vanish and rho(W) > 1 is necessary for them to explode; with a
nonlinearity whose derivative is bounded by gamma (1 for tanh), sigma_1(W) < 1 / gamma
suffices for vanishing and sigma_1(W) > 1 / gamma is necessary for exploding. rho <= sigma_1
always, equal for a normal W; a non-normal W can have rho < 1 < sigma_1, where neither bound
decides, so both are reported.

Contract: functions take a one-layer ``SequenceModel`` (as ``reference_cell`` covers), compute
in float64, leave the model unchanged, and write nothing. ``metrics`` returns a flat dict of
floats named for MLflow (``mech/W_f_radius``, ``mech/W_f_sv``, ...).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from pipeline.models import SequenceModel, reference_cell

PREFIX = "mech/"  # every metric name starts with it
DTYPE = torch.float64


@dataclass(frozen=True)
class Spectrum:
    """One block of W: ``radius`` = max |eigenvalue|, ``sv`` = the largest singular value."""

    radius: float
    sv: float


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


def metrics(model: SequenceModel) -> dict[str, float]:
    """Every measure as a flat dict of metric names: ``mech/<block>_radius`` and
    ``mech/<block>_sv`` per block of W.
    """
    out = {}
    for name, spectrum in spectra(model).items():
        out[f"{PREFIX}{name}_radius"] = spectrum.radius
        out[f"{PREFIX}{name}_sv"] = spectrum.sv
    return out
