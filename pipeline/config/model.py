"""A model variant of an experiment file: a cell, its size and its initialisation."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import Field, StrictBool, StrictInt, model_validator

from pipeline.bounds import (
    MAX_DISTANCE,
    MAX_FORGET_BIAS,
    MAX_NAME,
    MAX_PARAMETERS,
    Frozen,
    GateBias,
    HiddenSize,
    number_or,
)

LSTM_FORGET_BIAS = 1.0  # an LSTM's forget-gate bias unless the model says otherwise
CHRONO_AUTO = 1.5  # chrono_t_max: auto = this x the run's distance (Tallec & Ollivier's 3T/2)
OPTIONS = {  # which init option applies to which cell (a model naming another is refused)
    "nonlinearity": ("rnn",),
    "forget_bias": ("lstm",),
    "update_bias": ("gru",),
    "chrono_t_max": ("lstm", "gru"),
}


class ModelConfig(Frozen):
    """A named model variant: a cell, its size (``hidden_size`` or a ``parameters`` budget) and
    its initialisation. Unset options keep PyTorch's own init, except an LSTM's forget-gate bias,
    which is 1 unless ``forget_bias: pytorch`` asks for PyTorch's (about 0). An option is refused
    on a cell it does not apply to; each field's description says what it does.
    """

    # the name goes into file names and figure legends
    name: Annotated[str, Field(min_length=1, max_length=MAX_NAME, pattern=r"^[A-Za-z0-9_.-]+$")] = (
        Field(description="the variant's name in file names, MLflow and the report")
    )
    cell: Literal["rnn", "lstm", "gru"] = Field(description="the recurrent cell")
    hidden_size: HiddenSize | None = Field(
        None, description="this model's width; null: the experiment's hidden_size"
    )
    # Experiment checks that a budget leaves some width, and that a named model has a size
    parameters: (
        Annotated[StrictInt, Field(ge=1, le=MAX_PARAMETERS)]
        | Annotated[str, Field(min_length=1, max_length=MAX_NAME)]
        | None
    ) = Field(
        None,
        description="a parameter budget instead of a width: the largest hidden size within it, "
        "per task; or another model's name: within that model's count on each task",
    )
    nonlinearity: Literal["tanh", "relu"] | None = Field(
        None, description="rnn only: tanh (null: tanh) or relu"
    )
    recurrent_init: Literal["pytorch", "orthogonal", "glorot", "identity"] = Field(
        "pytorch",
        description="W per gate block: PyTorch's init, orthogonal, Glorot-uniform, or (rnn only) "
        "identity with zero biases (with relu: the IRNN of Le et al. 2015)",
    )
    forget_bias: (
        Annotated[float | str, number_or("pytorch", -MAX_FORGET_BIAS, MAX_FORGET_BIAS)] | None
    ) = Field(
        None,
        description=f"lstm only: the forget-gate bias; pytorch: PyTorch's own init (about 0); "
        f"null: {LSTM_FORGET_BIAS:g}",
    )
    update_bias: GateBias | None = Field(
        None, description="gru only: the update-gate bias; null: PyTorch's own init"
    )
    # time scales past the longest distance have nothing to span
    chrono_t_max: Annotated[int | str, number_or("auto", 2, MAX_DISTANCE, integer=True)] | None = (
        Field(
            None,
            description=f"lstm and gru: chrono init of the gate bias (Tallec & Ollivier 2018) "
            f"with this t_max; auto: {CHRONO_AUTO:g} x each run's distance",
        )
    )
    input_layer: StrictBool = Field(
        True,
        description="true: inputs reach the cell through an embedding (or a linear map) of the "
        "hidden width; false: straight into the cell (token ids one-hot), as most papers' models",
    )
    input_init: Literal["pytorch", "glorot"] = Field(
        "pytorch",
        description="the cell's input matrix U per gate block: PyTorch's init, or Glorot-uniform "
        "(fan-in: the cell's input width)",
    )

    @model_validator(mode="after")
    def _options_fit_the_cell(self):
        for option, cells in OPTIONS.items():
            value = getattr(self, option)
            if value is not None and self.cell not in cells:
                raise ValueError(
                    f"{option}: applies to {' and '.join(cells)} models only, but model "
                    f"{self.name!r} has cell {self.cell!r} (got {value!r})"
                )
        if self.recurrent_init == "identity" and self.cell != "rnn":
            raise ValueError(
                f"recurrent_init: identity applies to rnn models only, but model {self.name!r} "
                f"has cell {self.cell!r} (got 'identity')"
            )
        for bias in ("forget_bias", "update_bias"):
            if getattr(self, bias) is not None and self.chrono_t_max is not None:
                raise ValueError(f"chrono_t_max: sets the gate bias, as does {bias}: pick one")
        if self.hidden_size is not None and self.parameters is not None:
            raise ValueError(
                f"parameters: a budget sets the hidden size, as does hidden_size: pick one "
                f"(got {self.parameters!r})"
            )
        return self

    @property
    def lstm_forget_bias(self) -> float | None:
        """The forget-gate bias this model's LSTM starts with; None for another cell, chrono
        init or PyTorch's own init.
        """
        if self.cell != "lstm" or self.chrono_t_max is not None or self.forget_bias == "pytorch":
            return None
        return LSTM_FORGET_BIAS if self.forget_bias is None else self.forget_bias

    def options(self, distance: int) -> dict:
        """The network's init options for a run at ``distance``, named as in the file and as
        ``models.SequenceModel`` takes them; None where an option does not apply to the cell.
        """
        return {
            "nonlinearity": (self.nonlinearity or "tanh") if self.cell == "rnn" else None,
            "recurrent_init": self.recurrent_init,
            "forget_bias": self.lstm_forget_bias,
            "update_bias": self.update_bias,
            "chrono_t_max": self.chrono(distance),
            "input_layer": self.input_layer,
            "input_init": self.input_init,
        }

    def chrono(self, distance: int) -> int | None:
        """chrono init's t_max for a run at ``distance`` (None: no chrono init)."""
        if self.chrono_t_max == "auto":
            return max(2, math.ceil(CHRONO_AUTO * distance))
        return self.chrono_t_max

    @property
    def pytorch_default(self) -> bool:
        """Whether the model keeps PyTorch's own initialisation throughout."""
        return (
            self.recurrent_init == "pytorch"
            and self.input_init == "pytorch"
            and self.nonlinearity in (None, "tanh")
            and self.update_bias is None
            and self.chrono_t_max is None
            and (self.cell != "lstm" or self.forget_bias == "pytorch")
        )

    def describe_init(self) -> str:
        """``forget-gate bias 1``: the model's initialisation, as the report names it."""
        parts = []
        if self.cell == "rnn":
            parts.append(f"{self.nonlinearity or 'tanh'}")
        if self.recurrent_init == "identity":
            parts.append("W = identity, zero biases")
        elif self.recurrent_init == "orthogonal":
            parts.append("orthogonal W")
        elif self.recurrent_init == "glorot":
            parts.append("Glorot-uniform W")
        if self.input_init == "glorot":
            parts.append("Glorot-uniform U")
        if self.cell == "lstm" and self.chrono_t_max is None:
            parts.append(
                "PyTorch's forget-gate bias (about 0)"
                if self.lstm_forget_bias is None
                else f"forget-gate bias {self.lstm_forget_bias:g}"
            )
        if self.update_bias is not None:
            parts.append(f"update-gate bias {self.update_bias:g}")
        if self.chrono_t_max is not None:
            t_max = "1.5 x distance" if self.chrono_t_max == "auto" else self.chrono_t_max
            parts.append(f"chrono init (t_max {t_max})")
        if self.pytorch_default:
            parts.append("PyTorch default init")
        if not self.input_layer:
            parts.append("inputs straight into the cell (no input layer)")
        return ", ".join(parts)
