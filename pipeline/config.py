"""Experiment files: typed, validated, frozen.

An experiment file (``experiments/<name>.yaml``) lists only what differs from the defaults below.
Loading validates everything before any work starts; any problem (a file that is not text,
malformed YAML, an unknown key, a wrong type, a number that is not finite, an out-of-range value,
a duplicate name, sizes the later stages cannot handle) raises :class:`ConfigError`, whose message
names the file, the field and the bad value. Every number is bounded above as well as below, so
a value that passes cannot make a later stage fail (the bounds below say why each is where it is).

The names here are the names everywhere: a field ``distance`` is the MLflow param ``distance``, the
result column ``distance`` and the plot label ``distance``.
"""

from __future__ import annotations

import itertools
import math
import re
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import yaml
from pydantic import (
    Field,
    PlainValidator,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from pipeline import capacity, tasks
from pipeline.claims import Claim
from pipeline.errors import ConfigError
from pipeline.fields import Frozen, Number

if TYPE_CHECKING:
    from pipeline.runs import RunSpec


# Upper bounds, each generous for the shipped experiments (full.yaml is paper-scale).
MAX_DISTANCE = 10_000  # over 13 times full.yaml's longest (750); data memory is checked apart
MAX_HIDDEN = 4096  # 32 times full.yaml's 128: an LSTM this wide has 134M weights, 2 GB to train
MAX_SEQUENCES = 10_000_000  # per split: 100 times full.yaml's training split
MAX_STEPS = 1_000_000  # 50 times full.yaml's 20000 updates: days of training at paper scale
# train.py seeds Lightning's global state with the run's seed, and seed_everything accepts
# 0..2**32 - 1 (numpy's range; torch.Generator.manual_seed accepts more)
MAX_SEED = 2**32 - 1
# far above any rate that trains these models (Adam's work near 1e-3, SGD's below 10), and high
# enough to make runs diverge on purpose (a test does, at 1e4)
MAX_LEARNING_RATE = 1e6
MAX_GRAD_CLIP = 1e6  # a clip norm no healthy gradient reaches never acts; null turns clipping off
MAX_FORGET_BIAS = 100.0  # sigma(17) is 1 in float32: past that, a larger bias changes nothing
MAX_PARAMETERS = 100_000_000  # a parameter budget: an LSTM of width MAX_HIDDEN has about 134M
# per run: the cores of a large node. Ray leaves a task that asks for more than any node holds
# pending forever, and a local run starts as many torch threads
MAX_CPUS = 256
MAX_GPUS = 8  # per run: the GPUs of one large node; Ray cannot spread a task across nodes
MAX_NAME = 64  # model names go into file names (255 bytes at most) and figure legends


PositiveInt = Annotated[StrictInt, Field(ge=1)]
Distances = Annotated[list[Annotated[StrictInt, Field(ge=1, le=MAX_DISTANCE)]], Field(min_length=1)]
HiddenSize = Annotated[StrictInt, Field(ge=1, le=MAX_HIDDEN)]
GateBias = Annotated[Number, Field(ge=-MAX_FORGET_BIAS, le=MAX_FORGET_BIAS)]  # forget or update


def _number_or(word: str, low: float, high: float, integer: bool = False):
    """A validator for a field that takes a number in [low, high] or the word ``word``, with one
    message either way (pydantic's union would report each alternative separately).
    """

    def check(value):
        if value == word:
            return value
        kind = "an integer" if integer else "a number"
        ok = isinstance(value, int if integer else int | float) and not isinstance(value, bool)
        if isinstance(value, str) and not integer:
            try:
                value, ok = float(value), True
            except ValueError:
                ok = False
        if not ok or not math.isfinite(value) or not low <= value <= high:
            raise ValueError(f"input should be {kind} from {low:g} to {high:g}, or {word!r}")
        return value

    return PlainValidator(check)


Sequences = Annotated[StrictInt, Field(ge=1, le=MAX_SEQUENCES)]


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
      ``auto`` for ``CHRONO_AUTO`` x each run's distance.
    """

    name: Annotated[str, Field(min_length=1, max_length=MAX_NAME, pattern=r"^[A-Za-z0-9_.-]+$")]
    cell: Literal["rnn", "lstm", "gru"]
    hidden_size: HiddenSize | None = None  # None: the experiment's hidden_size
    # a parameter budget: the largest hidden size within it, per task (bounded as a width is)
    parameters: Annotated[StrictInt, Field(ge=1, le=MAX_PARAMETERS)] | None = None
    nonlinearity: Literal["tanh", "relu"] | None = None
    recurrent_init: Literal["pytorch", "orthogonal", "glorot", "identity"] = "pytorch"
    # None: LSTM_FORGET_BIAS; pytorch: PyTorch's own init (about 0)
    forget_bias: (
        Annotated[float | str, _number_or("pytorch", -MAX_FORGET_BIAS, MAX_FORGET_BIAS)] | None
    ) = None
    update_bias: GateBias | None = None
    # Tallec & Ollivier 2018; time scales past the longest distance have nothing to span
    chrono_t_max: Annotated[int | str, _number_or("auto", 2, MAX_DISTANCE, integer=True)] | None = (
        None
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
        elif self.recurrent_init == "glorot":
            parts.append("Glorot-uniform W")
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


def _check_seeds(v: list[int]) -> list[int]:
    """Seeds are distinct, and within what Lightning's seed_everything accepts."""
    for s in v:
        if s < 0:
            raise ValueError(f"seed {s} is negative")
        if s > MAX_SEED:
            raise ValueError(
                f"seed {s} exceeds {MAX_SEED} (2**32 - 1), the largest seed Lightning's "
                "seed_everything accepts"
            )
    return _unique(v, "seed")


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
        return _check_seeds(v)

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
    hidden_size: HiddenSize = 64
    training: TrainingConfig = TrainingConfig()
    data: DataConfig = DataConfig()
    probe: ProbeConfig = ProbeConfig()
    resources: ResourcesConfig = ResourcesConfig()
    tuning: TuningConfig | None = None
    # a published claim this experiment replicates (experiments/replications/); not part of any
    # run's identity: rewording a claim retrains nothing
    claim: Claim | None = None

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int]) -> list[int]:
        return _check_seeds(v)

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
        grid = self.tuning.grid  # every point, with the settings it does not vary
        for values in itertools.product(*grid.values()):
            point = dict(zip(grid, values, strict=True))
            try:
                TrainingConfig(**{**self.training.model_dump(), **point})
            except ValidationError as e:
                msg = e.errors()[0]["msg"].removeprefix("Value error, ")
                shown = ", ".join(f"{k}={v!r}" for k, v in point.items())
                raise ValueError(f"tuning.grid: at grid point {shown}, {msg}") from None
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
    def _claim_fits(self):
        if self.claim is None:
            return self
        if len(self.tasks) != 1:
            raise ValueError(
                f"claim: a replication holds one task, so that its checks name no task (got "
                f"{len(self.tasks)}: {', '.join(t.task for t in self.tasks)})"
            )
        problem = self.claim.problems([m.name for m in self.models], self.tasks[0].distances)
        if problem:
            raise ValueError(f"claim.{problem}")
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

    @model_validator(mode="after")
    def _batch_fits(self):
        # batches.Batches yields only full batches: a smaller training split yields none, and
        # training would wait for its first step forever
        if self.training.batch_size > self.data.n_train:
            raise ValueError(
                f"training.batch_size: {self.training.batch_size} exceeds data.n_train "
                f"{self.data.n_train}: training would never fill a batch"
            )
        return self

    @model_validator(mode="after")
    def _held_out_fits(self):
        """Every (task, distance) has enough sequences for held-out splits that avoid train
        (``capacity.held_out_problem``).
        """
        sizes = self.data.sizes()
        index = {t.task: i for i, t in enumerate(self.tasks)}
        for task, distance, _ in self.data_cells():  # the tuning distances too
            problem = capacity.held_out_problem(task.build(), distance, sizes)
            if problem:
                raise ValueError(f"tasks[{index[task.task]}].distances: {problem}")
        return self

    @model_validator(mode="after")
    def _memory_fits(self):
        """The data stage's largest folder fits in half of this machine's memory
        (``capacity.peak_bytes``); unchecked where the platform does not say how much it has.
        """
        limit = capacity.memory_limit()
        if limit is None:
            return self
        sizes = self.data.sizes()
        need, task, distance = max(
            (capacity.peak_bytes(t.build(), d, sizes), t.task, d) for t, d, _ in self.data_cells()
        )
        if need > limit:
            raise ValueError(
                f"data: {self.data.n_train}/{self.data.n_val}/{self.data.n_test} sequences of "
                f"{task} at distance {distance} need about {_bytes(need)} of memory in the data "
                f"stage, over the {_bytes(limit)} it may take here (half of this machine's "
                f"{_bytes(2 * limit)}): use fewer sequences (data.n_train, data.n_val, "
                "data.n_test) or shorter distances"
            )
        return self

    @cached_property
    def runs(self) -> list[RunSpec]:
        """The evaluation runs with the experiment's own training settings, in a stable order
        (task, distance, seed, model). With ``tuning``, the sweep and the report give each
        variant's evaluation runs the settings its tuning chose (``runs.evaluation_runs``).
        """
        from pipeline import runs

        return runs.evaluation_runs(self)


def _bytes(n: float) -> str:
    """``1.5 GiB``: a memory size for a message."""
    units = ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
    power = min(int(math.log(max(n, 1), 1024)), len(units) - 1)
    return f"{n / 1024**power:.1f} {units[power]}" if power else f"{n:.0f} bytes"


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
        own = re.match(r"^([a-z_]+(?:\[\d+\]|\.[a-z_]+)*): (.*)$", msg, re.S)
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
        blob = path.read_bytes()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read experiment file ({e.strerror})") from None
    try:
        if b"\0" in blob:  # valid UTF-8, but no text file holds a NUL byte
            raise ValueError("it holds a NUL byte")
        text = blob.decode("utf-8")  # the same on every machine, whatever its locale
    except ValueError as e:
        raise ConfigError(
            f"{path}: not a text file ({e}); an experiment file is UTF-8 YAML"
        ) from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: malformed YAML: {e}") from None
    except RecursionError:  # PyYAML composes nested collections recursively
        raise ConfigError(f"{path}: malformed YAML: collections nested too deeply") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, got {type(raw).__name__}")
    for key in raw:
        if not isinstance(key, str):
            raise ConfigError(f"{path}: {key!r}: not a setting (settings are named by words)")
    if "name" in raw:
        raise ConfigError(f"{path}: name: not a setting; the experiment is named by its file")
    try:
        return Experiment(name=path.stem, **raw)
    except ValidationError as e:
        raise ConfigError(_describe(path, e)) from None
