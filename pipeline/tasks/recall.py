"""France -> French: the recall task, and its vocabulary."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import Tensor

from pipeline.tasks.common import TaskConfig, check_limits, generator, parameter, power

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
    regression: ClassVar[bool] = False  # a class out of several
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

    def paper_t(self, distance: int) -> int | None:
        """The papers' length parameter T at ``distance``: none for this task."""
        return None

    def key_step(self, distance: int) -> int:
        return len(PREFIX)

    def scored_step(self, distance: int) -> int:
        return self.length(distance) - 1

    def sequence_space(self, distance: int) -> float:
        """How many distinct inputs the task has at ``distance``: a key, then ``distance - 3``
        filler words, each free (``math.inf`` past the largest float). ``y`` is a function of
        ``x``, so distinct inputs are distinct samples.
        """
        return self.n_keys * power(self.n_filler, distance - len(QUERY))

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


class RecallConfig(TaskConfig):
    """The recall task's section of an experiment file."""

    GENERATOR: ClassVar[type] = Recall
    task: Literal["recall"] = Field(description="the task")
    n_keys: parameter(Recall, "n_keys", "countries to recall: classes, chance 1/n_keys") = (
        Recall.n_keys
    )
    n_filler: parameter(Recall, "n_filler", "filler words between the key and the question") = (
        Recall.n_filler
    )
