"""The batches a run trains and evaluates on, straight from a split's tensors (no collation).

``Batches`` is the endless shuffled stream of training mini-batches, ``Steps`` hands it to
Lightning several optimizer steps at a time, and ``Chunks`` walks a split once, in order, for
validation and test.
"""

from __future__ import annotations

import math

import torch

from pipeline.config.runs import RunSpec
from pipeline.config.training import TrainingConfig
from pipeline.data import Split


class Batches:
    """Endless shuffled mini-batches of a split, from the run's own generator (one epoch is one
    pass over a fresh permutation). A batch is one index of the tensors.
    """

    def __init__(self, split: Split, batch_size: int, seed: int) -> None:
        self.split, self.batch_size, self.seed = split, batch_size, seed

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed)
        n = len(self.split.y)
        while True:
            order = torch.randperm(n, generator=g)
            for start in range(0, n - self.batch_size + 1, self.batch_size):
                idx = order[start : start + self.batch_size]
                yield self.split.x[idx], self.split.y[idx]


class Steps:
    """The training batches of a run, ``per_call`` optimizer steps at a time: each item stacks
    the next ``k <= per_call`` batches of ``Batches`` (x: [k, B, ...], y: [k, B, ...]), and there
    are ``total`` batches in all. The same batches, in the same order, as one a step.

    Lightning's loop costs a fixed amount of hooks per training batch, comparable to a whole
    step of a small model (``make bench`` measures it); handed several steps at once
    (``LitSequenceModel.training_step`` takes them one by one), it pays that once per group.
    """

    def __init__(self, batches: Batches, per_call: int, total: int) -> None:
        self.batches, self.per_call, self.total = batches, per_call, total

    def __iter__(self):
        batches, left = iter(self.batches), self.total
        while left > 0:
            k = min(self.per_call, left)
            xs, ys = zip(*(next(batches) for _ in range(k)), strict=True)
            yield torch.stack(xs), torch.stack(ys)
            left -= k


def steps_per_call(t: TrainingConfig) -> int:
    """Optimizer steps per Lightning training batch: the largest group that ends on every
    validation (``eval_every``) and every training-metric write (``log_every``), so both fall
    exactly where they would with one step a batch.
    """
    return math.gcd(t.eval_every, t.log_every)


def train_batches(spec: RunSpec, split: Split) -> Steps:
    t = spec.training
    return Steps(Batches(split, t.batch_size, spec.seed), steps_per_call(t), t.max_steps)


class Chunks:
    """A split in consecutive batches of ``size``: one pass, in order (validation and test)."""

    def __init__(self, split: Split, size: int) -> None:
        self.split, self.size = split, size

    def __len__(self) -> int:
        return math.ceil(len(self.split.y) / self.size)

    def __iter__(self):
        for i in range(0, len(self.split.y), self.size):
            yield self.split.x[i : i + self.size], self.split.y[i : i + self.size]
