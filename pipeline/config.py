"""Experiment files: typed, validated, frozen.

An experiment file (``experiments/<name>.yaml``) lists only what differs from the defaults below.
Loading validates everything before any work starts; any problem (malformed YAML, an unknown key,
a wrong type, an out-of-range value, a duplicate name) raises :class:`ConfigError`, whose message
names the file, the field and the bad value.

The names here are the names everywhere: a field ``distance`` is the MLflow param ``distance``, the
result column ``distance`` and the plot label ``distance``.
"""

from __future__ import annotations

import math
import re
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from pipeline import tasks
from pipeline.errors import ConfigError

if TYPE_CHECKING:
    from pipeline.runs import RunSpec


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


def _number(value: object) -> object:
    """Floats accept numbers and numeric strings (YAML reads ``3e-3`` as a string), not booleans."""
    if isinstance(value, bool):
        raise ValueError("input should be a number, not a boolean")
    return value


Number = Annotated[float, BeforeValidator(_number)]
PositiveInt = Annotated[StrictInt, Field(ge=1)]
Distances = Annotated[list[PositiveInt], Field(min_length=1)]


def _unique(values: list, what: str) -> list:
    seen = [v for i, v in enumerate(values) if v in values[:i]]
    if seen:
        raise ValueError(f"duplicate {what} {seen[0]!r}")
    return values


class TaskBase(Frozen):
    distances: Distances

    @field_validator("distances")
    @classmethod
    def _distinct(cls, v: list[int]) -> list[int]:
        return sorted(_unique(v, "distance"))

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
    - ``recurrent_init``: ``pytorch`` (default), ``orthogonal`` W per gate block, or ``identity``
      (rnn only: W = I, zero biases; with ``relu``, the IRNN of Le et al. 2015);
    - ``forget_bias`` (lstm): a number, or ``pytorch``; ``update_bias`` (gru): a number;
    - ``chrono_t_max`` (lstm, gru): chrono init (Tallec & Ollivier 2018) with this t_max, or
      ``auto`` for ``CHRONO_AUTO`` x each run's distance.
    """

    name: Annotated[str, Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")]
    cell: Literal["rnn", "lstm", "gru"]
    hidden_size: PositiveInt | None = None  # None: the experiment's hidden_size
    parameters: PositiveInt | None = None  # a budget: the largest hidden size within it, per task
    nonlinearity: Literal["tanh", "relu"] | None = None
    recurrent_init: Literal["pytorch", "orthogonal", "identity"] = "pytorch"
    forget_bias: Number | Literal["pytorch"] | None = None
    update_bias: Number | None = None
    chrono_t_max: Annotated[StrictInt, Field(ge=2)] | Literal["auto"] | None = None

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
        return ", ".join(parts)


class TrainingConfig(Frozen):
    optimizer: Literal["adam", "sgd", "rmsprop"] = "adam"
    learning_rate: Annotated[Number, Field(gt=0)] = 3e-3
    batch_size: PositiveInt = 128
    max_steps: PositiveInt = 2000
    grad_clip: Annotated[Number, Field(gt=0)] | None = 1.0  # clip by global norm; None: never
    eval_every: PositiveInt = 100  # steps between validations
    solved_accuracy: Annotated[Number, Field(gt=0, le=1)] = 0.99  # validation accuracy to stop at
    log_every: PositiveInt = 25  # steps between training-metric writes to MLflow
    # a run diverges on a non-finite loss or gradient, or when a log_every window's mean training
    # loss exceeds this multiple of the task's memoryless baseline loss (an explosion that
    # clipping did not contain); a large pre-clip gradient norm alone is what clipping handles
    diverge_loss_factor: Annotated[Number, Field(gt=1)] = 100.0


class DataConfig(Frozen):
    n_train: PositiveInt = 20_000
    n_val: PositiveInt = 1_000
    n_test: PositiveInt = 2_000

    def sizes(self) -> dict[str, int]:
        """Sequences per split, by split name (the data stage's file names)."""
        return {"train": self.n_train, "val": self.n_val, "test": self.n_test}


class ProbeConfig(Frozen):
    batch_size: PositiveInt = 128  # probe samples, from the validation split
    every_evals: Annotated[StrictInt, Field(ge=0)] = 5  # also probe every N validations; 0: never


class ResourcesConfig(Frozen):
    """What one run asks for. Not part of a run's identity: moving a sweep elsewhere does not
    retrain finished runs.
    """

    cpus_per_run: PositiveInt = 1  # CPUs (and torch threads) per run, locally and on Ray
    gpus_per_run: Annotated[Number, Field(ge=0)] = 0  # Ray: 0.25 lets 4 runs share a GPU


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
    distances: dict[str, PositiveInt] = {}

    @field_validator("grid")
    @classmethod
    def _grid(cls, v: dict) -> dict:
        for field, values in v.items():
            if field not in TUNABLE:
                raise ValueError(
                    f"{field}: not a setting tuning can vary (one of {', '.join(TUNABLE)})"
                )
            _unique(values, f"{field} value")
            for value in values:  # each value must be a valid setting on its own
                try:
                    TrainingConfig(**{field: value})
                except ValidationError as e:
                    raise ValueError(f"{field}: {e.errors()[0]['msg']} (got {value!r})") from None
        return v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int]) -> list[int]:
        for s in v:
            if s < 0:
                raise ValueError(f"seed {s} is negative")
        return _unique(v, "seed")

    def distance(self, task: TaskBase) -> int:
        """The tuning distance of ``task``: as listed, else the middle of its distances."""
        d = task.distances
        return self.distances.get(task.task, d[(len(d) - 1) // 2])


class Experiment(Frozen):
    """A whole experiment: tasks x models x distances x seeds, and how to train each."""

    name: str = Field(exclude=True)
    tasks: Annotated[list[TaskConfig], Field(min_length=1)]
    models: Annotated[list[ModelConfig], Field(min_length=1)]
    seeds: Annotated[list[StrictInt], Field(min_length=1)]
    hidden_size: PositiveInt = 64
    training: TrainingConfig = TrainingConfig()
    data: DataConfig = DataConfig()
    probe: ProbeConfig = ProbeConfig()
    resources: ResourcesConfig = ResourcesConfig()
    tuning: TuningConfig | None = None

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int]) -> list[int]:
        for s in v:
            if s < 0:
                raise ValueError(f"seed {s} is negative")
        return _unique(v, "seed")

    @field_validator("tasks")
    @classmethod
    def _tasks(cls, v: list) -> list:
        _unique([t.task for t in v], "task")
        return v

    @field_validator("models")
    @classmethod
    def _models(cls, v: list[ModelConfig]) -> list[ModelConfig]:
        _unique([m.name for m in v], "model name")
        return v

    @model_validator(mode="after")
    def _tuning_fits(self):
        if self.tuning is None:
            return self
        shared = sorted(set(self.tuning.seeds) & set(self.seeds))
        if shared:
            raise ValueError(
                f"tuning.seeds: {shared[0]} is also an evaluation seed; tuning seeds must be "
                "others, so that no evaluation run is chosen on its own outcome"
            )
        names = {t.task: t for t in self.tasks}
        for task, distance in self.tuning.distances.items():
            if task not in names:
                raise ValueError(f"tuning.distances: no task {task!r} in this experiment")
            low = names[task].build().min_distance
            if distance < low:
                raise ValueError(
                    f"tuning.distances: {distance} is below the {task} task's minimum distance "
                    f"{low}"
                )
        return self

    @model_validator(mode="after")
    def _probe_fits(self):
        if self.probe.batch_size > self.data.n_val:
            raise ValueError(
                f"probe.batch_size: {self.probe.batch_size} exceeds data.n_val {self.data.n_val}"
            )
        return self

    def data_cells(self) -> list[tuple[TaskBase, int, int]]:
        """Every (task, distance, seed) some run reads data for, evaluation and tuning."""
        cells = [(t, d, s) for t in self.tasks for d in t.distances for s in self.seeds]
        if self.tuning is not None:
            cells += [
                (t, self.tuning.distance(t), s) for t in self.tasks for s in self.tuning.seeds
            ]
        seen, out = set(), []
        for t, d, s in cells:
            if (t.task, d, s) not in seen:
                seen.add((t.task, d, s))
                out.append((t, d, s))
        return out

    @cached_property
    def runs(self) -> list[RunSpec]:
        """The evaluation runs with the experiment's own training settings, in a stable order
        (task, distance, seed, model). With ``tuning``, see ``runs.plan``: each variant's
        evaluation runs then take the settings its tuning chose.
        """
        from pipeline import runs

        return runs.evaluation_runs(self)


def _location(loc: tuple) -> str:
    """Pydantic's error location as a readable field path: ``models[1].cell``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in tasks.TASKS:  # the discriminated union's tag, not a field of the file
            continue
        else:
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _describe(path: Path, error: ValidationError) -> str:
    lines = []
    for e in error.errors():
        where, msg = _location(e["loc"]), e["msg"].removeprefix("Value error, ")
        own = re.match(r"^([a-z_.]+(?:\[\d+\])?): (.*)$", msg, re.S)
        if own:  # a cross-field check that names its own field: "distances: ..."
            sub, msg = own.groups()
            where = sub if where == "(top level)" else f"{where}.{sub}"
            shown = ""
        else:
            value = e.get("input")
            shown = "" if isinstance(value, dict | list) else f" (got {value!r})"
        lines.append(f"{path}: {where}: {msg[0].lower() + msg[1:]}{shown}")
    return "\n".join(lines)


def load(path: str | Path) -> Experiment:
    """Read and validate ``path``; the experiment's name is the file's stem.

    Raises ConfigError for a missing file, malformed YAML or any invalid field.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read experiment file ({e.strerror})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: malformed YAML: {e}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, got {type(raw).__name__}")
    if "name" in raw:
        raise ConfigError(f"{path}: name: not a setting; the experiment is named by its file")
    try:
        return Experiment(name=path.stem, **raw)
    except ValidationError as e:
        raise ConfigError(_describe(path, e)) from None
