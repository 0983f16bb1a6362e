"""The sections of an experiment file: its tasks, its model variants, and how runs train, read
data, probe, use resources and tune. Each is frozen, refuses unknown keys and bounds every
number (``fields``); ``config.Experiment`` puts them together and checks them against each other.
"""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import (
    Field,
    StrictBool,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from pipeline import tasks
from pipeline.fields import (
    MAX_CPUS,
    MAX_DISTANCE,
    MAX_FORGET_BIAS,
    MAX_GPUS,
    MAX_GRAD_CLIP,
    MAX_LEARNING_RATE,
    MAX_NAME,
    MAX_PARAMETERS,
    MAX_STEPS,
    Distances,
    Frozen,
    GateBias,
    HiddenSize,
    Number,
    PositiveInt,
    Sequences,
    check_seeds,
    number_or,
    unique,
)


class TaskBase(Frozen):
    distances: Distances

    @field_validator("distances")
    @classmethod
    def _distinct(cls, v: list[int]) -> list[int]:
        return sorted(unique(v, "distance"))

    @model_validator(mode="after")
    def _reachable(self):
        low = self.build().min_distance
        for d in self.distances:  # sorted by now: an index would not point into the file
            if d < low:
                raise ValueError(
                    f"distances: {d} is below the {self.task} task's minimum distance {low}"
                )
        return self

    def params(self) -> dict:
        """The task's own parameters (what the generator takes), without task and distances."""
        return self.model_dump(exclude={"task", "distances"})

    def build(self) -> tasks.Task:
        return tasks.TASKS[self.task](**self.params())


def _task_param(task: type, name: str, kind=StrictInt):
    """A task parameter's type, bounds and default, as the task class itself defines them."""
    return Annotated[kind, Field(**task.LIMITS[name])]


class RecallConfig(TaskBase):
    task: Literal["recall"]
    n_keys: _task_param(tasks.Recall, "n_keys") = tasks.Recall.n_keys
    n_filler: _task_param(tasks.Recall, "n_filler") = tasks.Recall.n_filler


class CopyConfig(TaskBase):
    task: Literal["copy"]
    n_symbols: _task_param(tasks.Copy, "n_symbols") = tasks.Copy.n_symbols
    copy_length: _task_param(tasks.Copy, "copy_length") = tasks.Copy.copy_length


class AddingConfig(TaskBase):
    task: Literal["adding"]
    tolerance: _task_param(tasks.Adding, "tolerance", Number) = tasks.Adding.tolerance
    # where the markers sit and how the target is scaled: tasks.Adding says what each means
    variant: Literal[tasks.ADDING_VARIANTS] = tasks.Adding.variant


TaskConfig = Annotated[RecallConfig | CopyConfig | AddingConfig, Field(discriminator="task")]


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
    which is ``LSTM_FORGET_BIAS`` unless ``forget_bias: pytorch`` asks for PyTorch's (about 0).

    - ``nonlinearity`` (rnn): ``tanh`` (default) or ``relu``;
    - ``recurrent_init``: ``pytorch`` (default), ``orthogonal`` or ``glorot`` (Glorot-uniform)
      W per gate block, or ``identity`` (rnn only: W = I, zero biases; with ``relu``, the IRNN
      of Le et al. 2015);
    - ``forget_bias`` (lstm): a number, or ``pytorch``; ``update_bias`` (gru): a number;
    - ``chrono_t_max`` (lstm, gru): chrono init (Tallec & Ollivier 2018) with this t_max, or
      ``auto`` for ``CHRONO_AUTO`` x each run's distance;
    - ``input_layer``: true (default) reads inputs through an embedding (or a linear map) of
      the hidden width; false feeds them straight into the cell (token ids one-hot), as most
      papers' models do (their parameter counts need it);
    - ``input_init``: ``pytorch`` (default) or ``glorot``: the cell's input matrix U per gate
      block from Glorot & Bengio's uniform (fan-in: the cell's input width).
    """

    name: Annotated[str, Field(min_length=1, max_length=MAX_NAME, pattern=r"^[A-Za-z0-9_.-]+$")]
    cell: Literal["rnn", "lstm", "gru"]
    hidden_size: HiddenSize | None = None  # None: the experiment's hidden_size
    # a parameter budget: the largest hidden size within it, per task (bounded as a width is);
    # or another model's name: within that model's count on each task (Experiment checks it)
    parameters: (
        Annotated[StrictInt, Field(ge=1, le=MAX_PARAMETERS)]
        | Annotated[str, Field(min_length=1, max_length=MAX_NAME)]
        | None
    ) = None
    nonlinearity: Literal["tanh", "relu"] | None = None
    recurrent_init: Literal["pytorch", "orthogonal", "glorot", "identity"] = "pytorch"
    # None: LSTM_FORGET_BIAS; pytorch: PyTorch's own init (about 0)
    forget_bias: (
        Annotated[float | str, number_or("pytorch", -MAX_FORGET_BIAS, MAX_FORGET_BIAS)] | None
    ) = None
    update_bias: GateBias | None = None
    # Tallec & Ollivier 2018; time scales past the longest distance have nothing to span
    chrono_t_max: Annotated[int | str, number_or("auto", 2, MAX_DISTANCE, integer=True)] | None = (
        None
    )
    # false: inputs go straight into the cell (token ids one-hot), no layer of the hidden width
    input_layer: StrictBool = True
    # the cell's input matrix U, per gate block: PyTorch's init, or Glorot-uniform
    input_init: Literal["pytorch", "glorot"] = "pytorch"

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


class TrainingConfig(Frozen):
    optimizer: Literal["adam", "sgd", "rmsprop"] = "adam"
    learning_rate: Annotated[Number, Field(gt=0, le=MAX_LEARNING_RATE)] = 3e-3
    batch_size: PositiveInt = 128  # at most data.n_train (Experiment)
    max_steps: Annotated[StrictInt, Field(ge=1, le=MAX_STEPS)] = 2000
    # clip at this bound; None: never
    grad_clip: Annotated[Number, Field(gt=0, le=MAX_GRAD_CLIP)] | None = 1.0
    # norm: scale the whole gradient down to global L2 norm grad_clip; value: clamp each element
    # to [-grad_clip, grad_clip] (Arjovsky et al. 2016's code). The pre-clip norm is recorded
    clip_mode: Literal["norm", "value"] = "norm"
    # RMSprop's moving-average decay of squared gradients (PyTorch's alpha; None: its 0.99)
    rmsprop_decay: Annotated[Number, Field(gt=0, lt=1)] | None = None
    eval_every: PositiveInt = 100  # steps between validations
    solved_accuracy: Annotated[Number, Field(gt=0, le=1)] = 0.99  # validation accuracy to stop at
    log_every: PositiveInt = 25  # steps between training-metric writes to MLflow
    # a run diverges on a non-finite loss or gradient, or when a log_every window's mean training
    # loss exceeds this multiple of the task's memoryless baseline loss (an explosion that
    # clipping did not contain); a large pre-clip gradient norm alone is what clipping handles
    diverge_loss_factor: Annotated[Number, Field(gt=1)] = 100.0

    @model_validator(mode="after")
    def _options_fit(self):
        if self.rmsprop_decay is not None and self.optimizer != "rmsprop":
            raise ValueError(
                f"rmsprop_decay: applies to the rmsprop optimizer only, but optimizer is "
                f"{self.optimizer!r} (got {self.rmsprop_decay!r})"
            )
        if self.clip_mode == "value" and self.grad_clip is None:
            raise ValueError(
                "clip_mode: 'value' clamps each gradient element to grad_clip, but grad_clip is "
                "null (got 'value')"
            )
        return self

    @model_validator(mode="after")
    def _cadence_fits(self):
        for field, what in (("eval_every", "validate"), ("log_every", "write a training metric")):
            value = getattr(self, field)
            if value > self.max_steps:
                raise ValueError(
                    f"{field}: {value} exceeds training.max_steps {self.max_steps}: the run "
                    f"would never {what}"
                )
        return self


class DataConfig(Frozen):
    n_train: Sequences = 20_000
    n_val: Sequences = 1_000
    n_test: Sequences = 2_000

    def sizes(self) -> dict[str, int]:
        """Sequences per split, by split name (the data stage's file names)."""
        return {"train": self.n_train, "val": self.n_val, "test": self.n_test}


class ProbeConfig(Frozen):
    batch_size: PositiveInt = 128  # probe samples, from the validation split (at most n_val)
    # also probe every N validations; 0: never. A run validates at most MAX_STEPS times.
    every_evals: Annotated[StrictInt, Field(ge=0, le=MAX_STEPS)] = 5


class ResourcesConfig(Frozen):
    """What one run asks for. Not part of a run's identity: moving a sweep elsewhere does not
    retrain finished runs.
    """

    # CPUs (and torch threads) per run, locally and on Ray
    cpus_per_run: Annotated[StrictInt, Field(ge=1, le=MAX_CPUS)] = 1
    # Ray: 0.25 lets 4 runs share a GPU
    gpus_per_run: Annotated[Number, Field(ge=0, le=MAX_GPUS)] = 0

    @field_validator("gpus_per_run")
    @classmethod
    def _whole_gpus(cls, v: float) -> float:
        if v > 1 and v != int(v):
            raise ValueError(
                "a fraction of a GPU must be below 1 (Ray's rule): above 1, whole GPUs"
            )
        return v


# the training fields a tuning grid may vary
TUNABLE = (
    "learning_rate",
    "optimizer",
    "batch_size",
    "grad_clip",
)  # training fields a grid may vary


class TuningConfig(Frozen):
    """The same tuning budget for every model variant: each variant is trained at every point of
    ``grid`` (every combination of the listed training settings) on the ``seeds`` (never the
    evaluation seeds) at one distance per task (``distances``; default: the task's middle
    distance), and its evaluation runs use the grid point that did best on validation data
    (``tuning.select``; test data are never read).
    """

    grid: Annotated[dict[str, Annotated[list, Field(min_length=1)]], Field(min_length=1)]
    seeds: Annotated[list[StrictInt], Field(min_length=1)]
    distances: dict[str, Annotated[StrictInt, Field(ge=1, le=MAX_DISTANCE)]] = {}

    @field_validator("grid")
    @classmethod
    def _grid(cls, v: dict) -> dict:
        for field, values in v.items():
            if field not in TUNABLE:
                raise ValueError(
                    f"{field}: not a setting tuning can vary (one of {', '.join(TUNABLE)})"
                )
            unique(values, f"{field} value")
            for value in values:  # each value must be a valid setting on its own
                try:
                    TrainingConfig(**{field: value})
                except ValidationError as e:
                    raise ValueError(f"{field}: {e.errors()[0]['msg']} (got {value!r})") from None
        return v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int]) -> list[int]:
        return check_seeds(v)

    def distance(self, task: TaskBase) -> int:
        """The tuning distance of ``task``: as listed, else the middle of its distances."""
        d = task.distances
        return self.distances.get(task.task, d[(len(d) - 1) // 2])
