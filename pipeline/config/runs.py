"""A sweep's runs: one ``RunSpec`` per (task, distance, model variant, seed), how an experiment
expands into them, and what a finished run leaves (``RunResult``, its result file).

Without tuning, an experiment's runs are its *evaluation* runs (``evaluation_runs``). With
``tuning``, each variant first trains every grid point on the tuning seeds at the task's tuning
distance (``tuning_runs``: ordinary runs whose key carries the grid point), and its evaluation
runs then take the grid point that ``tuning.select`` chose on validation data.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from pipeline import paths
from pipeline.config.model import ModelConfig
from pipeline.config.training import DataConfig, ProbeConfig, ResourcesConfig, TrainingConfig
from pipeline.tasks import TaskConfig, TaskField

if TYPE_CHECKING:
    from pipeline.config.experiment import Experiment

GridPoint = tuple[tuple[str, Any], ...]  # (training field, value) pairs, in the grid's order
SHORT = {"learning_rate": "lr", "batch_size": "bs", "grad_clip": "clip", "optimizer": "opt"}


def grid_label(point: GridPoint) -> str:
    """``lr0.003``, ``lr0.001_bs64``: a grid point as a run key and a plot label name it."""
    return "_".join(f"{SHORT.get(field, field)}{value:g}" if isinstance(value, int | float)
                    else f"{SHORT.get(field, field)}{value}" for field, value in point)  # fmt: skip


class RunSpec(BaseModel):
    """One run: a task at one distance, one model variant, one seed; a tuning run also carries its
    grid point (the training settings it tries), an evaluation run the grid point its variant's
    tuning chose (empty without tuning).
    """

    model_config = ConfigDict(frozen=True)

    experiment: str
    task: TaskField
    model: ModelConfig
    distance: int
    seed: int
    hidden_size: int
    training: TrainingConfig
    data: DataConfig
    probe: ProbeConfig
    resources: ResourcesConfig = ResourcesConfig()
    phase: Literal["evaluation", "tuning"] = "evaluation"
    grid: GridPoint = ()

    @property
    def key(self) -> str:
        """``recall/lstm_d20_s1`` (``recall/tuning/lstm_lr0.003_d20_s100`` for a tuning run):
        unique within an experiment; names the result file.
        """
        if self.phase == "tuning":
            return (
                f"{self.task.task}/tuning/{self.model.name}_{grid_label(self.grid)}"
                f"_d{self.distance}_s{self.seed}"
            )
        return f"{self.task.task}/{self.model.name}_d{self.distance}_s{self.seed}"

    @property
    def title(self) -> str:
        """The MLflow run name, e.g. ``recall lstm d=20 s=1`` (``... lr0.003 (tuning)``)."""
        name = f"{self.task.task} {self.model.name} d={self.distance} s={self.seed}"
        return f"{name} {grid_label(self.grid)} (tuning)" if self.phase == "tuning" else name

    def identity(self) -> dict:
        """Who the run is: the tags every record of it carries (MLflow, result file, report)."""
        return {
            "experiment": self.experiment,
            "task": self.task.task,
            "model": self.model.name,
            "cell": self.model.cell,
            "distance": self.distance,
            "seed": self.seed,
            "phase": self.phase,
            "grid": grid_label(self.grid) or "none",
            "run_key": self.key,
            "config_hash": self.config_hash,
        }

    def params(self) -> dict:
        """Every setting of the run, flat, under the config's own field names."""
        m = self.model
        flat = {
            "experiment": self.experiment,
            "task": self.task.task,
            **self.task.params(),
            "model": m.name,
            "cell": m.cell,
            "hidden_size": self.hidden_size,
            "parameters": m.parameters,
            **m.options(self.distance),
            "distance": self.distance,
            "seed": self.seed,
            "phase": self.phase if self.phase == "tuning" else None,
            **self.training.model_dump(),
            **self.data.model_dump(),
            **{f"probe_{k}": v for k, v in self.probe.model_dump().items()},
        }
        return {k: v for k, v in flat.items() if v is not None}

    @property
    def config_hash(self) -> str:
        """Hash of everything that determines the run's outcome; a changed config reruns it."""
        blob = json.dumps(self.params(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:12]

    @property
    def parameter_count(self) -> int:
        """The parameters of the model this run builds (``count_parameters``, without torch)."""
        return _count(self.model, self.task.build(), self.hidden_size)

    def model_options(self) -> dict:
        """The ``models.SequenceModel`` init options this run builds its model with."""
        return {k: v for k, v in self.model.options(self.distance).items() if v is not None}


class RunResult(BaseModel):
    """What a finished run leaves in its result file (``results/<experiment>/<run_key>.json``),
    read by the sweep (is it done?), tuning (validation fields only), the report and the claims.
    ``probe_init`` and ``probe_final`` hold the probe's summaries before and after training
    (``probe.Profile.summary``; None where not finite).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str
    experiment: str
    task: str
    model: str
    cell: str
    distance: int
    seed: int
    phase: Literal["evaluation", "tuning"]
    grid: str
    run_key: str
    config_hash: str
    code_version: str | None
    status: Literal["solved", "unsolved", "diverged"]
    solved: bool
    steps: int  # updates taken
    steps_to_solve: int | None  # the update at which validation accuracy reached the target
    diverged_step: int | None
    test_accuracy: float
    test_loss: float | None  # None where not finite (a diverged run)
    best_val_accuracy: float
    best_val_loss: float | None
    chance_accuracy: float
    baseline_loss: float
    mean_grad_norm: float | None  # before clipping, over the updates taken; None: not finite
    wall_time: float  # seconds
    environment: dict[str, str]
    probe_init: dict[str, float | None]
    probe_final: dict[str, float | None]

    def flat(self) -> dict:
        """The result as one flat row: ``probe_init_<summary>``, ``probe_final_<summary>``."""
        row = self.model_dump(exclude={"probe_init", "probe_final"})
        for phase in ("init", "final"):
            row |= {f"probe_{phase}_{k}": v for k, v in getattr(self, f"probe_{phase}").items()}
        return row

    def current(self, spec: RunSpec, version: str) -> bool:
        """Whether this result is of ``spec``'s configuration and of code ``version``."""
        return self.config_hash == spec.config_hash and self.code_version == version

    @classmethod
    def read(cls, path: Path) -> RunResult | None:
        """The result in ``path``, or None when it is missing, unreadable or not a result."""
        try:
            return cls.model_validate_json(path.read_text())
        except (OSError, ValidationError):
            return None

    def stage(self, path: Path) -> Path:
        """Write the result beside ``path`` under a temporary name (``paths.stage_text``)."""
        return paths.stage_text(path, self.model_dump_json(indent=2) + "\n")


def result_path(spec: RunSpec) -> Path:
    """The result file of ``spec``."""
    return paths.result_file(spec.experiment, spec.key)


def read_result(spec: RunSpec) -> RunResult | None:
    """The result file of ``spec``, whatever configuration or code it came from."""
    return RunResult.read(result_path(spec))


def is_done(spec: RunSpec, version: str) -> bool:
    """Whether ``spec`` has a result file from its current config and code ``version``."""
    result = read_result(spec)
    return result is not None and result.current(spec, version)


GATES = {"rnn": 1, "gru": 3, "lstm": 4}  # weight blocks of a core: W is [GATES * H, H]


def count_parameters(
    cell: str, n_inputs: int, n_outputs: int, hidden: int, tokens: bool, input_layer: bool = True
) -> int:
    """The parameters of the ``models.SequenceModel`` these arguments build, without building
    it (no torch here): input layer (an embedding, or a linear map with bias; none without
    ``input_layer``), core (per gate: U, W and two biases), head V. A test holds it to
    ``models.parameter_count``.
    """
    encoder = n_inputs * hidden + (0 if tokens else hidden) if input_layer else 0
    width = hidden if input_layer else n_inputs
    core = GATES[cell] * (width * hidden + hidden * hidden + 2 * hidden)
    return encoder + core + hidden * n_outputs + n_outputs


def _count(model: ModelConfig, t, hidden: int) -> int:
    """``count_parameters`` of ``model`` at ``hidden`` on the built task ``t``."""
    return count_parameters(model.cell, t.n_inputs, t.n_outputs, hidden, t.tokens,
                            model.input_layer)  # fmt: skip


def hidden_for_budget(
    cell: str, n_inputs: int, n_outputs: int, tokens: bool, budget: int, input_layer: bool = True
) -> int:
    """The largest hidden size whose model has at most ``budget`` parameters. Raises
    ValueError where even hidden size 1 has more.
    """
    smallest = count_parameters(cell, n_inputs, n_outputs, 1, tokens, input_layer)
    if smallest > budget:
        raise ValueError(f"no width fits {budget} parameters: even hidden size 1 has {smallest}")
    hidden = 1
    while count_parameters(cell, n_inputs, n_outputs, hidden + 1, tokens, input_layer) <= budget:
        hidden += 1
    return hidden


def hidden_size(exp: Experiment, model: ModelConfig, task: TaskConfig) -> int:
    """The model's hidden size on ``task``: its own, the largest within its parameter budget (a
    number, or another model's count on this task), or the experiment's.
    """
    if model.parameters is None:
        return model.hidden_size or exp.hidden_size
    t = task.build()
    budget, whose = model.parameters, ""
    if isinstance(budget, str):  # another model's count on this task
        other = next(m for m in exp.models if m.name == budget)
        budget, whose = _count(other, t, hidden_size(exp, other, task)), f" ({other.name}'s)"
    try:
        return hidden_for_budget(model.cell, t.n_inputs, t.n_outputs, t.tokens, budget,
                                 model.input_layer)  # fmt: skip
    except ValueError as e:
        raise ValueError(f"model {model.name!r} on the {task.task} task{whose}: {e}") from None


def _widths(exp: Experiment) -> dict[tuple[str, str], int]:
    """Each (task, model)'s hidden size (``hidden_size``), worked out once for all its runs."""
    return {(t.task, m.name): hidden_size(exp, m, t) for t in exp.tasks for m in exp.models}


def _spec(exp, widths, task, model, distance, seed, phase="evaluation", point: GridPoint = ()):
    training = exp.training.model_copy(update=dict(point)) if point else exp.training
    return RunSpec(
        experiment=exp.name,
        task=task,
        model=model,
        distance=distance,
        seed=seed,
        hidden_size=widths[(task.task, model.name)],
        training=training,
        data=exp.data,
        probe=exp.probe,
        resources=exp.resources,
        phase=phase,
        grid=point,
    )


def grid_points(exp: Experiment) -> list[GridPoint]:
    """Every combination of the tuning grid's values, in the file's order (none: no tuning)."""
    if exp.tuning is None:
        return []
    fields = list(exp.tuning.grid)
    combos = itertools.product(*(exp.tuning.grid[f] for f in fields))
    return [tuple(zip(fields, values, strict=True)) for values in combos]


def tuning_runs(exp: Experiment) -> list[RunSpec]:
    """Every tuning run: task, model, grid point, tuning seed, at the task's tuning distance."""
    if exp.tuning is None:
        return []
    widths = _widths(exp)
    return [
        _spec(exp, widths, t, m, exp.tuning.distance(t), s, "tuning", point)
        for t in exp.tasks
        for m in exp.models
        for point in grid_points(exp)
        for s in exp.tuning.seeds
    ]


Choice = dict[tuple[str, str], GridPoint]  # (task, model) -> the grid point its runs use


def evaluation_runs(exp: Experiment, choice: Choice | None = None) -> list[RunSpec]:
    """The evaluation runs (task, distance, seed, model order), each variant with the grid point
    ``choice`` gives it (none: the experiment's own training settings); variants ``choice``
    lacks are left out (their tuning is unfinished).
    """
    out, widths = [], _widths(exp)
    for t in exp.tasks:
        for d in t.distances:
            for s in exp.seeds:
                for m in exp.models:
                    if choice is None:
                        out.append(_spec(exp, widths, t, m, d, s))
                    elif (t.task, m.name) in choice:
                        point = choice[(t.task, m.name)]
                        out.append(_spec(exp, widths, t, m, d, s, point=point))
    return out
