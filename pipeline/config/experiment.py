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
import os
import re
import types
import typing
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import (
    BaseModel,
    Field,
    StrictInt,
    ValidationError,
    field_validator,
    model_validator,
)

from pipeline import tasks
from pipeline.bounds import (
    MAX_DISTANCE,
    MAX_FILE_BYTES,
    MAX_HIDDEN,
    MAX_RUNS,
    Frozen,
    HiddenSize,
    check_seeds,
    did_you_mean,
    unique,
)
from pipeline.config.claims import Claim
from pipeline.config.control import ControlConfig
from pipeline.config.model import ModelConfig
from pipeline.config.staircase import StaircaseConfig, rungs
from pipeline.config.training import DataConfig, ProbeConfig, ResourcesConfig, TrainingConfig
from pipeline.config.tuning import TuningConfig
from pipeline.errors import ConfigError
from pipeline.tasks import TaskConfig, TaskField, capacity


class Experiment(Frozen):
    """A whole experiment: tasks x models x distances x seeds, and how to train each."""

    name: str = Field(exclude=True)  # the file's stem, never a setting of the file
    tasks: Annotated[list[TaskField], Field(min_length=1)] = Field(
        description="the tasks, each with its distances and its generator's parameters"
    )
    models: Annotated[list[ModelConfig], Field(min_length=1)] = Field(
        description="named model variants: a cell, its size and its initialisation"
    )
    seeds: Annotated[list[StrictInt], Field(min_length=1)] = Field(
        description="evaluation seeds: every model trains once per task, distance and seed"
    )
    hidden_size: HiddenSize = Field(
        64, description="every model's width, unless a model sets hidden_size or parameters"
    )
    training: TrainingConfig = Field(TrainingConfig(), description="how every run trains")
    data: DataConfig = Field(DataConfig(), description="sequences per split")
    probe: ProbeConfig = Field(ProbeConfig(), description="the gradient probe")
    resources: ResourcesConfig = Field(
        ResourcesConfig(),
        description="what each run asks of the machine; not part of a run's identity",
    )
    tuning: TuningConfig | None = Field(
        None,
        description="the same tuning budget for every variant; null: every run trains with "
        "training as given",
    )
    staircase: StaircaseConfig | None = Field(
        None,
        description="an adaptive distance design: the same rule finds every variant's horizon "
        "(its seeds are the experiment's seeds, its extra seeds join at the bracket)",
    )
    control: ControlConfig | None = Field(
        None,
        description="shared settings every compared variant also trains at where the family "
        "verdicts are decided (needs a staircase)",
    )
    # not part of any run's identity: rewording a claim retrains nothing
    claim: Claim | None = Field(
        None,
        description="a published claim this experiment replicates (experiments/replications/)",
    )

    @model_validator(mode="before")
    @classmethod
    def _runs_fit(cls, raw: object) -> object:
        """At most ``MAX_RUNS`` runs, counted from the lists' lengths before anything is built
        (a list of 10**5 seeds would otherwise be expanded and checked run by run).
        """
        evaluation, tuning = _count_runs(raw)
        if evaluation + tuning > MAX_RUNS:
            raise ValueError(
                f"the experiment plans {evaluation + tuning} runs ({evaluation} evaluation, "
                f"{tuning} tuning), over the {MAX_RUNS} one experiment may hold: split it into "
                "several experiment files"
            )
        return raw

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int]) -> list[int]:
        return check_seeds(v)

    @model_validator(mode="before")
    @classmethod
    def _staircase_seeds(cls, data):
        """The staircase runs the experiment's seeds: a file lists them once, under ``seeds``."""
        section = data.get("staircase") if isinstance(data, dict) else None
        if isinstance(section, dict):
            if "seeds" in section:
                raise ValueError(
                    "staircase.seeds: the staircase runs the experiment's seeds; list them under "
                    f"seeds (got {section['seeds']!r})"
                )
            if isinstance(data.get("seeds"), list):
                data = {**data, "staircase": {**section, "seeds": tuple(data["seeds"])}}
        return data

    @model_validator(mode="after")
    def _distances_known(self):
        for i, task in enumerate(self.tasks):
            if not task.distances and self.staircase is None:
                raise ValueError(
                    f"tasks[{i}].distances: list the distances to train, or add a staircase "
                    "section that finds them"
                )
            low = self.shortest(task) if self.staircase is not None else 0
            if self.staircase is not None and self.staircase.start < low:
                raise ValueError(
                    f"staircase.start: {self.staircase.start} is below {low}, the shortest "
                    f"distance of the {task.task} task whose held-out splits fit data's sizes"
                )
        if self.control is not None and self.staircase is None:
            raise ValueError(
                "control: the distances where the family verdicts are decided come from the "
                "staircase's brackets: add a staircase section"
            )
        if self.staircase is not None and self.tuning is not None:
            shared = sorted(set(self.tuning.seeds) & set(self.staircase.extra_seeds))
            if shared:
                raise ValueError(
                    f"tuning.seeds: {shared[0]} is also a staircase extra seed (an evaluation "
                    "seed); tuning seeds must be others"
                )
        return self

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
    def _budgets_fit(self):
        """Every parameter budget leaves some width, within ``MAX_HIDDEN``, on every task."""
        from pipeline.config.runs import hidden_size  # it reads a validated Experiment

        for i, m in enumerate(self.models):
            if m.parameters is None:
                continue
            for task in self.tasks:
                try:
                    width = hidden_size(self, m, task)
                except ValueError as e:
                    raise ValueError(f"models[{i}].parameters: {e}") from None
                if width > MAX_HIDDEN:
                    raise ValueError(
                        f"models[{i}].parameters: {m.parameters!r} gives model {m.name!r} hidden "
                        f"size {width} on the {task.task} task, over the {MAX_HIDDEN} a width may "
                        "be"
                    )
        return self

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

    def tuning_distance(self, task: TaskConfig) -> int:
        """The tuning distance of ``task``: as listed, else the staircase's first level (which
        every variant meets first), else the middle of the task's distances.
        """
        if task.task in self.tuning.distances:
            return self.tuning.distances[task.task]
        if self.staircase is not None:
            return self.staircase.start
        d = task.distances
        return d[(len(d) - 1) // 2]

    def shortest(self, task: TaskConfig) -> int:
        """The shortest distance the staircase may go down to on ``task``: the task's own
        minimum, or longer where the data's held-out splits need more sequences than a short
        distance has (``capacity.held_out_problem``).
        """
        generator, sizes = task.build(), self.data.sizes()
        d = generator.min_distance
        while d < MAX_DISTANCE and capacity.held_out_problem(generator, d, sizes):
            d += 1
        return d

    def distances(self, task: TaskConfig) -> list[int]:
        """Every distance a run of ``task`` may train at, ascending: the fixed ones, the tuning
        distance and every rung the staircase may visit (a bisection falls between two rungs).
        """
        found = set(task.distances)
        if self.tuning is not None:
            found.add(self.tuning_distance(task))
        if self.staircase is not None:
            found |= set(rungs(self.staircase, self.shortest(task)))
        return sorted(found)

    def data_folders(self) -> list[tuple[TaskConfig, int, int]]:
        """Every (task, distance, seed) whose data the data stage writes before training:
        the fixed distances and the tuning distance, and the staircase's first level. The
        staircase's later levels depend on outcomes: the sweep writes their data when it gets
        there (the data is a pure function of the task, the distance and the seed).
        """
        cells = [(t, d, s) for t in self.tasks for d in t.distances for s in self.seeds]
        if self.tuning is not None:
            cells += [
                (t, self.tuning_distance(t), s) for t in self.tasks for s in self.tuning.seeds
            ]
        if self.staircase is not None:
            cells += [(t, self.staircase.start, s) for t in self.tasks for s in self.seeds]
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
        for i, task in enumerate(self.tasks):
            for distance in self.distances(task):  # the tuning and staircase distances too
                problem = capacity.held_out_problem(task.build(), distance, sizes)
                if problem:
                    where = "distances" if distance in task.distances else "staircase"
                    raise ValueError(f"tasks[{i}].{where}: {problem}")
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
            (capacity.peak_bytes(t.build(), d, sizes), t.task, d)
            for t in self.tasks
            for d in self.distances(t)
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


def _count_runs(raw: object) -> tuple[int, int]:
    """(evaluation, tuning) runs an experiment's raw settings plan, from its lists' lengths: a
    duplicate counts twice (validation refuses it later), a malformed section counts none.
    """

    def size(value: object) -> int:
        return len(value) if isinstance(value, list | dict) else 0

    if not isinstance(raw, dict):
        return 0, 0
    task_list = raw.get("tasks") if isinstance(raw.get("tasks"), list) else []
    distances = sum(size(t.get("distances")) for t in task_list if isinstance(t, dict))
    models, seeds = size(raw.get("models")), size(raw.get("seeds"))
    tuning = raw.get("tuning") if isinstance(raw.get("tuning"), dict) else {}
    grid = tuning.get("grid") if isinstance(tuning.get("grid"), dict) else {}
    points = math.prod(size(values) for values in grid.values()) if grid else 0
    return distances * seeds * models, len(task_list) * models * points * size(tuning.get("seeds"))


def _bytes(n: float) -> str:
    """``1.5 GiB``: a memory size for a message."""
    units = ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
    power = min(int(math.log(max(n, 1), 1024)), len(units) - 1)
    return f"{n / 1024**power:.1f} {units[power]}" if power else f"{n:.0f} bytes"


# ---- reading a file, and saying what is wrong with it in plain words ------------------------


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: object, first: int, second: int) -> None:
        super().__init__(f"line {second}: {key} appears twice in one mapping")
        self.key, self.first, self.second = key, first, second


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """PyYAML's safe loader, refusing a key given twice in one mapping: PyYAML keeps the last
    silently, so a second ``training:`` block would replace the first one whole.
    """

    def construct_mapping(self, node, deep=False):
        lines: dict = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue  # a merge key (<<) overrides on purpose; a collection as a key fails
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                if key in lines:
                    raise _DuplicateKey(key, lines[key], line)
                lines[key] = line
            except TypeError:  # unhashable: PyYAML's own error follows
                pass
        return super().construct_mapping(node, deep=deep)


def _read(path: Path) -> str:
    """The text of ``path``: at most ``MAX_FILE_BYTES`` of UTF-8 without NUL bytes."""
    try:
        with open(path, "rb") as f:
            blob = f.read(MAX_FILE_BYTES + 1)  # never more: a file may be endless (/dev/zero)
            if len(blob) > MAX_FILE_BYTES:
                size = max(len(blob), _size(f))
                raise ConfigError(
                    f"{path}: {_bytes(size)}, over the {_bytes(MAX_FILE_BYTES)} an experiment "
                    "file may hold (it lists settings, never data)"
                )
    except OSError as e:
        raise ConfigError(f"{path}: cannot read experiment file ({e.strerror})") from None
    try:
        if b"\0" in blob:  # valid UTF-8, but no text file holds a NUL byte
            raise ValueError("it holds a NUL byte")
        return blob.decode("utf-8")  # the same on every machine, whatever its locale
    except ValueError as e:
        raise ConfigError(
            f"{path}: not a text file ({e}); an experiment file is UTF-8 YAML"
        ) from None


def _size(f) -> int:
    """The size of the open file ``f`` (0 where it has none, a pipe)."""
    try:
        return os.fstat(f.fileno()).st_size
    except OSError:
        return 0


def _parse(path: Path, text: str) -> dict:
    """The settings mapping of the YAML ``text``; ConfigError naming the file and line."""
    if not text.strip():
        raise ConfigError(
            f"{path}: the file is empty; an experiment file sets at least tasks, models and seeds"
        )
    try:
        raw = yaml.load(text, Loader=_Loader)  # a SafeLoader
    except _DuplicateKey as e:
        raise ConfigError(
            f"{path}: line {e.second}: {e.key} is given twice in one mapping (first at line "
            f"{e.first}); give each setting once, merging the two"
        ) from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: {_yaml_problem(e)}") from None
    except RecursionError:  # PyYAML composes nested collections recursively
        raise ConfigError(f"{path}: malformed YAML: collections nested too deeply") from None
    if raw is None:
        raise ConfigError(
            f"{path}: holds no settings, only comments; an experiment file sets at least tasks, "
            "models and seeds"
        )
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of settings, got {type(raw).__name__}")
    for key in raw:
        if not isinstance(key, str):
            raise ConfigError(f"{path}: {key!r}: not a setting (settings are named by words)")
    if "name" in raw:
        raise ConfigError(f"{path}: name: not a setting; the experiment is named by its file")
    return raw


def _yaml_problem(e: yaml.YAMLError) -> str:
    """``line 2, column 1: malformed YAML: expected ',' or ']', but got '<stream end>' (while
    parsing a flow sequence from line 1, column 8)``: PyYAML's error, placed in the file.
    """
    mark = getattr(e, "problem_mark", None)
    problem = getattr(e, "problem", None)
    if mark is None or problem is None:
        return f"malformed YAML: {e}"
    text = f"line {mark.line + 1}, column {mark.column + 1}: malformed YAML: {problem}"
    context, start = getattr(e, "context", None), getattr(e, "context_mark", None)
    if context and start is not None:
        text += f" ({context} from line {start.line + 1}, column {start.column + 1})"
    elif context:
        text += f" ({context})"
    return text


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


def _section(loc: tuple) -> type[BaseModel] | None:
    """The model whose fields a mapping at ``loc`` holds (``("training",)``: TrainingConfig;
    ``("tasks", 0, "recall")``: RecallConfig), or None where ``loc`` is no such mapping.
    """
    kind: object = Experiment
    for part in loc:
        kind = _inner(kind, part)
    while typing.get_origin(kind) in (Annotated, typing.Union, types.UnionType):  # X | None
        kind = next((a for a in typing.get_args(kind) if a is not type(None)), None)
    return kind if isinstance(kind, type) and issubclass(kind, BaseModel) else None


def _inner(kind: object, part: str | int) -> object:
    """The type of ``part`` (a field name, a list index, a task's tag) inside ``kind``."""
    while typing.get_origin(kind) is Annotated:
        kind = typing.get_args(kind)[0]
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        if part in tasks.TASKS:  # a task section, picked by its tag
            return next(c for c in tasks.CONFIGS if c.GENERATOR.name == part)
        found = [_inner(a, part) for a in args if a is not type(None)]
        return next((f for f in found if f is not None), None)
    if isinstance(kind, type) and issubclass(kind, BaseModel) and isinstance(part, str):
        field = kind.model_fields.get(part)
        return None if field is None else field.annotation
    if origin is list and isinstance(part, int):
        return args[0]
    if origin is dict and isinstance(part, str):
        return args[1]
    return None


def _unknown_key(loc: tuple) -> str:
    """``not a setting; did you mean learning_rate? training takes optimizer, ...``."""
    section = _section(loc[:-1])
    if section is None:
        return "not a setting"
    known = [name for name, f in section.model_fields.items() if not f.exclude]
    where = _location(loc[:-1])
    owner = "an experiment file" if where == "(top level)" else where
    return f"not a setting;{did_you_mean(loc[-1], known)} {owner} takes {', '.join(known)}"


# a number in exponent form that YAML 1.1 (PyYAML) reads as text: it wants a dot and a signed
# exponent (2.0e+3); YAML 1.2 and most editors read 2e3 as a number
_EXPONENT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+$")


def _explain(e: dict) -> tuple[str, bool]:
    """Pydantic's error ``e`` in plain words, and whether the bad value should follow it."""
    kind, value = e["type"], e.get("input")
    if kind == "extra_forbidden":
        return _unknown_key(e["loc"]), True
    if kind == "union_tag_invalid":
        names = list(tasks.TASKS)
        tag = e["ctx"]["tag"]
        return (
            f"task: no task {tag!r};{did_you_mean(tag, names)} the tasks are {', '.join(names)}",
            False,
        )
    if kind == "union_tag_not_found":
        return f"task: missing; name the task ({', '.join(tasks.TASKS)})", False
    if kind == "missing":
        return "required but not given", False
    if kind in ("int_type", "int_parsing", "int_from_float"):
        if isinstance(value, str) and _EXPONENT.match(value.strip()):
            number = float(value)
            write = f"write {int(number)}" if number == int(number) else "it takes an integer"
            return f"`{value}` is text to YAML, not a number; {write}", False
        if isinstance(value, float) and math.isfinite(value) and value == int(value):
            return f"input should be an integer: write {int(value)}, without a dot", True
    return e["msg"].removeprefix("Value error, "), True


def _describe(path: Path, error: ValidationError) -> str:
    lines = []
    for e in error.errors():
        where, (msg, show) = _location(e["loc"]), _explain(e)
        own = re.match(r"^([a-z_]+(?:\[\d+\]|\.[a-z_]+)*): (.*)$", msg, re.S)
        if own:  # a cross-field check that names its own field: "distances: ..."
            sub, msg = own.groups()
            where = sub if where == "(top level)" else f"{where}.{sub}"
            show = False
        value = e.get("input")
        shown = f" (got {value!r})" if show and not isinstance(value, dict | list) else ""
        text = f"{msg[0].lower() + msg[1:]}{shown}"
        lines.append(f"{path}: {text}" if where == "(top level)" else f"{path}: {where}: {text}")
    return "\n".join(lines)


def load(path: str | Path) -> Experiment:
    """Read and validate ``path``; the experiment's name is the file's stem.

    Raises ConfigError for a missing, oversized or empty file, malformed YAML, a key given
    twice, or any invalid field.
    """
    path = Path(path)
    raw = _parse(path, _read(path))
    return validated(path, path.stem, raw)


def validated(path: Path, name: str, raw: dict) -> Experiment:
    """The experiment ``name`` of the settings ``raw``, read from ``path``. Raises ConfigError,
    naming ``path``, the field and the value, for any invalid field.
    """
    try:
        return Experiment(name=name, **raw)
    except ValidationError as e:
        raise ConfigError(_describe(path, e)) from None
