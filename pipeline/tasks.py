"""The long-gap tasks: pure functions of (parameters, distance, seed).

Throughout the project **distance** is the number of time steps from the input step that carries
the needed information (the *key step*) to the output step that is scored on it (the *scored
step*): ``distance = scored_step - key_step``. Each task below says how its classic parameter maps
onto distance.

Every generator draws from its own ``torch.Generator`` (never global random state), is vectorised
over samples, and returns ``(x, y)`` in a compact dtype. Each task also knows its loss, its
accuracy, its chance accuracy and the loss of the best model with no memory (``baseline_loss``),
so training and reports share one definition of each; and, for the data stage, how many distinct
inputs it can draw at a distance (``sequence_space``) and the memory a draw takes
(``generate_bytes``).
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

# key -> answer pairs of the recall task (Olah's "i grew up in france ... i speak fluent french")
PAIRS: tuple[tuple[str, str], ...] = (
    ("france", "french"),
    ("germany", "german"),
    ("spain", "spanish"),
    ("japan", "japanese"),
    ("italy", "italian"),
    ("china", "chinese"),
    ("greece", "greek"),
    ("sweden", "swedish"),
    ("poland", "polish"),
    ("turkey", "turkish"),
    ("russia", "russian"),
    ("finland", "finnish"),
)
# filler words: never a key, an answer, or a word of the two fixed phrases
FILLER: tuple[str, ...] = (
    "and", "want", "to", "be", "a", "plumber", "who", "the", "best", "is", "world", "my",
    "family", "lived", "there", "for", "many", "years", "we", "often", "went", "walking", "near",
    "river", "old", "town", "house", "with", "friends", "every", "summer", "then",
)  # fmt: skip
PREFIX = ("i", "grew", "up", "in")  # the key follows this phrase
QUERY = ("i", "speak", "fluent")  # the answer is asked for after this phrase


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


def _power(base: int, exponent: int) -> float:
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


@dataclass(frozen=True)
class Recall:
    """France -> French: recall which country came ``distance`` steps before the question.

    A sequence is ``i grew up in <key> <filler x (distance - 3)> i speak fluent``; the target is
    the key's answer, read out once at the last step (many-to-one, ``n_keys`` classes). Worked
    example with distance 5 (two filler words)::

        i grew up in france the river i speak fluent -> french
        position:    4                          9      distance = 9 - 4 = 5

    Filler words are drawn uniformly from ``n_filler`` words that are never keys or answers, so
    the answer can be read from the key alone. Chance accuracy 1/K; the memoryless baseline loss
    is ln K. Token ids index the sorted vocabulary; class ids index the sorted answers.
    """

    n_keys: int = 8
    n_filler: int = 24

    name: ClassVar[str] = "recall"
    LIMITS: ClassVar[dict] = {
        "n_keys": {"ge": 2, "le": len(PAIRS)},
        "n_filler": {"ge": 1, "le": len(FILLER)},
    }
    min_distance: ClassVar[int] = len(QUERY)  # the query phrase sits between key and output
    readout: ClassVar[str] = "last"
    tokens: ClassVar[bool] = True  # inputs are token ids
    GROW_SPACE: ClassVar[str] = "longer distances, more filler words (n_filler)"  # more sequences

    def __post_init__(self) -> None:
        check_limits(self)

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(key for key, _ in PAIRS[: self.n_keys])

    @property
    def answers(self) -> tuple[str, ...]:
        """Class names, sorted: class id ``c`` means ``answers[c]``."""
        return tuple(sorted(answer for _, answer in PAIRS[: self.n_keys]))

    @property
    def filler(self) -> tuple[str, ...]:
        return FILLER[: self.n_filler]

    @property
    def vocabulary(self) -> tuple[str, ...]:
        """Input words, sorted: token id ``t`` means ``vocabulary[t]``."""
        return tuple(sorted({*self.keys, *self.filler, *PREFIX, *QUERY}))

    @property
    def n_inputs(self) -> int:
        return len(self.vocabulary)

    @property
    def n_outputs(self) -> int:
        return self.n_keys

    def length(self, distance: int) -> int:
        return len(PREFIX) + 1 + (distance - len(QUERY)) + len(QUERY)

    def key_step(self, distance: int) -> int:
        return len(PREFIX)

    def scored_step(self, distance: int) -> int:
        return self.length(distance) - 1

    def sequence_space(self, distance: int) -> float:
        """How many distinct inputs the task has at ``distance``: a key, then ``distance - 3``
        filler words, each free (``math.inf`` past the largest float). ``y`` is a function of
        ``x``, so distinct inputs are distinct samples.
        """
        return self.n_keys * _power(self.n_filler, distance - len(QUERY))

    def generate_bytes(self, distance: int, n: int) -> int:
        """An upper bound on the memory ``generate(distance, n)`` holds at once, its result
        included: the filler drawn as int64, its uint8 token ids, and the uint8 sequence.
        """
        return n * (9 * (distance - len(QUERY)) + self.length(distance) + 64)

    def generate(self, distance: int, n: int, seed: int) -> tuple[Tensor, Tensor]:
        """``x``: uint8 token ids ``[n, length]``; ``y``: uint8 class ids ``[n]``."""
        g = generator(seed)
        ids = {word: i for i, word in enumerate(self.vocabulary)}

        def tokens(words) -> Tensor:  # token ids fit in uint8 (at most 256 words)
            return torch.tensor([ids[w] for w in words], dtype=torch.uint8)

        key_class = torch.randint(self.n_keys, (n,), generator=g)  # which pair, per sample
        filler = torch.randint(self.n_filler, (n, distance - len(QUERY)), generator=g)
        # written in place, in uint8: int64 pieces joined and cast would take 17 bytes a token
        x = torch.empty(n, self.length(distance), dtype=torch.uint8)
        key = len(PREFIX)
        x[:, :key] = tokens(PREFIX)
        x[:, key] = tokens(self.keys)[key_class]
        x[:, key + 1 : key + 1 + filler.shape[1]] = tokens(self.filler)[filler]
        x[:, x.shape[1] - len(QUERY) :] = tokens(QUERY)
        answer_class = {a: c for c, a in enumerate(self.answers)}
        to_class = torch.tensor([answer_class[a] for _, a in PAIRS[: self.n_keys]])
        return x, to_class[key_class].to(torch.uint8)

    def render(self, x: Tensor, y: Tensor) -> list[str]:
        """Readable lines, ``i grew up in france the ... i speak fluent -> french``."""
        return [
            " ".join(self.vocabulary[t] for t in row.tolist()) + " -> " + self.answers[int(c)]
            for row, c in zip(x, y, strict=True)
        ]

    def loss(self, out: Tensor, y: Tensor) -> Tensor:
        return F.cross_entropy(out, y.long())

    def scored_loss(self, out: Tensor, y: Tensor, distance: int) -> Tensor:
        """Summed loss at the scored step, from that step's output ``[batch, n_outputs]``."""
        return F.cross_entropy(out, y.long(), reduction="sum")

    def correct(self, out: Tensor, y: Tensor) -> Tensor:
        """Per-sample 0/1 correctness, ``[batch]``."""
        return (out.argmax(-1) == y.long()).float()

    def chance_accuracy(self, distance: int) -> float:
        return 1 / self.n_keys

    def baseline_loss(self, distance: int) -> float:
        return math.log(self.n_keys)

    def baselines(self, distance: int) -> dict[str, float]:
        """The losses of strategies that do not remember the key, by name."""
        return {"no memory (uniform over the keys)": self.baseline_loss(distance)}


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

    def key_step(self, distance: int) -> int:
        return 0  # the first symbol; the probe scores its recall step

    def scored_step(self, distance: int) -> int:
        return distance

    def sequence_space(self, distance: int) -> float:
        """How many distinct inputs the task has: only the ``copy_length`` symbols vary, so the
        distance does not change it (``math.inf`` past the largest float).
        """
        return _power(self.n_symbols, self.copy_length)

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


@dataclass(frozen=True)
class Adding:
    """The adding problem (Hochreiter & Schmidhuber 1997; Arjovsky et al. 2016).

    Two input channels: values drawn from U[0, 1] and a marker channel holding two 1s. The target,
    read at the last step, is the sum of the two marked values (loss MSE). The sequence has
    ``distance + 1`` steps: the first marker is at step 0, exactly ``distance`` before the scored
    step, the second uniformly in the later half (the classic T is ``distance + 1``, with the first
    marker at the far end of its half). Worked example with distance 3::

        values:  0.31 0.90 0.12 0.55
        markers: 1    0    1    0        -> 0.31 + 0.12 = 0.43

    Predicting 1 scores MSE 1/6 (the variance of a sum of two uniforms); remembering only the
    second value scores 1/12. A sequence counts as correct when the absolute error is below
    ``tolerance``. The default 0.04 is Hochreiter & Schmidhuber's (1997) threshold, but they
    applied it to the target scaled to [0, 1], 0.5 + (X1 + X2) / 4; on this task's raw sum in
    [0, 2] the same 0.04 is four times stricter (theirs is 0.16 here).
    """

    tolerance: float = 0.04

    name: ClassVar[str] = "adding"
    LIMITS: ClassVar[dict] = {"tolerance": {"gt": 0, "lt": 1}}
    min_distance: ClassVar[int] = 2
    readout: ClassVar[str] = "last"
    tokens: ClassVar[bool] = False  # inputs are two float channels
    n_inputs: ClassVar[int] = 2
    n_outputs: ClassVar[int] = 1
    GROW_SPACE: ClassVar[str] = "longer distances"  # never needed: the space is unbounded

    def __post_init__(self) -> None:
        check_limits(self)

    def length(self, distance: int) -> int:
        return distance + 1

    def key_step(self, distance: int) -> int:
        return 0

    def scored_step(self, distance: int) -> int:
        return distance

    def sequence_space(self, distance: int) -> float:
        """``math.inf``: the values are continuous (float32 draws repeat with a chance of about
        2**-24 per value, ``distance + 1`` values a sequence).
        """
        return math.inf

    def generate_bytes(self, distance: int, n: int) -> int:
        """An upper bound on the memory ``generate(distance, n)`` holds at once, its result
        included: float32 values and markers, and the float32 pair they are stacked into.
        """
        return n * (16 * self.length(distance) + 64)

    def generate(self, distance: int, n: int, seed: int) -> tuple[Tensor, Tensor]:
        """``x``: float32 ``[n, distance + 1, 2]`` (value, marker); ``y``: float32 ``[n]``."""
        g = generator(seed)
        length = self.length(distance)
        values = torch.rand(n, length, generator=g)
        low = max(1, math.ceil(length / 2))
        second = torch.randint(low, length, (n,), generator=g)
        markers = torch.zeros(n, length)
        markers[:, 0] = 1.0
        markers[torch.arange(n), second] = 1.0
        y = values[:, 0] + values[torch.arange(n), second]
        return torch.stack([values, markers], dim=-1), y

    def render(self, x: Tensor, y: Tensor) -> list[str]:
        """Readable lines: each step's value, starred where marked, then the target sum."""
        return [
            " ".join(f"{v:.2f}" + ("*" if m else "") for v, m in row.tolist()) + f" -> {t:.3f}"
            for row, t in zip(x, y.tolist(), strict=True)
        ]

    def loss(self, out: Tensor, y: Tensor) -> Tensor:
        return F.mse_loss(out.squeeze(-1), y)

    def scored_loss(self, out: Tensor, y: Tensor, distance: int) -> Tensor:
        return ((out.squeeze(-1) - y) ** 2).sum()

    def correct(self, out: Tensor, y: Tensor) -> Tensor:
        return ((out.squeeze(-1) - y).abs() < self.tolerance).float()

    def chance_accuracy(self, distance: int) -> float:
        """The accuracy of the best strategy without the key: remember only the later value X2
        and predict X2 + 1/2; its error X1 - 1/2 is uniform on [-1/2, 1/2], so it is within the
        tolerance with probability 2 * tolerance.
        """
        return min(1.0, 2 * self.tolerance)

    def baseline_loss(self, distance: int) -> float:
        """MSE of predicting 1 with no memory at all: the variance of a sum of two uniforms."""
        return 1 / 6

    def baselines(self, distance: int) -> dict[str, float]:
        """The losses of strategies that do not remember the first value X1, by name: no memory
        at all (1/6), and remembering only the later value (1/12, the variance of X1): a model
        below 1/12 uses the value at the key step.
        """
        return {"predict 1 (no memory)": 1 / 6, "remember only the later value": 1 / 12}


Task = Recall | Copy | Adding
TASKS: dict[str, type[Task]] = {t.name: t for t in (Recall, Copy, Adding)}
