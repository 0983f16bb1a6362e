"""The adaptive distance design: simulated variants with a known horizon, censoring at both ends,
and the contract of ``next_runs`` (order-free, never the same run twice, other runs accepted).
"""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from pipeline.config.staircase import (
    Bracket,
    Level,
    StaircaseConfig,
    horizon,
    next_runs,
    solved_of,
)

RULE = StaircaseConfig(start=10, cap=160)  # seeds (0, 1, 2), extra seeds (3, 4)
MIN = 3  # the recall task's minimum distance


def step(h: int):
    """A variant that solves exactly the distances up to ``h``."""
    return lambda d, seed: d <= h


def sweep(rule, min_distance, solves, outcomes=None):
    """The sweep loop: run what ``next_runs`` asks for, record, ask again. Returns (outcomes,
    the rounds' runs); fails if a run is asked for twice or the loop does not end.
    """
    outcomes = dict(outcomes or {})
    rounds = []
    while runs := next_runs(rule, min_distance, outcomes):
        assert not set(runs) & set(outcomes), "a finished run was asked for again"
        assert len(set(runs)) == len(runs)
        rounds.append(runs)
        assert len(rounds) < 50, "the plan does not end"
        for d, seed in runs:
            outcomes[(d, seed)] = solves(d, seed)
    return outcomes, rounds


def contains(bracket: Bracket, h: int, min_distance: int) -> bool:
    """Whether the bracket is right about a true horizon ``h`` (solved iff distance <= h)."""
    low_ok = h < min_distance if bracket.below_min else bracket.lower <= h
    high_ok = bracket.beyond_cap or h < bracket.upper
    return low_ok and high_ok


def test_the_docstring_example_runs_round_by_round():
    outcomes, rounds = sweep(RULE, MIN, step(30))
    assert rounds == [
        [(10, 0), (10, 1), (10, 2)],
        [(20, 0), (20, 1), (20, 2)],
        [(40, 0), (40, 1), (40, 2)],
        [(80, 0), (80, 1), (80, 2)],
        [(20, 3), (20, 4), (40, 3), (40, 4)],
        [(28, s) for s in range(5)],
    ]
    b = horizon(RULE, MIN, outcomes)
    assert (b.lower, b.upper, len(outcomes)) == (28, 40, 21)
    assert b.levels == (
        Level(10, 3, 3), Level(20, 5, 5), Level(28, 5, 5), Level(40, 0, 5), Level(80, 0, 3),
    )  # fmt: skip
    assert b.monotone and not b.beyond_cap and not b.below_min


@pytest.mark.parametrize("h", [3, 4, 5, 9, 10, 11, 19, 27, 28, 29, 39, 40, 79, 80, 100, 159])
def test_the_bracket_contains_a_known_horizon(h):
    outcomes, _ = sweep(RULE, MIN, step(h))
    b = horizon(RULE, MIN, outcomes)
    assert b.lower is not None and b.upper is not None
    assert b.lower <= h < b.upper
    # both ends rest on every seed
    ends = {lv.distance: lv.runs for lv in b.levels if lv.distance in (b.lower, b.upper)}
    assert ends == {b.lower: 5, b.upper: 5}


def test_holding_at_the_cap_claims_nothing_beyond_it():
    outcomes, _ = sweep(RULE, MIN, step(10_000))
    b = horizon(RULE, MIN, outcomes)
    assert b.beyond_cap and (b.lower, b.upper) == (160, None)
    assert max(d for d, _ in outcomes) == 160
    assert {s for d, s in outcomes if d == 160} == {0, 1, 2, 3, 4}  # confirmed on every seed
    # a cap off the doubling ladder is a rung of its own
    off = StaircaseConfig(start=10, cap=100)
    outcomes, _ = sweep(off, MIN, step(10_000))
    assert sorted({d for d, _ in outcomes}) == [10, 20, 40, 80, 100]
    assert horizon(off, MIN, outcomes).lower == 100


def test_a_failure_at_the_cap_brackets_below_it():
    outcomes, _ = sweep(RULE, MIN, step(150))
    b = horizon(RULE, MIN, outcomes)
    assert (b.lower, b.upper) == (113, 160)  # 80 and 160 bisected: sqrt(12800) = 113.1


def test_failing_at_the_minimum_distance_is_below_it():
    outcomes, rounds = sweep(RULE, MIN, step(2))
    b = horizon(RULE, MIN, outcomes)
    assert b.below_min and (b.lower, b.upper) == (None, MIN)
    assert [r[0][0] for r in rounds[:3]] == [10, 5, 3]  # halving, then the minimum
    assert min(d for d, _ in outcomes) == MIN
    # a start at the minimum that fails goes nowhere
    low = StaircaseConfig(start=MIN, cap=160)
    outcomes, _ = sweep(low, MIN, step(0))
    assert sorted(outcomes) == [(MIN, s) for s in range(5)]
    assert horizon(low, MIN, outcomes).below_min


def test_going_down_finds_the_horizon_below_the_start():
    outcomes, _ = sweep(RULE, MIN, step(6))
    b = horizon(RULE, MIN, outcomes)
    assert (b.lower, b.upper) == (5, 7)  # between 5 and 10: sqrt(50) = 7.07 -> 7 failed
    assert {lv.distance: lv.runs for lv in b.levels} == {5: 5, 7: 5, 10: 5}


def test_noisy_variants_are_bracketed_almost_always():
    # each run's outcome flips with probability 0.1: a level's verdict rests on a majority of 3
    # or 5 seeds, and a single lost level does not end the ladder (two in a row do)
    rng = random.Random(20240601)
    covered, n = 0, 300
    for _ in range(n):
        h = rng.choice([2, 4, 7, 15, 25, 45, 70, 110, 500])
        flips = {}

        def solves(d, seed, h=h, flips=flips):
            return (d <= h) != flips.setdefault((d, seed), rng.random() < 0.1)

        outcomes, _ = sweep(RULE, MIN, solves)
        covered += contains(horizon(RULE, MIN, outcomes), h, MIN)
    assert covered / n >= 0.9


def test_a_graded_variant_is_bracketed_at_its_50_percent_distance():
    # P(solved) falls smoothly, by a factor e^4 in odds per doubling, and is one half at 40
    rng = random.Random(7)
    rule = StaircaseConfig(start=10, cap=640)
    hits, n = 0, 200
    for _ in range(n):
        outcomes, _ = sweep(
            rule, MIN, lambda d, s: rng.random() < 1 / (1 + math.exp(4 * math.log2(d / 40)))
        )
        b = horizon(rule, MIN, outcomes)
        hits += b.lower is not None and b.upper is not None and b.lower <= 40 <= b.upper
    assert hits / n >= 0.9


@settings(max_examples=150, deadline=None)
@given(
    start=st.integers(1, 64),
    span=st.integers(0, 8),
    min_distance=st.integers(1, 64),
    h=st.integers(0, 3000),
    noise=st.integers(0, 2**32 - 1),
    extra=st.integers(0, 3),
)
def test_any_design_ends_asks_no_run_twice_and_stays_in_range(
    start, span, min_distance, h, noise, extra
):
    start = max(start, min_distance)
    rule = StaircaseConfig(
        start=start, cap=min(start * 2**span, 10_000), extra_seeds=tuple(range(3, 3 + extra))
    )
    rng = random.Random(noise)
    outcomes, _ = sweep(rule, min_distance, lambda d, s: (d <= h) != (rng.random() < 0.2))
    b = horizon(rule, min_distance, outcomes)
    assert all(min_distance <= d <= rule.cap for d, _ in outcomes)
    assert all(s in rule.all_seeds for _, s in outcomes)
    if b.lower is not None and b.upper is not None:
        assert b.lower < b.upper
    for end in (b.lower, b.upper):
        if end is not None:
            runs = [lv.runs for lv in b.levels if lv.distance == end]
            assert runs == [len(rule.all_seeds)]


@settings(max_examples=60, deadline=None)
@given(h=st.integers(0, 300), noise=st.integers(0, 2**32 - 1), order=st.randoms())
def test_the_plan_does_not_depend_on_the_order_outcomes_arrived_in(h, noise, order):
    rng = random.Random(noise)
    outcomes, _ = sweep(RULE, MIN, lambda d, s: (d <= h) != (rng.random() < 0.2))
    items = list(outcomes.items())
    for cut in range(0, len(items) + 1, 4):  # every fourth prefix, shuffled
        prefix = items[:cut]
        shuffled = prefix[:]
        order.shuffle(shuffled)
        assert next_runs(RULE, MIN, dict(shuffled)) == next_runs(RULE, MIN, dict(prefix))
    order.shuffle(items)
    assert horizon(RULE, MIN, dict(items)) == horizon(RULE, MIN, outcomes)


def test_asking_again_without_new_outcomes_asks_for_the_same_runs():
    outcomes = {(10, 0): True, (10, 1): True, (10, 2): False}
    first = next_runs(RULE, MIN, outcomes)
    assert first == next_runs(RULE, MIN, outcomes) == [(20, 0), (20, 1), (20, 2)]
    partial = {**outcomes, (20, 0): True}  # one of three back: only the other two are asked for
    assert next_runs(RULE, MIN, partial) == [(20, 1), (20, 2)]


def test_extra_seeds_the_rule_did_not_ask_for_count_in_a_verdict():
    # 40 fails on the rule's seeds alone (1 of 3), holds with two more recorded solves (3 of 5)
    base = {(d, s): True for d in (10, 20) for s in range(3)}
    base |= {(40, 0): True, (40, 1): False, (40, 2): False}
    assert next_runs(RULE, MIN, base) == [(80, 0), (80, 1), (80, 2)]  # still climbing
    more = base | {(40, 7): True, (40, 8): True}
    assert next_runs(RULE, MIN, more) == [(80, 0), (80, 1), (80, 2)]
    done, _ = sweep(RULE, MIN, step(50), more)
    b = horizon(RULE, MIN, done)
    assert b.lower >= 40 and Level(40, 5, 7) in b.levels  # the rule's 5 seeds and the 2 more


def test_a_rerun_of_a_larger_design_runs_only_what_is_missing_and_names_contradictions():
    # a full grid was run before; now the variant is non-monotone at 120 (an off-ladder level)
    grid = {(d, s): d <= 30 or d == 120 for d in (10, 20, 40, 80, 120, 160) for s in range(5)}
    outcomes, rounds = sweep(RULE, MIN, step(30), grid)
    assert rounds == [[(28, s) for s in range(5)]]  # the ladder's levels were all there
    b = horizon(RULE, MIN, outcomes)
    assert (b.lower, b.upper) == (28, 40)
    assert b.contradictions == (120,) and not b.monotone


def test_confirmation_that_turns_the_held_end_moves_the_bracket_down():
    # 20 holds on seeds 0-2 (2 of 3) but not on all five (2 of 5)
    def solves(d, seed):
        return d <= 10 or (d == 20 and seed in (0, 1))

    outcomes, _ = sweep(RULE, MIN, solves)
    b = horizon(RULE, MIN, outcomes)
    assert (b.lower, b.upper) == (10, 14)  # 10 held, 20 failed on five: sqrt(200) = 14.1 -> 14
    assert Level(20, 2, 5) in b.levels


def test_a_level_held_above_a_single_failure_lets_the_ladder_climb_on():
    # fails at 40 alone: one failing level does not stop the ladder
    def solves(d, seed):
        return d <= 20 or 80 <= d <= 160

    rule = StaircaseConfig(start=10, cap=1280)
    outcomes, _ = sweep(rule, MIN, solves)
    b = horizon(rule, MIN, outcomes)
    assert (b.lower, b.upper) == (160, 226)  # sqrt(160 x 320) = 226.3
    assert b.contradictions == (40,)


def test_a_diverged_run_is_a_failure_and_a_crashed_one_no_outcome():
    assert solved_of("solved") and not solved_of("unsolved") and not solved_of("diverged")
    for status in ("failed", "stale", "missing"):
        with pytest.raises(ValueError, match="not a finished run"):
            solved_of(status)
    with pytest.raises(TypeError, match="not a bool"):
        next_runs(RULE, MIN, {(10, 0): "diverged"})
    # numpy's bools, as a DataFrame's status == "solved" gives them, are outcomes
    flags = np.array([True, True, False])
    assert next_runs(RULE, MIN, {(10, s): flags[s] for s in range(3)})[0] == (20, 0)


def test_the_config_refuses_what_cannot_be_a_design():
    with pytest.raises(ValidationError, match="already in seeds"):
        StaircaseConfig(start=10, cap=20, seeds=(0, 1), extra_seeds=(1, 2))
    with pytest.raises(ValidationError, match="below start"):
        StaircaseConfig(start=20, cap=10)
    with pytest.raises(ValidationError, match="duplicate seed"):
        StaircaseConfig(start=10, cap=20, seeds=(0, 0))
    with pytest.raises(ValidationError, match="Extra inputs"):
        StaircaseConfig(start=10, cap=20, max_seeds=5)
    with pytest.raises(ValidationError):
        StaircaseConfig(start=10, cap=20_000)  # above MAX_DISTANCE
    with pytest.raises(ValueError, match="below the task's minimum distance 12"):
        next_runs(RULE, 12, {})
    with pytest.raises(ValueError, match="not complete"):
        horizon(RULE, MIN, {})
