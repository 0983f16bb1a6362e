"""Published claims that an experiment reproduces: the ``claim`` block of a replication file.

A replication file (``experiments/replications/<name>.yaml``) is an ordinary experiment file
with one task, plus a ``claim`` block that holds the published claim: its citation, the
statement in the paper's words, the paper's setting and where ours differs, whether the claim
could be confirmed from the paper itself, machine-checkable expectations, and the parts of it that
a smaller machine can run::

    claim:
      citation: "Arjovsky, Shah & Bengio (2016). Unitary evolution recurrent neural networks."
      statement: "LSTM ... convincingly beat the baseline ..."
      setting: "RMSProp, learning rate 1e-3, decay 0.9, ..."
      differences: ["their LSTM has a peephole from the cell to the output gate; ours has none"]
      verified: true
      unverified: ["which batch size (20 or 50) each published curve used"]
      budget: "3,000 updates, a tenth of the paper's ~30,000"
      expect:
        - {model: lstm, metric: test_loss, op: "<", value: 0.01, over: median,
           published: "convincingly beats the 0.167 baseline"}
      observe:
        - {model: lstm, metric: steps_to_solve, published: "not stated in numbers"}
      parts:
        t100:
          settings: {"tasks[0].distances": [99], "training.max_steps": 10000}
          budget: "10,000 updates, a third of the paper's ~30,000"
          shows: "whether the LSTM beats the baseline at T = 100 ..."
          cannot_show: "the claim at T = 200 and 400 ..."

Each expectation is checked per distance (``distances``, default every distance of the task)
on the runs of every planned seed, combined ``over`` the seeds: ``median`` (the median seed's
value), ``all`` (every seed; the worst seed decides) or ``any`` (some seed; the best decides).
``observe`` entries are measured and shown beside the published number, never checked.
``pipeline.report.checks`` decides the verdicts; this module only states and validates.
Metrics are result-file fields (``METRICS``); a run that lacks one (a diverged run's loss, an
unsolved run's steps to solve) counts as the metric's worst value.

A part (``parts``) is the claim's own experiment with some settings changed, as ``make run-all
SET="path=value ..."`` changes them (``config.derive.part``), sized for a machine that the whole
claim is too long for: a shorter length, fewer updates. It is named ``<claim>.<part>`` and judged
by the claim's own checks, those of the models and distances it keeps; its verdict stands beside
the claim's, which stays "not run" until the claim itself runs. It says what it can and cannot
show of the claim (``shows``, ``cannot_show``), and where it trains less than the paper, by how
much (``budget``, in place of the claim's).
"""

from __future__ import annotations

import math
import statistics
from typing import Annotated, Literal

from pydantic import Field, StrictBool, StrictInt, model_validator

from pipeline.bounds import Frozen, Number

# metric -> (what the report calls it, the value of a run without it: the worst)
METRICS: dict[str, tuple[str, float]] = {
    "test_loss": ("test loss", math.inf),
    "test_accuracy": ("test accuracy", 0.0),
    # test_loss / the task's memoryless baseline loss: 1 is the memoryless strategy's loss at
    # any length (the copy task's baseline falls with T)
    "baseline_ratio": ("test loss / memoryless baseline", math.inf),
    "best_val_loss": ("best validation loss", math.inf),
    "best_val_accuracy": ("best validation accuracy", 0.0),
    "steps_to_solve": ("updates to solve", math.inf),
    # steps_to_solve x the batch size: comparable with papers that count training sequences
    "sequences_to_solve": ("training sequences to solve", math.inf),
}
OPS = ("<", "<=", ">", ">=")
OVER = ("median", "all", "any")

Text = Annotated[str, Field(min_length=1, max_length=2000)]


class Observation(Frozen):
    """A metric measured on one model's runs and shown beside the published number."""

    model: Annotated[str, Field(min_length=1)] = Field(description="a model of the experiment")
    metric: Literal[tuple(METRICS)] = Field(description="a result-file field, measured per run")
    distances: Annotated[list[StrictInt], Field(min_length=1)] | None = Field(
        None, description="the distances to measure at; null: every distance of the claim's task"
    )
    published: Text = Field(description="the published number or words this stands beside")

    def label(self) -> str:
        """``lstm: updates to solve``."""
        return f"{self.model}: {METRICS[self.metric][0]}"


class Expectation(Observation):
    """A check: the metric, combined ``over`` the seeds, compared with ``value`` by ``op``."""

    op: Literal[OPS] = Field(description="how the combined value compares with value")
    value: Number = Field(description="the threshold")
    over: Literal[OVER] = Field(
        "median",
        description="how the seeds' values combine: median (the median seed), all (the worst "
        "seed decides) or any (the best seed decides)",
    )

    def label(self) -> str:
        """``lstm: test loss < 0.01 (median over seeds)``."""
        seeds = {"median": "median over seeds", "all": "every seed", "any": "some seed"}
        return f"{super().label()} {self.op} {self.value:g} ({seeds[self.over]})"

    def holds(self, measured: float) -> bool:
        """Whether the combined value ``measured`` passes the check."""
        return {
            "<": measured < self.value,
            "<=": measured <= self.value,
            ">": measured > self.value,
            ">=": measured >= self.value,
        }[self.op]

    def combine(self, values: list[float]) -> float:
        """The seeds' values as one number: their median, or the seed that decides ``all``
        (the worst for the check) or ``any`` (the best).
        """
        ordered = sorted(values)
        if self.over == "median":
            return statistics.median(ordered)
        lower_passes = self.op in ("<", "<=")
        worst = ordered[-1] if lower_passes else ordered[0]
        best = ordered[0] if lower_passes else ordered[-1]
        return worst if self.over == "all" else best


# a part's name ends its experiment's name, ``<claim>.<part>``: a file and folder name
PartName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]*$", max_length=32)]


class Part(Frozen):
    """A smaller run of the claim's experiment: ``settings`` as ``make run-all SET=...`` takes
    them (``{"tasks[0].distances": [110], "training.max_steps": 10000}``), what its verdict can
    and cannot show of the claim, and its budget where it trains less than the paper.
    """

    settings: Annotated[dict[str, object], Field(min_length=1)] = Field(
        description="what the part changes: dotted paths to values, as make run-all SET= takes"
    )
    shows: Text = Field(description="what the part's verdict can show of the published claim")
    cannot_show: Text = Field(description="what it cannot show of the claim")
    # every verdict of the part carries it
    budget: Text | None = Field(
        None, description="in place of the claim's: where the part trains less than the paper"
    )


class Claim(Frozen):
    """A published claim, where it comes from, and how a replication decides it."""

    citation: Text = Field(description="the paper: authors, year, title")
    statement: Text = Field(
        description="the published claim, in the paper's words where they could be confirmed"
    )
    setting: Text = Field(
        description="the paper's own setting, as exactly as it could be established"
    )
    differences: list[Text] = Field(
        [], description="where this replication's setting differs from the paper's"
    )
    verified: StrictBool = Field(
        description="whether the claim's numbers were confirmed from the paper itself"
    )
    unverified: list[Text] = Field(
        [], description="what could not be confirmed from the paper itself"
    )
    # every verdict carries it: a claim that a model fails to learn is weaker on a smaller budget
    budget: Text | None = Field(
        None,
        description="where this training budget is smaller than the paper's: by how much",
    )
    caveats: list[Text] = Field(
        [],
        description="what is known outside the checks that weakens their verdict (a longer run, "
        "a variant that failed where the checked one passed); every verdict carries it",
    )
    expect: Annotated[list[Expectation], Field(min_length=1)] = Field(
        description="the checks that decide the verdict, each per distance"
    )
    observe: list[Observation] = Field(
        [], description="metrics measured and shown beside the published number, never checked"
    )
    parts: dict[PartName, Part] = Field(
        {},
        description="parts sized for this machine: each the claim's experiment with some "
        "settings changed, checked by the claim's checks on what it runs, with its own verdict",
    )

    @property
    def authors(self) -> str:
        """``Arjovsky, M., Shah, A. & Bengio, Y. (2016)``: the citation up to its year."""
        head, year, _ = self.citation.partition(")")
        return head + year if year else self.citation[:60]

    @model_validator(mode="after")
    def _unverified_says_what(self):
        if not self.verified and not self.unverified:
            raise ValueError(
                "unverified: a claim with verified: false lists what could not be confirmed "
                "(got [])"
            )
        return self

    def problems(self, models: list[str], distances: list[int]) -> str | None:
        """The first expectation or observation that names a model or distance the experiment
        lacks, as ``expect[1].model: ...``; None when every one fits.
        """
        for kind in ("expect", "observe"):
            for i, entry in enumerate(getattr(self, kind)):
                if entry.model not in models:
                    return (
                        f"{kind}[{i}].model: no model {entry.model!r} in this experiment "
                        f"(models: {', '.join(models)})"
                    )
                for d in entry.distances or ():
                    if d not in distances:
                        return (
                            f"{kind}[{i}].distances: {d} is not a distance of the claim's task "
                            f"({', '.join(map(str, distances))})"
                        )
        return None
