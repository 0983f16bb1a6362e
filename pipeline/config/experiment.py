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
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import (
    Field,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from pipeline import tasks
from pipeline.bounds import Frozen, HiddenSize, check_seeds, unique
from pipeline.config.claims import Claim
from pipeline.config.model import ModelConfig
from pipeline.config.training import DataConfig, ProbeConfig, ResourcesConfig, TrainingConfig
from pipeline.config.tuning import TuningConfig
from pipeline.errors import ConfigError
from pipeline.tasks import TaskConfig, TaskField, capacity


class Experiment(Frozen):
    """A whole experiment: tasks x models x distances x seeds, and how to train each."""

    name: str = Field(exclude=True)
    tasks: Annotated[list[TaskField], Field(min_length=1)]
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
        return check_seeds(v)

    @field_validator("tasks")
    @classmethod
    def _tasks(cls, v: list) -> list:
        unique([t.task for t in v], "task")
        return v

    @field_validator("models")
    @classmethod
    def _models(cls, v: list[ModelConfig]) -> list[ModelConfig]:
        unique([m.name for m in v], "model name")
        by_name = {m.name: m for m in v}
        for m in v:
            if not isinstance(m.parameters, str):
                continue
            target = by_name.get(m.parameters)
            if target is None or target is m or isinstance(target.parameters, str):
                others = [
                    n
                    for n, t in by_name.items()
                    if t is not m and not isinstance(t.parameters, str)
                ]
                raise ValueError(
                    f"model {m.name!r}: parameters: {m.parameters!r} must be a number or the "
                    f"name of another model with a size of its own (one of {others})"
                )
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

    def data_folders(self) -> list[tuple[TaskConfig, int, int]]:
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
        for task, distance, _ in self.data_folders():  # the tuning distances too
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
            (capacity.peak_bytes(t.build(), d, sizes), t.task, d) for t, d, _ in self.data_folders()
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
    return validated(path, path.stem, raw)


def validated(path: Path, name: str, raw: dict) -> Experiment:
    """The experiment ``name`` of the settings ``raw``, read from ``path``. Raises ConfigError,
    naming ``path``, the field and the value, for any invalid field.
    """
    try:
        return Experiment(name=name, **raw)
    except ValidationError as e:
        raise ConfigError(_describe(path, e)) from None
