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
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from pipeline import paths
from pipeline.config import control, staircase
from pipeline.config.model import ModelConfig
from pipeline.config.training import DataConfig, ProbeConfig, ResourcesConfig, TrainingConfig
from pipeline.tasks import TaskConfig, TaskField

if TYPE_CHECKING:
    from pipeline.config.experiment import Experiment

GridPoint = tuple[tuple[str, Any], ...]  # (training field, value) pairs, in the grid's order
# the distances, as factors of its own, that a trained model is scored at after its test split
EXTRAPOLATION_FACTORS = (0.5, 2.0, 4.0)
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
    # a tuning run tries a grid point; a control run trains at the experiment's shared settings
    # (``control``) where the family verdicts are decided
    phase: Literal["evaluation", "tuning", "control"] = "evaluation"
    grid: GridPoint = ()

    @property
    def key(self) -> str:
        """``recall/lstm_d20_s1`` (``recall/tuning/lstm_lr0.003_d20_s100`` for a tuning run,
        ``recall/control/...`` for a control run): unique within an experiment; names the result
        file.
        """
        if self.phase != "evaluation":
            return (
                f"{self.task.task}/{self.phase}/{self.model.name}_{grid_label(self.grid)}"
                f"_d{self.distance}_s{self.seed}"
            )
        return f"{self.task.task}/{self.model.name}_d{self.distance}_s{self.seed}"

    @property
    def title(self) -> str:
        """The MLflow run name, e.g. ``recall lstm d=20 s=1`` (``... lr0.003 (tuning)``)."""
        name = f"{self.task.task} {self.model.name} d={self.distance} s={self.seed}"
        if self.phase == "evaluation":
            return name
        return f"{name} {grid_label(self.grid)} ({self.phase})"

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
            "phase": self.phase if self.phase != "evaluation" else None,
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


def factor_label(factor: float) -> str:
    """``0.5``, ``2``, ``4``: an extrapolation factor as result keys and metric names write it."""
    return f"{factor:g}"


def extrapolation_distance(distance: int, factor: float, min_distance: int) -> int:
    """``factor`` times ``distance``, rounded half up, and at least the task's ``min_distance``
    (below it a task has no sequence): 0.5 x 5 is 3.
    """
    return max(math.floor(distance * factor + 0.5), min_distance)


class Extrapolation(BaseModel):
    """A trained model scored, forward only, at another distance than its own (``distance``):
    ``n`` sequences, their accuracy and mean loss (None where not finite), and the task's chance
    accuracy there.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    distance: int
    n: int
    accuracy: float
    loss: float | None
    chance_accuracy: float


class RunResult(BaseModel):
    """What a finished run leaves in its result file (``results/<experiment>/<run_key>.json``),
    read by the sweep (is it done?), tuning (validation fields only), the report and the claims.
    ``probe_init`` and ``probe_final`` hold the probe's summaries before and after training
    (``probe.Profile.summary``; None where not finite); ``mech_init`` and ``mech_final`` the
    mechanism's measures on the same probe batch (``mechanism.metrics`` without the ``mech/``
    prefix: ``W_f_radius``, ``f_tau_median``, ...; None where not finite, such as the time
    constant of a unit whose gate saturated). ``extrapolation``: the trained model at other
    distances, keyed by ``factor_label`` (``0.5``, ``2``, ``4``: ``EXTRAPOLATION_FACTORS``); a
    factor whose distance comes out as the run's own (clamped to the task's minimum) is left
    out. At the run's own distance, its score is ``test_accuracy``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    run_id: str
    experiment: str
    task: str
    model: str
    cell: str
    distance: int
    seed: int
    phase: Literal["evaluation", "tuning", "control"]
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
    mech_init: dict[str, float | None]
    mech_final: dict[str, float | None]
    extrapolation: dict[str, Extrapolation]

    def flat(self) -> dict:
        """The result as one flat row: ``probe_init_<summary>``, ``probe_final_<summary>``,
        ``mech_init_<measure>``, ``mech_final_<measure>``, and ``extrapolation_<field>_x<factor>``
        (``extrapolation_accuracy_x2``: ``extrapolation_column``).
        """
        nested = ("probe_init", "probe_final", "mech_init", "mech_final")
        row = self.model_dump(exclude={*nested, "extrapolation"})
        for name in nested:
            row |= {f"{name}_{k}": v for k, v in getattr(self, name).items()}
        for label, scored in self.extrapolation.items():
            row |= {extrapolation_column(k, label): v for k, v in scored.model_dump().items()}
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


def extrapolation_column(field: str, label: str) -> str:
    """``extrapolation_accuracy_x2``: an ``Extrapolation`` field at a factor, as a result column."""
    return f"extrapolation_{field}_x{label}"


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
        _spec(exp, widths, t, m, exp.tuning_distance(t), s, "tuning", point)
        for t in exp.tasks
        for m in exp.models
        for point in grid_points(exp)
        for s in exp.tuning.seeds
    ]


Choice = dict[tuple[str, str], GridPoint]  # (task, model) -> the grid point its runs use
ResultOf = Callable[[RunSpec], "RunResult | None"]  # a run's current result, if it has one


def evaluation_runs(
    exp: Experiment, choice: Choice | None = None, result_of: ResultOf | None = None
) -> list[RunSpec]:
    """The evaluation runs asked for so far, each variant with the grid point ``choice`` gives
    it (none: the experiment's own training settings; variants ``choice`` lacks are left out:
    their tuning is unfinished): every run at the fixed distances (task, distance, seed, model
    order), then each variant's staircase runs (``staircase_walk``), as far as ``result_of``'s
    results take the rule (without results: its first level). The plan is complete when every
    run it lists has a result.
    """
    out, widths = {}, _widths(exp)
    for t in exp.tasks:
        for d in t.distances:
            for s in exp.seeds:
                for m in exp.models:
                    if choice is None or (t.task, m.name) in choice:
                        point = choice[(t.task, m.name)] if choice else ()
                        spec = _spec(exp, widths, t, m, d, s, point=point)
                        out[spec.key] = spec
    if exp.staircase is not None:
        for t in exp.tasks:
            for m in exp.models:
                if choice is None or (t.task, m.name) in choice:
                    point = choice[(t.task, m.name)] if choice else ()
                    for spec in staircase_walk(exp, t, m, point, result_of)[0]:
                        out.setdefault(spec.key, spec)
    return list(out.values())


def staircase_walk(
    exp: Experiment, task: TaskConfig, model: ModelConfig, point: GridPoint, result_of
) -> tuple[list[RunSpec], dict[tuple[int, int], bool], bool]:
    """One variant's staircase replayed on its results: (the runs it asked for, in order;
    their outcomes so far, by (distance, seed); whether the rule is done). A pure function of
    the result files, so an interrupted sweep, a rerun and the report all walk the same way.
    """
    rule, low = exp.staircase, exp.shortest(task)
    widths = {(task.task, model.name): hidden_size(exp, model, task)}
    asked, outcomes = {}, {}
    while True:
        wanted = staircase.next_runs(rule, low, outcomes)
        if not wanted:
            return list(asked.values()), outcomes, True
        waiting = False
        for d, s in wanted:
            spec = asked.setdefault((d, s), _spec(exp, widths, task, model, d, s, point=point))
            result = result_of(spec) if result_of is not None else None
            if result is None:
                waiting = True
            else:
                outcomes[(d, s)] = staircase.solved_of(result.status)
        if waiting:
            return list(asked.values()), outcomes, False


def variant_brackets(exp: Experiment, task: TaskConfig, choice: Choice | None, result_of) -> dict:
    """Per model on ``task``: its staircase's Bracket from ``result_of``'s results, or None while
    its plan waits for runs (or its tuning is unfinished).
    """
    out = {}
    for model in exp.models:
        if choice is not None and (task.task, model.name) not in choice:
            out[model.name] = None
            continue
        point = choice[(task.task, model.name)] if choice else ()
        _, outcomes, done = staircase_walk(exp, task, model, point, result_of)
        out[model.name] = (
            staircase.horizon(exp.staircase, exp.shortest(task), outcomes) if done else None
        )
    return out


def control_runs(exp: Experiment, choice: Choice | None, result_of) -> list[RunSpec]:
    """The control runs: at the shared settings ``exp.control``, every compared variant at each
    distance where a family verdict is decided (``control.deciding_cells``), on the evaluation
    seeds. Empty without a control, or while any variant's staircase is incomplete.
    """
    if exp.control is None or exp.staircase is None:
        return []
    out, widths = [], _widths(exp)
    by_name = {m.name: m for m in exp.models}
    for t in exp.tasks:
        brackets = variant_brackets(exp, t, choice, result_of)
        for name, d in control.deciding_cells(exp.models, brackets):
            for s in exp.seeds:
                out.append(_spec(exp, widths, t, by_name[name], d, s, "control", exp.control.point))
    return out
