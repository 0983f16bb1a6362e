"""What the data stage can do with an experiment's sizes, checked when the file is validated.

Validation and test must hold no training sequence (``data.generate`` draws them and rejects
what train holds), so a task must have enough sequences that train leaves unseen
(``held_out_problem``).
"""

from __future__ import annotations

import math

from pipeline.tasks import Task

MIN_UNSEEN = 0.01  # the smallest unseen share of the space the stage draws held-out rows from


def unseen_share(space: float, n_train: int) -> float:
    """``(1 - 1/space) ** n_train``: the expected share of a space of ``space`` equally likely
    sequences that ``n_train`` independent draws leave unseen.
    """
    if space <= 1:
        return 0.0
    return math.exp(n_train * math.log1p(-1 / space))


def held_out_problem(task: Task, distance: int, sizes: dict[str, int]) -> str | None:
    """Why ``task`` at ``distance`` cannot have held-out splits that avoid train, or None.

    With ``S = task.sequence_space(distance)`` and ``f = unseen_share(S, n_train)``, the stage
    draws validation and test from the about ``S * f`` sequences that train leaves unseen. It
    refuses when ``S * f < n_val + n_test`` (the held-out splits could not be mostly distinct
    sequences: fewer exist than they hold) or when ``f < MIN_UNSEEN`` (rejection would take
    over ``1 / MIN_UNSEEN`` draws per kept row).
    """
    space = task.sequence_space(distance)
    n_train = sizes["train"]
    need = sum(n for split, n in sizes.items() if split != "train")
    f = unseen_share(space, n_train)
    unseen = space * f
    if unseen >= need and f >= MIN_UNSEEN:
        return None
    where = (
        f"{task.name} at distance {distance} has {space:.0f} possible sequences; "
        f"a {n_train}-sequence training split leaves about {unseen:.0f} unseen"
    )
    if unseen < need:
        why = f"{where}, and validation plus test need {need}"
    else:
        why = (
            f"{where}, {f:.2%} of them: drawing validation and test outside train would "
            f"take about {1 / f:.0f} draws per kept sequence"
        )
    return f"{why}: use {task.GROW_SPACE}, or a smaller data.n_train"
