"""Properties of the task generators: where the information sits, exact baselines, determinism,
no leakage, and the worked examples of the docstrings.
"""

from __future__ import annotations

import math
import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline import tasks
from pipeline.tasks import FILLER, PAIRS, PREFIX, QUERY, Adding, Copy, Recall

SEEDS = st.integers(0, 2**63 - 1)
PROPERTY = settings(max_examples=40, deadline=None)


@st.composite
def recall_cases(draw):
    task = Recall(n_keys=draw(st.integers(2, len(PAIRS))), n_filler=draw(st.integers(1, 32)))
    return task, draw(st.integers(task.min_distance, 60)), draw(st.integers(1, 40)), draw(SEEDS)


@st.composite
def copy_cases(draw):
    task = Copy(n_symbols=draw(st.integers(2, 12)), copy_length=draw(st.integers(1, 12)))
    return task, draw(st.integers(task.min_distance, 60)), draw(st.integers(1, 40)), draw(SEEDS)


@st.composite
def adding_cases(draw):
    task = Adding()
    return task, draw(st.integers(task.min_distance, 80)), draw(st.integers(1, 40)), draw(SEEDS)


def any_task() -> list:
    return [Recall(), Copy(), *(Adding(variant=v) for v in tasks.ADDING_VARIANTS)]


def task_id(task) -> str:
    return f"adding-{task.variant}" if task.name == "adding" else task.name


# --- distance: the information sits exactly `distance` steps before the scored step ---


@pytest.mark.parametrize("task", any_task(), ids=task_id)
@pytest.mark.parametrize("distance", [19, 25, 110])
def test_scored_step_minus_key_step_is_distance(task, distance):
    assert task.scored_step(distance) - task.key_step(distance) == distance
    assert task.scored_step(distance) < task.length(distance)


@PROPERTY
@given(recall_cases())
def test_recall_key_sits_distance_before_the_scored_step(case):
    task, distance, n, seed = case
    x, y = task.generate(distance, n, seed)
    assert x.shape == (n, task.length(distance))
    key_ids = torch.tensor([task.vocabulary.index(k) for k in task.keys])
    is_key = torch.isin(x.long(), key_ids)
    key_col = task.scored_step(distance) - distance
    assert is_key[:, key_col].all()
    assert is_key.sum() == n  # and no other position of any sample holds a key
    # the target is the answer of that key, for every sample
    answer_of = dict(PAIRS)
    keys = [task.vocabulary[t] for t in x[:, key_col].tolist()]
    expected = [task.answers.index(answer_of[key]) for key in keys]
    assert y.tolist() == expected


@PROPERTY
@given(copy_cases())
def test_copy_symbol_at_step_j_is_recalled_at_step_j_plus_distance(case):
    task, distance, n, seed = case
    x, y = task.generate(distance, n, seed)
    m, length = task.copy_length, task.length(distance)
    assert x.shape == y.shape == (n, length)
    assert torch.equal(y[:, distance : distance + m], x[:, :m])
    assert ((x[:, :m] >= 1) & (x[:, :m] <= task.n_symbols)).all()
    assert (y[:, :distance] == 0).all()  # blanks until the first recall step
    delimiter = task.n_symbols + 1
    assert (x[:, distance - 1] == delimiter).all()  # the delimiter, step T + m - 1
    rest = torch.ones(length, dtype=torch.bool)
    rest[:m] = False
    rest[distance - 1] = False
    assert (x[:, rest] == 0).all()  # blanks everywhere else


@PROPERTY
@given(adding_cases())
def test_adding_first_marker_distance_before_output_second_closer(case):
    task, distance, n, seed = case
    x, y = task.generate(distance, n, seed)
    assert x.shape == (n, task.length(distance), 2)
    values, markers = x[..., 0], x[..., 1]
    assert ((markers == 0) | (markers == 1)).all()
    assert (markers.sum(1) == 2).all()
    s = task.scored_step(distance)
    assert (markers[:, s - distance] == 1).all()
    second = markers[:, s - distance + 1 :].argmax(1) + s - distance + 1
    assert (s - second < distance).all()
    rows = torch.arange(n)
    assert torch.allclose(y, values[:, s - distance] + values[rows, second])


@st.composite
def halves_cases(draw):
    task = Adding(variant="halves")
    return task, draw(st.integers(task.min_distance, 80)), draw(st.integers(1, 40)), draw(SEEDS)


@PROPERTY
@given(halves_cases())
def test_halves_one_marker_in_each_half(case):
    """Arjovsky et al.'s code: randint(T/2) and randint(T/2) + T/2, T = distance + 1."""
    task, distance, n, seed = case
    x, y = task.generate(distance, n, seed)
    T, half = distance + 1, (distance + 1) // 2
    assert x.shape == (n, T, 2) and task.paper_t(distance) == T
    values, markers = x[..., 0], x[..., 1]
    assert ((markers == 0) | (markers == 1)).all() and (markers.sum(1) == 2).all()
    assert (markers[:, :half].sum(1) == 1).all() and (markers[:, half : 2 * half].sum(1) == 1).all()
    assert ((values >= 0) & (values < 1)).all()
    assert torch.allclose(y, (values * markers).sum(1))
    gaps = task.scored_step(distance) - markers.argmax(1)  # the first marker's gap
    assert ((gaps >= T - half) & (gaps <= distance)).all()


def test_halves_gaps_cover_their_whole_range():
    task, distance = Adding(variant="halves"), 99
    x, _ = task.generate(distance, 20_000, seed=0)
    gaps = task.scored_step(distance) - x[..., 1].argmax(1)
    assert (gaps.min().item(), gaps.max().item()) == (50, 99)


@st.composite
def hochreiter_cases(draw):
    task = Adding(variant="hochreiter")
    return task, draw(st.integers(task.min_distance, 200)), draw(st.integers(1, 40)), draw(SEEDS)


def hochreiter_parts(x: torch.Tensor):
    """Per sample: where the sequence starts, its two marked steps (earlier first), values."""
    values, markers = x[..., 0], x[..., 1]
    start = (markers != 0).float().argmax(1)  # the first pair always carries a marker
    marked = (markers == 1).nonzero()[:, 1].view(-1, 2)
    return start, marked, values, markers


@PROPERTY
@given(hochreiter_cases())
def test_hochreiter_sequences_follow_the_paper(case):
    """Hochreiter & Schmidhuber 1997, Experiment 4: length T to T + T/10 (left-padded), X1 among
    the first 10 pairs, X2 among the first T/2 - 1 still unmarked, -1 on the first and last pair
    unless marked, a marked first pair holding 0, target 0.5 + (X1 + X2) / 4.
    """
    task, distance, n, seed = case
    x, y = task.generate(distance, n, seed)
    T, rows = distance + 1, torch.arange(n)
    width = T + T // 10
    assert x.shape == (n, width, 2) and task.length(distance) == width
    start, marked, values, markers = hochreiter_parts(x)
    lengths = width - start
    assert ((lengths >= T) & (lengths <= T + T // 10)).all()
    padding = torch.arange(width) < start[:, None]
    assert (values[padding] == 0).all() and (markers[padding] == 0).all()
    assert ((values[~padding] >= -1) & (values[~padding] < 1)).all()
    assert ((markers == 0) | (markers == 1) | (markers == -1)).all()
    assert (markers[:, -1] == -1).all()
    first_marked = markers[rows, start] == 1
    assert (markers[rows, start][~first_marked] == -1).all()
    assert (values[rows, start][first_marked] == 0).all()
    assert ((markers == -1).sum(1) == 2 - first_marked.long()).all()
    pairs = marked - start[:, None]  # positions within the sequence
    assert (pairs[:, 0] < 10).all()  # X1 is one of the first 10, so the earlier one is too
    assert (pairs[:, 1] < T // 2).all()  # X1 < 10 <= T // 2 - 1, X2 < T // 2 (X1 skipped)
    picked = values[rows[:, None], marked]
    assert torch.allclose(y, 0.5 + picked.sum(1) / 4)
    assert ((y >= 0) & (y <= 1)).all()


def test_hochreiter_gaps_and_distance():
    """distance = T - 1: from the first pair of a shortest sequence (step T // 10) to the output;
    the earlier marked value's gap spans T - 10 .. T + T // 10 - 1 (at the first pair: value 0).
    """
    task, distance = Adding(variant="hochreiter"), 99
    x, _ = task.generate(distance, 50_000, seed=0)
    start, marked, _, _ = hochreiter_parts(x)
    s = task.scored_step(distance)
    assert task.key_step(distance) == 10 and s - task.key_step(distance) == distance
    earlier, later = s - marked[:, 0], s - marked[:, 1]
    assert (earlier.min().item(), earlier.max().item()) == (90, 109)
    assert later.min().item() >= 100 - 50
    assert set((s - start).tolist()) == set(range(99, 110))  # every length from T to T + T/10


# --- exact baselines and chance accuracies ---


def test_copy_baseline_at_T_100():
    task = Copy()
    assert task.baseline_loss(110) == pytest.approx(10 * math.log(8) / 120)
    assert round(task.baseline_loss(110), 4) == 0.1733


def test_copy_baseline_is_the_loss_of_the_best_memoryless_model():
    """Blanks for sure until the recall steps, then uniform over the symbols."""
    task, distance = Copy(), 30
    x, y = task.generate(distance, 256, seed=0)
    out = torch.full((*y.shape, task.n_outputs), -1e9)
    out[:, :distance, 0] = 0.0
    out[:, distance:, 1:] = 0.0
    assert task.loss(out, y).item() == pytest.approx(task.baseline_loss(distance), rel=1e-6)


def test_copy_accuracy_counts_only_the_recall_steps():
    """A memoryless guess (blanks, then always symbol 1) is right at over 92% of all steps,
    but task accuracy counts the recall steps only: chance, and 0 for all blanks.
    """
    task, distance = Copy(), 110
    x, y = task.generate(distance, 4096, seed=0)
    guess = torch.zeros(*y.shape, task.n_outputs)
    guess[:, :distance, 0] = 1.0
    guess[:, distance:, 1] = 1.0
    assert (guess.argmax(-1) == y).float().mean() > 0.92
    assert task.correct(guess, y).mean().item() == pytest.approx(1 / 8, abs=0.01)
    all_blank = torch.zeros(*y.shape, task.n_outputs)
    all_blank[..., 0] = 1.0
    assert task.correct(all_blank, y).sum() == 0


def test_adding_baselines_on_100k_samples():
    task = Adding()
    x, y = task.generate(50, 100_000, seed=0)
    predict_one = ((y - 1) ** 2).mean().item()
    second = x[:, 1:, 0][x[:, 1:, 1] == 1]  # the later marked value, one per sample
    remember_second = ((y - (second + 0.5)) ** 2).mean().item()
    # standard errors: 0.0006 and 0.00024; the bounds are four of them
    assert predict_one == pytest.approx(1 / 6, abs=0.0025)
    assert remember_second == pytest.approx(1 / 12, abs=0.001)
    assert task.baseline_loss(50) == pytest.approx(1 / 6)
    assert task.loss(torch.ones(len(y), 1), y).item() == pytest.approx(predict_one)


def test_adding_chance_accuracy_is_the_remember_the_later_value_accuracy():
    task = Adding()
    x, y = task.generate(20, 100_000, seed=1)
    second = x[:, 1:, 0][x[:, 1:, 1] == 1]  # the later marked value, one per sample
    remember_second = task.correct((second + 0.5)[:, None], y).mean().item()
    guess_one = task.correct(torch.ones(len(y), 1), y).mean().item()
    assert task.chance_accuracy(20) == pytest.approx(2 * task.tolerance)
    assert remember_second == pytest.approx(task.chance_accuracy(20), abs=0.004)  # 4.7 std err
    assert guess_one < task.chance_accuracy(20)  # the better of the two memoryless strategies
    assert task.baselines(20) == {
        "predict 1 (no memory)": pytest.approx(1 / 6),
        "remember only the later value": pytest.approx(1 / 12),
    }


def test_halves_baselines_and_chance_match_fixed():
    task = Adding(variant="halves")
    x, y = task.generate(50, 100_000, seed=0)
    later = x[:, 25:, 0][x[:, 25:, 1] == 1]  # the value marked in the second half
    assert ((y - 1) ** 2).mean().item() == pytest.approx(1 / 6, abs=0.0025)
    assert ((y - (later + 0.5)) ** 2).mean().item() == pytest.approx(1 / 12, abs=0.001)
    remember_later = task.correct((later + 0.5)[:, None], y).mean().item()
    assert remember_later == pytest.approx(task.chance_accuracy(50), abs=0.004)
    assert task.baselines(50) == Adding().baselines(50)


def hochreiter_x2(task: Adding, distance: int, n: int, seed: int) -> torch.Tensor:
    """X2's step per sample, from the generator's documented draws (lengths, values, X1, X2's
    rank): which marked value is X2 cannot be read from ``x`` itself.
    """
    g = tasks.generator(seed)
    T = distance + 1
    lengths = T + torch.randint(T // 10 + 1, (n,), generator=g)
    torch.rand(n, task.length(distance), generator=g)
    first = torch.randint(10, (n,), generator=g)
    rank = torch.randint(T // 2 - 1, (n,), generator=g)
    return task.length(distance) - lengths + rank + (rank >= first)


@pytest.mark.parametrize("distance", [19, 99])
def test_hochreiter_baselines_and_chance_on_100k_samples(distance):
    task = Adding(variant="hochreiter")
    x, y = task.generate(distance, 100_000, seed=0)
    x2 = x[torch.arange(len(y)), hochreiter_x2(task, distance, len(y), 0)]
    assert (x2[:, 1] == 1).all()  # the replayed draws found a marked step
    no_memory, remember_x2 = task.baselines(distance).values()
    # standard errors about 1.5e-4 and 7e-5; the bounds are four of them
    assert ((y - 0.5) ** 2).mean().item() == pytest.approx(no_memory, abs=6e-4)
    assert ((y - 0.5 - x2[:, 0] / 4) ** 2).mean().item() == pytest.approx(remember_x2, abs=3e-4)
    assert task.baseline_loss(distance) == no_memory
    assert no_memory < 1 / 24 and remember_x2 == pytest.approx(0.9 / 48)
    guess = task.correct(torch.full((len(y), 1), 0.5), y).mean().item()
    assert guess == pytest.approx(task.chance_accuracy(distance), abs=0.005)  # 4.4 std err


@pytest.mark.parametrize("n_keys", [2, 8, 12])
def test_recall_chance_and_baseline(n_keys):
    task = Recall(n_keys=n_keys)
    x, y = task.generate(10, 40_000, seed=2)
    constant = torch.zeros(len(y), n_keys)
    constant[:, 0] = 1.0
    assert task.chance_accuracy(10) == 1 / n_keys
    assert task.correct(constant, y).mean().item() == pytest.approx(1 / n_keys, abs=0.01)
    uniform = torch.zeros(len(y), n_keys)
    assert task.baseline_loss(10) == pytest.approx(math.log(n_keys))
    assert task.loss(uniform, y).item() == pytest.approx(math.log(n_keys), rel=1e-6)


def test_copy_chance_accuracy():
    task = Copy(n_symbols=8, copy_length=10)
    x, y = task.generate(20, 20_000, seed=3)
    always_1 = torch.zeros(*y.shape, task.n_outputs)
    always_1[..., 1] = 1.0
    assert task.chance_accuracy(20) == 1 / 8
    assert task.correct(always_1, y).mean().item() == pytest.approx(1 / 8, abs=0.005)


# --- determinism: a pure function of (parameters, distance, seed) ---


@pytest.mark.parametrize("task", any_task(), ids=task_id)
def test_same_seed_same_bytes_different_seed_differs(task):
    a = task.generate(20, 64, seed=7)
    b = task.generate(20, 64, seed=7)
    c = task.generate(20, 64, seed=8)
    assert a[0].numpy().tobytes() == b[0].numpy().tobytes()
    assert a[1].numpy().tobytes() == b[1].numpy().tobytes()
    assert a[0].numpy().tobytes() != c[0].numpy().tobytes()


@pytest.mark.parametrize("task", any_task(), ids=task_id)
def test_generation_ignores_global_random_state(task):
    torch.manual_seed(0)
    a = task.generate(20, 32, seed=5)
    torch.manual_seed(1)
    torch.rand(100)
    b = task.generate(20, 32, seed=5)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_stream_seed_separates_streams():
    seeds = {tasks.stream_seed("recall", 20, 1, split) for split in ("train", "val", "test")}
    assert len(seeds) == 3
    again = tasks.stream_seed("recall", 20, 1, "train")
    assert again == tasks.stream_seed("recall", 20, 1, "train")
    assert all(0 <= s < 2**63 for s in seeds)


@pytest.mark.parametrize(
    ("task", "dtypes"),
    [
        (Recall(), (torch.uint8, torch.uint8)),
        (Copy(), (torch.uint8, torch.uint8)),
        *((Adding(variant=v), (torch.float32, torch.float32)) for v in tasks.ADDING_VARIANTS),
    ],
    ids=["recall", "copy", *(f"adding-{v}" for v in tasks.ADDING_VARIANTS)],
)
def test_compact_dtypes(task, dtypes):
    x, y = task.generate(20, 8, seed=0)
    assert (x.dtype, y.dtype) == dtypes


# --- the sequence space: how many distinct inputs a task has at a distance ---


@pytest.mark.parametrize(
    ("task", "distance", "space"),
    [
        (Recall(n_keys=4, n_filler=8), 4, 32),
        (Recall(n_keys=4, n_filler=8), 3, 4),  # no filler: the key alone
        (Recall(n_keys=2, n_filler=3), 6, 54),
        (Recall(n_keys=3, n_filler=1), 40, 3),
        (Copy(n_symbols=3, copy_length=2), 5, 9),
        (Copy(n_symbols=3, copy_length=2), 30, 9),  # the distance adds only blanks
    ],
    ids=lambda v: str(v) if isinstance(v, int) else None,
)
def test_sequence_space_counts_every_input_a_large_draw_finds(task, distance, space):
    assert task.sequence_space(distance) == space
    x, _ = task.generate(distance, 4000, seed=9)
    assert x.unique(dim=0).shape[0] == space  # 4000 draws find every one of these few


def test_sequence_space_of_large_and_continuous_tasks():
    assert Recall().sequence_space(10) == 8 * 24.0**7
    assert Copy().sequence_space(110) == 8.0**10
    assert Recall().sequence_space(750) == math.inf  # 24**747 is past the largest float
    assert Adding().sequence_space(10) == math.inf


# --- no leakage: only the key tells the answer ---


def test_filler_words_are_never_keys_answers_or_phrase_words():
    special = {w for pair in PAIRS for w in pair} | set(PREFIX) | set(QUERY)
    assert not special & set(FILLER)
    assert len(set(FILLER)) == len(FILLER)


def test_recall_filler_positions_hold_only_filler():
    task, distance = Recall(n_keys=12, n_filler=32), 40
    x, _ = task.generate(distance, 2000, seed=4)
    key_col = task.key_step(distance)
    filler = x[:, key_col + 1 : key_col + 1 + distance - len(QUERY)]
    words = {task.vocabulary[t] for t in filler.unique().tolist()}
    assert words <= set(task.filler)
    assert not words & {w for pair in PAIRS for w in pair}


def test_recall_everything_but_the_key_is_fixed_or_independent_of_the_target():
    """Phrase positions are constant; a lookup from any one filler position to the target
    (fitted on half the samples) scores chance on the other half; the target is a function of
    the key token alone, so reshuffling the filler cannot change it.
    """
    task, distance, n = Recall(n_keys=8, n_filler=24), 12, 20_000
    x, y = task.generate(distance, n, seed=5)
    x, y = x.long(), y.long()
    key_col = task.key_step(distance)
    fixed = [*range(key_col), *range(task.length(distance) - len(QUERY), task.length(distance))]
    assert (x[:, fixed] == x[0, fixed]).all()
    half = n // 2
    for col in range(key_col + 1, key_col + 1 + distance - len(QUERY)):
        counts = torch.zeros(task.n_inputs, task.n_keys)
        counts.index_put_((x[:half, col], y[:half]), torch.ones(half), accumulate=True)
        guess = counts.argmax(1)[x[half:, col]]
        assert (guess == y[half:]).float().mean() < 1 / 8 + 0.03
    # within each key, the target is constant while the filler varies
    for key in x[:, key_col].unique():
        rows = x[:, key_col] == key
        assert y[rows].unique().numel() == 1
        assert x[rows].unique(dim=0).shape[0] > 100


# --- readable: worked examples, sorted vocabularies ---


def encode(task: Recall, words: str) -> torch.Tensor:
    return torch.tensor([[task.vocabulary.index(w) for w in words.split()]], dtype=torch.uint8)


def test_recall_render_reproduces_the_docstring_example():
    task = Recall()
    x = encode(task, "i grew up in france the river i speak fluent")
    y = torch.tensor([task.answers.index("french")], dtype=torch.uint8)
    assert task.render(x, y) == ["i grew up in france the river i speak fluent -> french"]
    assert x.shape[1] == task.length(5)
    assert task.scored_step(5) - 4 == 5  # france at position 4, scored at 9


def test_recall_render_of_generated_samples():
    task, distance = Recall(), 9
    x, y = task.generate(distance, 50, seed=6)
    answer_of = dict(PAIRS)
    words = rf"((?: \w+){{{distance - 3}}})"  # exactly distance - 3 filler words
    pattern = re.compile(rf"^i grew up in (\w+){words} i speak fluent -> (\w+)$")
    for line in task.render(x, y):
        match = pattern.match(line)
        assert match, line
        key, filler, answer = match.groups()
        assert answer_of[key] == answer
        assert set(filler.split()) <= set(task.filler)


@pytest.mark.parametrize(("variant", "distance", "seed"), [("halves", 5, 0), ("hochreiter", 19, 2)])
def test_adding_docstring_examples(variant, distance, seed):
    """The worked examples of ``Adding``'s docstring are these draws, rendered."""
    task = Adding(variant=variant)
    (line,) = task.render(*task.generate(distance, 1, seed))
    assert " ".join(line.split()) in " ".join(Adding.__doc__.split())


def test_adding_rejects_an_unknown_variant():
    with pytest.raises(ValueError, match="variant must be one of fixed, halves, hochreiter"):
        Adding(variant="arjovsky")


def test_copy_docstring_example():
    task = Copy(n_symbols=4, copy_length=3)
    x, y = task.generate(5, 20, seed=0)
    for xs, ys in zip(x.tolist(), y.tolist(), strict=True):
        a, b, c = xs[:3]
        assert xs == [a, b, c, 0, 5, 0, 0, 0]
        assert ys == [0, 0, 0, 0, 0, a, b, c]


@pytest.mark.parametrize("n_keys", [2, 8, 12])
@pytest.mark.parametrize("n_filler", [1, 24, 32])
def test_vocabularies_sorted_and_distinct(n_keys, n_filler):
    task = Recall(n_keys=n_keys, n_filler=n_filler)
    assert list(task.vocabulary) == sorted(set(task.vocabulary))
    assert list(task.answers) == sorted(set(task.answers))
    assert task.n_inputs == len(task.vocabulary) <= 256  # token ids fit in uint8
    assert set(task.keys) <= set(task.vocabulary)
    assert not set(task.answers) & set(task.vocabulary)


@pytest.mark.parametrize(("n_keys", "n_filler"), [(1, 24), (13, 24), (8, 0), (8, 33)])
def test_recall_rejects_out_of_range_parameters(n_keys, n_filler):
    with pytest.raises(ValueError, match="n_keys|n_filler"):
        Recall(n_keys=n_keys, n_filler=n_filler)


def test_registry_names_match():
    assert {name: cls.name for name, cls in tasks.TASKS.items()} == {
        "recall": "recall",
        "copy": "copy",
        "adding": "adding",
    }
