"""An adaptive distance design: which (distance, seed) runs find a variant's memory horizon.

A variant *holds* a distance when at least half of the seeds recorded there solved it (at least
one, the same rule as ``report.stats.holds``). Its **memory horizon** is the longest distance it
holds below two consecutive failing levels. The rule is an up-down staircase (as in
psychophysics and dose-finding), fixed before any run, the same for every variant and task, and
driven by validation outcomes only (``solved`` is decided on validation accuracy; test numbers
never reach it). With ``StaircaseConfig`` (start d0, cap, seeds, extra_seeds):

1. **Ladder.** Run the seeds at d0, then at 2 d0, 4 d0, ... (the cap itself is the last rung)
   while the variant holds. Stop after ``failures`` consecutive failing levels (two by default),
   or on holding at the cap. A variant that fails at d0 goes down instead: d0 // 2, d0 // 4,
   ... (never below the task's minimum distance) until it holds.
2. **Bracket.** The last level held (*lower*) and the failing level just above it (*upper*) get
   the extra seeds too, so the claim rests on every seed at both ends. When the extra seeds turn
   a verdict, the ladder is walked again on the new counts (a confirmed failure at *lower* moves
   the bracket down; an end that now holds lets the ladder climb on).
3. **Bisection.** Once, at the geometric mean of the ends rounded to the nearest integer, with
   every seed, when that is strictly between the ends; the bracket shrinks to the half it
   points to.

A variant holding at the cap is *beyond the cap* (``upper`` is None: no value is claimed past
it); one failing at the minimum distance is *below the minimum* (``lower`` is None). Either end
that exists is confirmed with every seed, as a bracket's would be.

Worked example: start 10, cap 160, seeds (0, 1, 2), extra seeds (3, 4), minimum distance 3, and a
variant that solves exactly the distances up to 30::

    round  runs                                   verdict
    1      (10, 0) (10, 1) (10, 2)                3/3: holds
    2      (20, 0) (20, 1) (20, 2)                3/3: holds
    3      (40, 0) (40, 1) (40, 2)                0/3: fails
    4      (80, 0) (80, 1) (80, 2)                0/3: fails, twice in a row: bracket (20, 40)
    5      (20, 3) (20, 4) (40, 3) (40, 4)        5/5 and 0/5: confirmed
    6      (28, 0) ... (28, 4)                    sqrt(800) = 28.3 -> 28, 5/5: holds
    7      nothing: the horizon is in [28, 40)    Bracket(lower=28, upper=40), 21 runs

Contract of the functions: ``outcomes`` maps (distance, seed) -> solved for finished runs, and
the plan is a function of that mapping alone, so the order outcomes arrived in does not matter.
A run that diverged finished without solving: it is recorded as not solved (``solved_of``); a run
that crashed has no outcome and is asked for again. Runs already in ``outcomes`` are never
returned. Outcomes the rule did not ask for (more seeds, other distances: a rerun of a larger
design) are accepted: extra seeds at a level the ladder visits count in its verdict, and every
recorded level is listed in the ``Bracket``, with those that contradict a monotone horizon named.

Seeds are added at the final bracket rather than at the first failing level: the ladder may yet
hold again above a failure, and seeds spent on a level that ends up inside no bracket buy
nothing. ``min_distance`` is an argument, not a field: it belongs to the task (copy's depends on
its ``copy_length``), and one rule serves every task of an experiment.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Annotated

from pydantic import Field, StrictInt, field_validator, model_validator

from pipeline.bounds import Distance, Frozen, check_seeds

Run = tuple[int, int]  # (distance, seed)


class StaircaseConfig(Frozen):
    """The rule's constants, fixed before any run: the first distance ``start`` (d0), the
    longest distance asked for ``cap``, the ``seeds`` every visited level runs, and the
    ``extra_seeds`` added at the bracket's ends and the bisection (so at most
    ``len(seeds) + len(extra_seeds)`` seeds at a level; the defaults give 3, then 5).
    """

    start: Distance = Field(description="the first distance every variant trains at")
    cap: Distance = Field(
        description="the longest distance asked for: a variant holding there is beyond the cap"
    )
    seeds: Annotated[tuple[StrictInt, ...], Field(min_length=1)] = Field(
        (0, 1, 2),
        description="the seeds every visited level runs; in an experiment file, its seeds",
    )
    extra_seeds: tuple[StrictInt, ...] = Field(
        (3, 4), description="seeds added at both ends of the bracket and at its bisection"
    )
    # 2 guards a horizon against one unlucky level; 1 saves the most expensive level of every
    # variant (twice the longest distance failed, at the full budget) and leans on the extra
    # seeds at the bracket's upper end instead
    failures: Annotated[StrictInt, Field(ge=1, le=3)] = Field(
        2, description="failed levels in a row that end the climb"
    )

    @field_validator("seeds", "extra_seeds")
    @classmethod
    def _seeds(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        return check_seeds(v)

    @model_validator(mode="after")
    def _consistent(self):
        shared = sorted(set(self.seeds) & set(self.extra_seeds))
        if shared:
            raise ValueError(f"extra_seeds: seed {shared[0]} is already in seeds")
        if self.cap < self.start:
            raise ValueError(f"cap: {self.cap} is below start {self.start}")
        return self

    @property
    def all_seeds(self) -> tuple[int, ...]:
        return self.seeds + self.extra_seeds


@dataclass(frozen=True)
class Level:
    """What is recorded at one distance: ``solved`` of ``runs`` seeds."""

    distance: int
    solved: int
    runs: int

    @property
    def holds(self) -> bool:
        return _holds(self.solved, self.runs)


@dataclass(frozen=True)
class Bracket:
    """Where a variant's memory horizon lies: it holds at ``lower`` and fails at ``upper``
    (``lower`` < ``upper``; no level between them was run unless by the caller): the memory
    horizon is in [lower, upper).

    ``lower`` None: it failed even at the task's minimum distance (``below_min``); ``upper``
    None: it held at the cap (``beyond_cap``). ``levels``: every recorded distance, ascending.
    ``contradictions``: recorded distances whose verdict a monotone horizon would not give
    (held above ``upper``, or failed below ``lower``); empty when the variant is monotone.
    """

    lower: int | None
    upper: int | None
    levels: tuple[Level, ...] = ()
    contradictions: tuple[int, ...] = ()

    @property
    def beyond_cap(self) -> bool:
        return self.upper is None

    @property
    def below_min(self) -> bool:
        return self.lower is None

    @property
    def monotone(self) -> bool:
        return not self.contradictions


def solved_of(status: str) -> bool:
    """The outcome a finished run's status records: a diverged run finished without solving.
    Raises ValueError for a status that is no outcome (failed, stale, missing: run it again).
    """
    if status not in ("solved", "unsolved", "diverged"):
        raise ValueError(f"status {status!r} is not a finished run's outcome")
    return status == "solved"


def next_runs(rule: StaircaseConfig, min_distance: int, outcomes: Mapping[Run, bool]) -> list[Run]:
    """The runs that must run now, sorted (distance, then seed); empty when the plan is complete.
    None of them is in ``outcomes``. Raises ValueError when ``rule.start`` is below
    ``min_distance`` and TypeError when an outcome is not a bool.
    """
    pending, _ = _plan(rule, min_distance, outcomes)
    return pending


def horizon(rule: StaircaseConfig, min_distance: int, outcomes: Mapping[Run, bool]) -> Bracket:
    """The bracket of a complete plan. Raises ValueError while ``next_runs`` still asks for runs
    (and for the arguments ``next_runs`` refuses).
    """
    pending, bracket = _plan(rule, min_distance, outcomes)
    if pending:
        raise ValueError(f"the plan is not complete: {len(pending)} runs to go, first {pending[0]}")
    return bracket


# ---- the walk ------------------------------------------------------------------------------


def _holds(solved: int, runs: int) -> bool:
    return solved > 0 and 2 * solved >= runs


def _plan(
    rule: StaircaseConfig, min_distance: int, outcomes: Mapping[Run, bool]
) -> tuple[list[Run], Bracket | None]:
    """(runs to do now, None) or ([], the bracket): the rule walked from scratch on ``outcomes``.
    Recomputing the whole walk on every call is what makes the plan independent of arrival
    order and lets a verdict turned by extra seeds re-route it.
    """
    if not isinstance(min_distance, int) or min_distance < 1:
        raise ValueError(f"min_distance: {min_distance!r} is not a positive integer")
    if rule.start < min_distance:
        raise ValueError(f"start: {rule.start} is below the task's minimum distance {min_distance}")
    levels = _levels(outcomes)

    def missing(d: int, seeds: tuple[int, ...]) -> list[Run]:
        return [(d, s) for s in seeds if (d, s) not in outcomes]

    def holds(d: int) -> bool:
        return levels[d].holds

    # 1. the ladder, on the seeds (every recorded seed counts in a verdict)
    walked = _ladder(rule, min_distance, missing, holds)
    if isinstance(walked, list):
        return walked, None
    lower, upper = walked
    # 2. both ends on every seed; a verdict this turns re-routes the ladder at the next call
    confirm = [r for d in (lower, upper) if d is not None for r in missing(d, rule.all_seeds)]
    if confirm:
        return sorted(confirm), None
    # 3. one bisection, on every seed
    if lower is not None and upper is not None:
        mid = round(math.sqrt(lower * upper))  # never a tie: sqrt of an integer is not k + 1/2
        if lower < mid < upper:
            need = missing(mid, rule.all_seeds)
            if need:
                return need, None
            lower, upper = (mid, upper) if holds(mid) else (lower, mid)
    return [], _bracket(lower, upper, levels)


def _ladder(
    rule: StaircaseConfig,
    min_distance: int,
    missing: Callable[[int, tuple[int, ...]], list[Run]],
    holds: Callable[[int], bool],
) -> list[Run] | tuple[int | None, int | None]:
    """Step 1 of the rule: the runs it waits for, or its (lower, upper) once walked."""
    lower, upper, fails = None, None, 0
    for d in _rungs_up(rule.start, rule.cap):
        need = missing(d, rule.seeds)
        if need:
            return need
        if holds(d):
            lower, upper, fails = d, None, 0
        elif lower is None:  # failed at the start: go down
            upper = d
            break
        else:
            upper = upper if fails else d  # the first failure above the last level held
            fails += 1
            if fails == rule.failures:
                break
    if lower is not None:
        return lower, upper
    for d in _rungs_down(rule.start, min_distance):
        need = missing(d, rule.seeds)
        if need:
            return need
        if holds(d):
            return d, upper
        upper = d
    return None, upper


def rungs(rule: StaircaseConfig, min_distance: int) -> list[int]:
    """Every distance the ladder may visit, ascending: up from ``start`` by doubling to ``cap``,
    down by halving to ``min_distance`` (a bisection falls between two of them).
    """
    return sorted({*_rungs_up(rule.start, rule.cap), *_rungs_down(rule.start, min_distance)})


def _rungs_up(start: int, cap: int) -> Iterator[int]:
    d = start
    while d < cap:
        yield d
        d *= 2
    yield cap


def _rungs_down(start: int, min_distance: int) -> Iterator[int]:
    d = start
    while d > min_distance:
        d = max(min_distance, d // 2)
        yield d


class _Levels(dict):
    """distance -> Level over every recorded seed; a distance never run has 0 of 0 (fails)."""

    def __missing__(self, d: int) -> Level:
        return Level(d, 0, 0)


def _levels(outcomes: Mapping[Run, bool]) -> _Levels:
    counts: dict[int, list[int]] = {}
    for (d, seed), solved in outcomes.items():
        # a status string would be truthy: refuse it (numpy's bools compare equal and pass)
        if isinstance(solved, str) or solved not in (True, False):
            raise TypeError(f"outcome of {(d, seed)}: {solved!r} is not a bool (see solved_of)")
        c = counts.setdefault(d, [0, 0])
        c[0] += bool(solved)
        c[1] += 1
    return _Levels({d: Level(d, s, n) for d, (s, n) in counts.items()})


def _bracket(lower: int | None, upper: int | None, levels: _Levels) -> Bracket:
    recorded = tuple(levels[d] for d in sorted(levels))
    odd = tuple(
        lv.distance
        for lv in recorded
        if (lv.holds and upper is not None and lv.distance > upper)
        or (not lv.holds and lower is not None and lv.distance < lower)
    )
    return Bracket(lower, upper, recorded, odd)
