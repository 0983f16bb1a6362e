"""Copying memory (Arjovsky, Shah & Bengio 2016)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from pipeline.tasks.common import TaskConfig, check_limits, generator, parameter, power


@dataclass(frozen=True)
class Copy:
    """Copying memory (Arjovsky, Shah & Bengio 2016).

    Input: ``copy_length`` symbols drawn from ``n_symbols``, then T-1 blanks, a delimiter and
    ``copy_length`` blanks (length T + 2 * copy_length). Target: blanks for T + copy_length steps,
    then the symbols. Symbol j is read at step j and written at step T + copy_length + j, so
    **distance = T + copy_length** (T = distance - 10 in the classic set-up). Worked example with
    3 symbols from 4 and T = 2 (distance 5; 0 blank, 1-4 symbols, 5 delimiter)::

        x: 3 1 4 0 5 0 0 0
        y: 0 0 0 0 0 3 1 4

    Accuracy counts only the ``copy_length`` recall steps (chance 1/n_symbols); the memoryless
    baseline loss over all steps is ``copy_length * ln(n_symbols) / (T + 2 * copy_length)``.
    """

    n_symbols: int = 8
    copy_length: int = 10

    name: ClassVar[str] = "copy"
    LIMITS: ClassVar[dict] = {
        "n_symbols": {"ge": 2, "le": 250},  # symbol ids, blank and delimiter fit in uint8
        # a hundred times the classic 10; a copy sequence is longer than twice its copy_length
        "copy_length": {"ge": 1, "le": 1000},
    }
    readout: ClassVar[str] = "all"
    tokens: ClassVar[bool] = True
    regression: ClassVar[bool] = False
    GROW_SPACE: ClassVar[str] = "a longer copy_length, more symbols (n_symbols)"

    def __post_init__(self) -> None:
        check_limits(self)

    @property
    def min_distance(self) -> int:
        return self.copy_length + 1  # T >= 1

    @property
    def n_inputs(self) -> int:
        return self.n_symbols + 2  # blank, symbols, delimiter

    @property
    def n_outputs(self) -> int:
        return self.n_symbols + 1  # blank, symbols

    def length(self, distance: int) -> int:
        return distance + self.copy_length

    def paper_t(self, distance: int) -> int:
        """The papers' T at ``distance`` (the blanks between the symbols and the delimiter,
        plus one): distance - copy_length.
        """
        return distance - self.copy_length

    def key_step(self, distance: int) -> int:
        return 0  # the first symbol; the probe scores its recall step

    def scored_step(self, distance: int) -> int:
        return distance

    def sequence_space(self, distance: int) -> float:
        """How many distinct inputs the task has: only the ``copy_length`` symbols vary, so the
        distance does not change it (``math.inf`` past the largest float).
        """
        return power(self.n_symbols, self.copy_length)

    def generate_bytes(self, distance: int, n: int) -> int:
        """An upper bound on the memory ``generate(distance, n)`` holds at once, its result
        included: uint8 ``x`` and ``y``, the int64 symbols and their uint8 casts.
        """
        return n * (2 * self.length(distance) + 10 * self.copy_length + 64)

    def generate(self, distance: int, n: int, seed: int) -> tuple[Tensor, Tensor]:
        """``x``, ``y``: uint8 ``[n, distance + copy_length]``."""
        g = generator(seed)
        length, m = self.length(distance), self.copy_length
        symbols = torch.randint(1, self.n_symbols + 1, (n, m), generator=g)
        x = torch.zeros(n, length, dtype=torch.uint8)
        y = torch.zeros(n, length, dtype=torch.uint8)
        x[:, :m] = symbols
        x[:, length - m - 1] = self.n_symbols + 1  # the delimiter, step T + m - 1
        y[:, length - m :] = symbols
        return x, y

    def render(self, x: Tensor, y: Tensor) -> list[str]:
        """Readable lines, input then target: ``3 1 4 0 5 0 0 0 -> 0 0 0 0 0 3 1 4``."""
        return [
            " ".join(map(str, row.tolist())) + " -> " + " ".join(map(str, target.tolist()))
            for row, target in zip(x, y, strict=True)
        ]

    def loss(self, out: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(out.flatten(0, 1), y.long().flatten())

    def scored_loss(self, out: Tensor, y: Tensor, distance: int) -> Tensor:
        """Summed loss at the first recall step (the first symbol's), ``out``: that step's."""
        return F.cross_entropy(out, y[:, self.scored_step(distance)].long(), reduction="sum")

    def correct(self, out: Tensor, y: Tensor) -> Tensor:
        m = self.copy_length
        return (out[:, -m:].argmax(-1) == y[:, -m:].long()).float().mean(-1)

    def chance_accuracy(self, distance: int) -> float:
        return 1 / self.n_symbols

    def baseline_loss(self, distance: int) -> float:
        return self.copy_length * math.log(self.n_symbols) / self.length(distance)

    def baselines(self, distance: int) -> dict[str, float]:
        """The losses of strategies that do not remember the symbols, by name."""
        return {"no memory (blanks, then uniform symbols)": self.baseline_loss(distance)}


class CopyConfig(TaskConfig):
    """The copy task's section of an experiment file."""

    GENERATOR: ClassVar[type] = Copy
    task: Literal["copy"] = Field(description="the task")
    n_symbols: parameter(Copy, "n_symbols", "symbols to copy from: chance 1/n_symbols") = (
        Copy.n_symbols
    )
    copy_length: parameter(
        Copy, "copy_length", "symbols to copy; distance = T + copy_length (T blanks before)"
    ) = Copy.copy_length
