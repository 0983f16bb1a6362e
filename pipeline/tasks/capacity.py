"""What the data stage can do with an experiment's sizes, checked when the file is validated.

Validation and test must hold no training sequence (``data.generate`` draws them and rejects
what train holds), so a task must have enough sequences that train leaves unseen
(``held_out_problem``); and the stage must fit in memory (``peak_bytes``, ``memory_limit``).
Facts about ``data.write``'s arrays: keep ``peak_bytes`` in step with it.
"""

from __future__ import annotations

import math
import os

from pipeline.tasks import Task

MIN_UNSEEN = 0.01  # the smallest unseen share of the space the stage draws held-out rows from
SET_ENTRY_BYTES = 100  # a bytes object's header and its slot in a set, per training row


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


def memory_limit() -> int | None:
    """Bytes the data stage may plan to use: half of this machine's physical memory (the rest
    is the system's, other processes' and the interpreter's own). None where the platform does
    not say.
    """
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2
    except (AttributeError, ValueError, OSError):
        return None


def peak_bytes(task: Task, distance: int, sizes: dict[str, int]) -> int:
    """An upper bound on the memory ``data.write`` holds at once for one folder: its arrays (the
    interpreter and torch take about 0.3 GB besides). The largest of its three phases:

    - drawing train: the task's intermediates and result (``task.generate_bytes``);
    - drawing a held-out split: every split's rows, the training rows as a set of bytes, one
      round (at most the largest held-out split) and its kept rows, twice while joined;
    - writing, split after split: every split's rows, and a split's ``.npz`` built in memory
      (twice its size at the peak, measured) beside the previous split's.
    """
    x, y = task.generate(distance, 1, 0)  # one sample: the stored bytes per sequence
    x_bytes = x.numel() * x.element_size()
    row = x_bytes + y.numel() * y.element_size()
    held = sum(sizes.values()) * row
    drawing_train = task.generate_bytes(distance, sizes["train"])
    round_rows = max((n for split, n in sizes.items() if split != "train"), default=0)
    drawing_held_out = (
        held
        + sizes["train"] * (x_bytes + SET_ENTRY_BYTES)
        + task.generate_bytes(distance, round_rows)
        + 2 * round_rows * row
    )
    order = list(sizes.values())  # the order write takes them in
    writing = held + row * max(
        2 * n + before for n, before in zip(order, [0, *order[:-1]], strict=True)
    )
    # a tenth more for the small tensors left out and the allocator's slack. Measured on recall,
    # copy and adding folders of 7 MiB to 1.8 GiB: 10-50% above the peak resident memory.
    return math.ceil(1.1 * max(drawing_train, drawing_held_out, writing))
