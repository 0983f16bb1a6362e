"""Choosing each variant's training settings from its tuning runs, on validation data only.

Every model variant gets the same tuning budget (``TuningConfig``): the same grid of
training settings, the same tuning seeds (never evaluation seeds), at the same tuning distance
per task. For each (task, variant), every grid point is scored over its tuning seeds by, in
order:

1. the number of tuning seeds that solved (validation accuracy reached the target), more first;
2. the mean steps to solve, an unsolved run counting as the whole budget, fewer first;
3. the mean best validation accuracy, higher first;
4. the mean best validation loss, lower first;
5. the grid's own order (the first listed wins a full tie).

Only the fields in ``VALIDATION_FIELDS`` of a result are read: test numbers never reach the
choice (``validation_view`` drops them before anything is scored).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from pydantic import Field, StrictInt, ValidationError, field_validator

from pipeline.bounds import MAX_DISTANCE, Frozen, check_seeds, did_you_mean, unique
from pipeline.config.runs import (
    Choice,
    GridPoint,
    RunResult,
    RunSpec,
    grid_label,
    grid_points,
    tuning_runs,
)
from pipeline.config.training import TrainingConfig
from pipeline.tasks import TASKS

if TYPE_CHECKING:
    from pipeline.config.experiment import Experiment

TUNABLE = (
    "learning_rate",
    "optimizer",
    "batch_size",
    "grad_clip",
)  # the training fields a tuning grid may vary


class TuningConfig(Frozen):
    """The same tuning budget for every model variant: each variant is trained at every point of
    ``grid`` (every combination of the listed training settings) on the ``seeds`` (never the
    evaluation seeds) at one distance per task (``distances``; default: the staircase's first
    level where the experiment has one, which every variant meets first, else the task's middle
    distance: ``Experiment.tuning_distance``), and its evaluation runs use the grid point that
    did best on validation data (``select``; test data are never read).
    """

    grid: Annotated[dict[str, Annotated[list, Field(min_length=1)]], Field(min_length=1)] = Field(
        description=f"training settings to try ({', '.join(TUNABLE)}), each with its values: "
        "every combination is a grid point",
        json_schema_extra={"propertyNames": {"enum": list(TUNABLE)}},
    )
    seeds: Annotated[list[StrictInt], Field(min_length=1)] = Field(
        description="tuning seeds, never evaluation seeds"
    )
    distances: dict[str, Annotated[StrictInt, Field(ge=1, le=MAX_DISTANCE)]] = Field(
        {},
        description="the tuning distance per task; default: the middle of its distances",
        json_schema_extra={"propertyNames": {"enum": list(TASKS)}},
    )

    @field_validator("grid")
    @classmethod
    def _grid(cls, v: dict) -> dict:
        """Each value validated as its training setting, and kept as that setting reads it (YAML
        reads ``3e-3`` as text; the learning rate is the number 0.003).
        """
        out = {}
        for field, values in v.items():
            if field not in TUNABLE:
                hint = did_you_mean(field, TUNABLE)
                raise ValueError(
                    f"{field}: not a setting tuning can vary{';' if hint else ''}{hint} (one of "
                    f"{', '.join(TUNABLE)})"
                )
            out[field] = []
            for value in values:  # each value must be a valid setting on its own
                try:
                    out[field].append(getattr(TrainingConfig(**{field: value}), field))
                except ValidationError as e:
                    raise ValueError(f"{field}: {e.errors()[0]['msg']} (got {value!r})") from None
            unique(out[field], f"{field} value")
        return out

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int]) -> list[int]:
        return check_seeds(v)


VALIDATION_FIELDS = ("status", "steps_to_solve", "best_val_accuracy", "best_val_loss")


def validation_view(result: RunResult) -> dict:
    """What the choice may read of a run's result: validation outcomes, nothing of test."""
    return {k: getattr(result, k) for k in VALIDATION_FIELDS}


@dataclass(frozen=True)
class Score:
    """One grid point of one variant, over its tuning seeds."""

    point: GridPoint
    runs: int
    solved: int
    mean_steps: float  # unsolved runs count as the budget
    mean_best_val_accuracy: float
    mean_best_val_loss: float

    @property
    def label(self) -> str:
        return grid_label(self.point)

    def order(self, index: int) -> tuple:
        """The sort key of the rule in the module's docstring (smaller is better)."""
        return (
            -self.solved,
            self.mean_steps,
            -self.mean_best_val_accuracy,
            self.mean_best_val_loss if math.isfinite(self.mean_best_val_loss) else math.inf,
            index,
        )


def score(point: GridPoint, results: list[RunResult], budget: int) -> Score:
    """Score one grid point from its tuning runs' results (validation fields only)."""
    seen = [validation_view(r) for r in results]
    solved = [r["status"] == "solved" for r in seen]
    steps = [r["steps_to_solve"] if ok else budget for r, ok in zip(seen, solved, strict=True)]

    def mean(key: str) -> float:
        values = [r[key] for r in seen if r.get(key) is not None]
        return sum(values) / len(values) if values else math.nan

    return Score(
        point, len(seen), sum(solved), sum(steps) / len(steps), mean("best_val_accuracy"),
        mean("best_val_loss"),
    )  # fmt: skip


@dataclass(frozen=True)
class Selection:
    """A variant's tuning outcome: every grid point's score, and the chosen one."""

    task: str
    model: str
    scores: tuple[Score, ...]
    chosen: GridPoint


def select(exp: Experiment, results: dict[str, RunResult]) -> tuple[Choice, list[Selection], list]:
    """The grid point each (task, variant) evaluates with, from tuning results by run key.

    Returns (choice, selections, missing): variants with an unfinished tuning run are left out
    of the choice and their missing run keys listed.
    """
    runs = tuning_runs(exp)
    missing = [spec.key for spec in runs if spec.key not in results]
    incomplete = {(spec.task.task, spec.model.name) for spec in runs if spec.key in missing}
    choice, selections = {}, []
    for task in exp.tasks:
        for model in exp.models:
            if (task.task, model.name) in incomplete:
                continue
            mine = [s for s in runs if s.task.task == task.task and s.model.name == model.name]
            scores = [
                score(point, [results[s.key] for s in mine if s.grid == point], _budget(mine))
                for point in grid_points(exp)
            ]
            best = min(range(len(scores)), key=lambda i: scores[i].order(i))
            choice[(task.task, model.name)] = scores[best].point
            selections.append(Selection(task.task, model.name, tuple(scores), scores[best].point))
    return choice, selections, missing


def _budget(specs: list[RunSpec]) -> int:
    return max(s.training.max_steps for s in specs)
