"""What every task shares: named random streams, generators, parameter limits, and the config
base class whose subclass sits beside each generator.
"""

from __future__ import annotations

import hashlib
import math
from typing import Annotated, ClassVar

import torch
from pydantic import Field, StrictInt, field_validator, model_validator

from pipeline.bounds import Distances, Frozen, unique


def stream_seed(*parts: object) -> int:
    """A 63-bit seed for one named random stream, e.g. ``stream_seed("recall", 20, 1, "train")``.

    Different parts give unrelated streams. Unrelated streams can still draw the same sequence
    where a task has few of them: keeping held-out splits apart from train is the data stage's
    job (``data.generate``), not this function's.
    """
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def power(base: int, exponent: int) -> float:
    """``base ** exponent`` as a float; ``math.inf`` past the largest float (about 1.8e308)."""
    try:
        return float(base) ** exponent
    except OverflowError:
        return math.inf


def check_limits(task) -> None:
    """Raise ValueError unless every parameter of ``task`` lies within its class's ``LIMITS``
    (pydantic-style bounds: ``ge``, ``gt``, ``le``, ``lt``). The experiment files validate
    against the same ``LIMITS``, so the two can never disagree.
    """
    tests = {
        "ge": (lambda v, b: v >= b, "at least"),
        "gt": (lambda v, b: v > b, "above"),
        "le": (lambda v, b: v <= b, "at most"),
        "lt": (lambda v, b: v < b, "below"),
    }
    for name, bounds in task.LIMITS.items():
        value = getattr(task, name)
        for op, bound in bounds.items():
            ok, words = tests[op]
            if not ok(value, bound):
                raise ValueError(f"{name} must be {words} {bound}, got {value}")


class TaskConfig(Frozen):
    """A task's section of an experiment file: ``task`` (its name), ``distances``, and the
    generator's own parameters, bounded by the generator's ``LIMITS``. Each subclass sits beside
    its generator and names it as ``GENERATOR``.
    """

    GENERATOR: ClassVar[type]
    task: str = Field(description="the task's name")
    distances: Distances = Field(
        default=[],
        description="steps from the input that carries the needed information to the output "
        "scored on it: each is a run per model and seed (none: the experiment's staircase finds "
        "them)",
    )

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

    def build(self):
        """The generator with this section's parameters."""
        return self.GENERATOR(**self.params())


def parameter(task: type, name: str, description: str, kind=StrictInt):
    """A task parameter's type, bounds and description in the config, the bounds as the
    generator's ``LIMITS`` say.
    """
    return Annotated[kind, Field(**task.LIMITS[name], description=description)]
