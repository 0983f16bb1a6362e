"""The adding problem, in three variants."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from pipeline.bounds import Number
from pipeline.tasks.common import TaskConfig, check_limits, generator, parameter

ADDING_VARIANTS = ("fixed", "halves", "hochreiter")  # see Adding


@dataclass(frozen=True)
class Adding:
    """The adding problem (Hochreiter & Schmidhuber 1997; Arjovsky et al. 2016), in three variants.

    Two input channels, a value and a marker; two steps are marked, and the target, read at the
    last step, is computed from their two values (loss MSE). A sequence counts as correct when the
    absolute error is below ``tolerance``. The variants place the markers and scale the target as
    their papers do; each says what its **distance** means (with T = ``distance + 1``, the
    sequence length of the first two):

    - ``fixed`` (this project's): values U[0, 1], target the sum. The first marker sits at step
      0, exactly ``distance`` steps before the scored step; the second uniformly in the later
      half (the classic T with the first marker at the far end of its half). Worked example with
      distance 3::

          values:  0.31 0.90 0.12 0.55
          markers: 1    0    1    0        -> 0.31 + 0.12 = 0.43

    - ``halves`` (Arjovsky et al. 2016, their code): values U[0, 1], target the sum. The first
      marker is uniform in the first T // 2 steps, the second in the next T // 2 (their
      ``randint(T/2)`` and ``randint(T/2) + T/2``; for an odd T the last step is never marked).
      **distance** is the largest gap, T - 1; the first marker's actual gap is uniform from
      T - T // 2 to T - 1, the second's from 0 (odd T: 1) to T // 2 - 1. Worked example with
      distance 5 (T = 6; ``*`` marks)::

          0.50 0.77* 0.09 0.13 0.31* 0.63 -> 1.076

    - ``hochreiter`` (Hochreiter & Schmidhuber 1997, Experiment 4): values U[-1, 1], target
      0.5 + (X1 + X2) / 4 (the sum scaled to [0, 1]). A sequence's length L is uniform from the
      minimal length T to T + T // 10; X1 is one of its first 10 pairs, X2 one of the first
      T // 2 - 1 pairs still unmarked (it may precede X1); the first and the last pair carry
      marker -1 unless marked. Where the first pair is marked, its value is set to 0 (the paper
      says so for X1; we read it for X2 alike: the same pair). Sequences are left-padded with
      (0, 0) steps to T + T // 10 steps, so every one ends at the scored last step. Padding is
      informationally neutral (the same for every sequence of a length, and the first real pair
      carries a nonzero marker, so the start is always visible), but not dynamically: the model
      enters the first pair from the state the padding left, where the paper's network started
      each sequence afresh. **distance** is T - 1, the gap from the first pair of a shortest
      sequence (step T // 10) to the output; the earlier marked value's actual gap ranges from
      T - 10 to T + T // 10 - 2 (a pair at gap L - 1 is the first pair, whose value is 0), the
      later one's is at least T - T // 2. Worked example with distance 19 (T = 20, 22 steps;
      ``*`` marks, ``'`` the -1 markers, ``.`` padding)::

          . . -0.05' 0.43* 0.24* -0.11 -0.81 0.23 -0.89 0.13 0.07 -0.22 0.82 0.07 0.41
          0.42 -0.59 -0.38 0.96 -0.98 -0.07 -0.08' -> 0.666

    Baselines and chance accuracy per variant are in ``baselines`` and ``chance_accuracy``. The
    default ``tolerance`` 0.04 is Hochreiter & Schmidhuber's threshold on their [0, 1] target:
    exactly theirs in ``hochreiter``; on the raw sum in [0, 2] of the other two the same 0.04 is
    four times stricter (theirs is 0.16 there).
    """

    tolerance: float = 0.04
    variant: str = "fixed"

    name: ClassVar[str] = "adding"
    LIMITS: ClassVar[dict] = {"tolerance": {"gt": 0, "lt": 1}}
    readout: ClassVar[str] = "last"
    tokens: ClassVar[bool] = False  # inputs are two float channels
    regression: ClassVar[bool] = True  # a number, scored by squared error against baselines
    n_inputs: ClassVar[int] = 2
    n_outputs: ClassVar[int] = 1
    GROW_SPACE: ClassVar[str] = "longer distances"  # never needed: the space is unbounded
    FIRST_PAIRS: ClassVar[int] = 10  # hochreiter: X1 is one of the first 10 pairs

    def __post_init__(self) -> None:
        check_limits(self)
        if self.variant not in ADDING_VARIANTS:
            raise ValueError(
                f"variant must be one of {', '.join(ADDING_VARIANTS)}, got {self.variant!r}"
            )

    @property
    def min_distance(self) -> int:
        """2; for ``hochreiter`` 19: T >= 20, so X2's T // 2 - 1 candidates span X1's 10."""
        return 2 * self.FIRST_PAIRS - 1 if self.variant == "hochreiter" else 2

    def length(self, distance: int) -> int:
        if self.variant == "hochreiter":
            return distance + 1 + (distance + 1) // 10
        return distance + 1

    def paper_t(self, distance: int) -> int:
        """The papers' T at ``distance``: the sequence length (``hochreiter``: the minimal one),
        distance + 1.
        """
        return distance + 1

    def key_step(self, distance: int) -> int:
        return self.length(distance) - 1 - distance

    def scored_step(self, distance: int) -> int:
        return self.length(distance) - 1

    def sequence_space(self, distance: int) -> float:
        """``math.inf``: the values are continuous (float32 draws repeat with a chance of about
        2**-24 per value, at least ``distance + 1`` values a sequence).
        """
        return math.inf

    def generate_bytes(self, distance: int, n: int) -> int:
        """An upper bound on the memory ``generate(distance, n)`` holds at once, its result
        included: float32 values and markers, the float32 pair they are stacked into, and (for
        ``hochreiter``) a padding mask and positions, each a step's or a sample's worth.
        """
        return n * (24 * self.length(distance) + 128)

    def generate(self, distance: int, n: int, seed: int) -> tuple[Tensor, Tensor]:
        """``x``: float32 ``[n, length, 2]`` (value, marker); ``y``: float32 ``[n]``."""
        g = generator(seed)
        if self.variant == "hochreiter":
            return self._hochreiter(distance, n, g)
        length, rows = self.length(distance), torch.arange(n)
        values = torch.rand(n, length, generator=g)
        if self.variant == "halves":
            half = length // 2
            first = torch.randint(half, (n,), generator=g)
            second = torch.randint(half, (n,), generator=g) + half
        else:
            first = torch.zeros(n, dtype=torch.long)
            second = torch.randint(max(1, math.ceil(length / 2)), length, (n,), generator=g)
        markers = torch.zeros(n, length)
        markers[rows, first] = 1.0
        markers[rows, second] = 1.0
        y = values[rows, first] + values[rows, second]
        return torch.stack([values, markers], dim=-1), y

    def _hochreiter(self, distance: int, n: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
        """Random draws in this order: lengths, values, X1's pair, X2's rank among the pairs
        still unmarked.
        """
        minimal, width, rows = distance + 1, self.length(distance), torch.arange(n)
        lengths = minimal + torch.randint((minimal // 10) + 1, (n,), generator=g)
        values = torch.rand(n, width, generator=g) * 2 - 1
        first = torch.randint(self.FIRST_PAIRS, (n,), generator=g)
        rank = torch.randint(minimal // 2 - 1, (n,), generator=g)
        second = rank + (rank >= first)  # the rank-th pair, skipping X1's
        pad = width - lengths  # the sequence's first pair sits at step pad
        values[torch.arange(width) < pad[:, None]] = 0.0
        kept = (first != 0) & (second != 0)
        values[rows, pad] = torch.where(kept, values[rows, pad], 0.0)  # a marked first pair: 0
        markers = torch.zeros(n, width)
        markers[rows, pad] = -1.0
        markers[:, -1] = -1.0
        markers[rows, pad + first] = 1.0
        markers[rows, pad + second] = 1.0
        y = 0.5 + (values[rows, pad + first] + values[rows, pad + second]) / 4
        return torch.stack([values, markers], dim=-1), y

    def render(self, x: Tensor, y: Tensor) -> list[str]:
        """Readable lines: each step's value, ``*`` where marked, ``'`` where marked -1, ``.``
        for padding (the steps before a ``hochreiter`` sequence's first pair), then the target.
        """
        lines = []
        for row, t in zip(x.tolist(), y.tolist(), strict=True):
            start = next((i for i, (_, m) in enumerate(row) if m), 0)
            steps = ["." if i < start and self.variant == "hochreiter"
                     else f"{v:.2f}" + {1.0: "*", -1.0: "'"}.get(m, "")
                     for i, (v, m) in enumerate(row)]  # fmt: skip
            lines.append(" ".join(steps) + f" -> {t:.3f}")
        return lines

    def loss(self, out: Tensor, y: Tensor) -> Tensor:
        return F.mse_loss(out.squeeze(-1), y)

    def scored_loss(self, out: Tensor, y: Tensor, distance: int) -> Tensor:
        return ((out.squeeze(-1) - y) ** 2).sum()

    def correct(self, out: Tensor, y: Tensor) -> Tensor:
        return ((out.squeeze(-1) - y).abs() < self.tolerance).float()

    def _zeroed(self, distance: int) -> tuple[float, float]:
        """``hochreiter``: the chances that X1, and that X2, sit on the first pair (value 0)."""
        candidates = (distance + 1) // 2 - 1
        return 1 / self.FIRST_PAIRS, (1 - 1 / self.FIRST_PAIRS) / candidates

    def chance_accuracy(self, distance: int) -> float:
        """The accuracy of the best strategy without the value far from the output.

        ``fixed`` and ``halves``: remember only the later value X2 and predict X2 + 1/2; the
        error X1 - 1/2 is uniform on [-1/2, 1/2], within the tolerance with probability
        2 x tolerance. ``hochreiter``: both values lie at least T - T // 2 steps back, so the
        memoryless 0.5 is the strategy; its error (X1 + X2) / 4 is within the tolerance when
        |X1 + X2| < a = 4 x tolerance: probability a - a^2/4 for the sum of two U[-1, 1]
        (triangular), and a for one of them alone, where the other was zeroed on the first pair.
        """
        if self.variant != "hochreiter":
            return min(1.0, 2 * self.tolerance)
        a = 4 * self.tolerance
        zero = sum(self._zeroed(distance))
        return zero * min(1.0, a) + (1 - zero) * (a - a * a / 4 if a < 2 else 1.0)

    def baseline_loss(self, distance: int) -> float:
        """MSE with no memory at all: the first of ``baselines``."""
        return next(iter(self.baselines(distance).values()))

    def baselines(self, distance: int) -> dict[str, float]:
        """The losses of strategies that forget a value, by name: no memory at all first, then
        remembering only one value (a model below the second uses both).

        ``fixed``, ``halves``: predict 1, the variance of a sum of two U[0, 1] (1/6); remember
        only the later value, the variance of X1 (1/12). ``hochreiter``: predict 0.5, MSE
        (E[X1^2] + E[X2^2]) / 16 with E[X^2] = 1/3 unless zeroed on the first pair (1/24 less a
        little); remember only X2, E[X1^2] / 16 = 0.9 / 48.
        """
        if self.variant != "hochreiter":
            return {"predict 1 (no memory)": 1 / 6, "remember only the later value": 1 / 12}
        p1, p2 = self._zeroed(distance)
        return {
            "predict 0.5 (no memory)": ((1 - p1) + (1 - p2)) / 48,
            "remember only X2": (1 - p1) / 48,
        }


class AddingConfig(TaskConfig):
    """The adding task's section of an experiment file."""

    GENERATOR: ClassVar[type] = Adding
    task: Literal["adding"] = Field(description="the task")
    tolerance: parameter(
        Adding, "tolerance", "a sequence is correct when its absolute error is below this", Number
    ) = Adding.tolerance
    # Adding's docstring says what each variant means
    variant: Literal[ADDING_VARIANTS] = Field(
        Adding.variant,
        description="where the markers sit and how the target is scaled: fixed, halves "
        "(Arjovsky et al. 2016's code) or hochreiter (Hochreiter & Schmidhuber 1997)",
    )
