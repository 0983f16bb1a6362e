"""What every task shares: named random streams, generators, and parameter limits."""

from __future__ import annotations

import hashlib
import math

import torch


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
