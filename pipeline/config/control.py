"""The shared-settings control: the family verdicts checked at one set of training settings for
every variant, so that a ranking cannot rest on the variants' different tuned settings alone.

The family verdicts compare the cell families (RNN, GRU, LSTM) twice: their PyTorch-default
variants, and each family at its best (the variants with the highest bracket, ties all kept).
Within each comparison the families are ordered by their brackets; a family is ahead of the next
where its variants held at a distance at which the next family's failed with every seed counted
(``lower >= upper``). That distance, the behind family's upper end, is where the verdict is
decided, and there the control trains both families' compared variants at the shared settings
``control`` (a point of the tuning grid's fields) on the evaluation seeds. A pure function of the
brackets, which are a pure function of the result files: the sweep and the report agree.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, StrictInt, model_validator

from pipeline.bounds import Frozen, Number

FAMILIES = ("rnn", "gru", "lstm")  # a variant's family is its cell


class ControlConfig(Frozen):
    """The shared settings every compared variant also trains at where the family verdicts are
    decided: any of the training fields a tuning grid may vary, one value each.
    """

    learning_rate: Number | None = Field(None, description="the shared learning rate")
    optimizer: Literal["adam", "sgd", "rmsprop"] | None = Field(
        None, description="the shared optimizer"
    )
    batch_size: Annotated[StrictInt, Field(ge=1)] | None = Field(
        None, description="the shared batch size"
    )
    grad_clip: Number | None = Field(None, description="the shared gradient clip")

    @model_validator(mode="after")
    def _some(self):
        if not self.point:
            raise ValueError("name at least one shared setting (learning_rate, say)")
        from pipeline.config.training import TrainingConfig

        TrainingConfig(**dict(self.point))  # valid settings, each within its bounds
        return self

    @property
    def point(self) -> tuple[tuple[str, Any], ...]:
        """The shared settings as a grid point, in the field order above."""
        return tuple((k, v) for k, v in self.model_dump().items() if v is not None)


def _key(bracket) -> tuple[float, float]:
    """How far a bracket reaches: its lower end, then its upper end (beyond the cap: highest)."""
    lower = -1 if bracket.lower is None else bracket.lower
    upper = float("inf") if bracket.upper is None else bracket.upper
    return lower, upper


def comparisons(models, brackets: dict) -> list[list[list[str]]]:
    """The two family comparisons as lists of per-family groups of variant names: the PyTorch
    defaults (the first default variant of each family) and each family's best (every variant
    tied at its family's highest bracket). ``models``: the experiment's ``ModelConfig``s;
    ``brackets``: model name -> Bracket. A comparison with fewer than two families is left out.
    """
    out = []
    defaults = {}
    for m in models:
        if m.pytorch_default and m.cell not in defaults:
            defaults[m.cell] = [m.name]
    best = {}
    for cell in FAMILIES:
        mine = [m.name for m in models if m.cell == cell]
        if mine:
            top = max(_key(brackets[name]) for name in mine)
            best[cell] = [name for name in mine if _key(brackets[name]) == top]
    for groups in (defaults, best):
        if len(groups) >= 2:
            out.append([groups[cell] for cell in FAMILIES if cell in groups])
    return out


def decided(groups: list[list[str]], brackets: dict) -> list[tuple[list[str], list[str], int]]:
    """The adjacent pairs of a comparison that the brackets separate, best first: (the group
    ahead, the group behind, the distance deciding it: the behind group's upper end).
    """
    ranked = sorted(groups, key=lambda g: _key(brackets[g[0]]), reverse=True)
    out = []
    for ahead, behind in zip(ranked, ranked[1:], strict=False):
        a, b = brackets[ahead[0]], brackets[behind[0]]
        if a.lower is not None and b.upper is not None and a.lower >= b.upper:
            out.append((ahead, behind, b.upper))
    return out


def deciding_cells(models, brackets: dict) -> list[tuple[str, int]]:
    """Every (variant, distance) the control trains at: both sides of every decided pair of both
    comparisons, at the pair's deciding distance; empty while any bracket is unknown (None).
    """
    if any(b is None for b in brackets.values()):
        return []
    cells = set()
    for groups in comparisons(models, brackets):
        for ahead, behind, distance in decided(groups, brackets):
            cells |= {(name, distance) for name in ahead + behind}
    return sorted(cells, key=lambda c: (c[1], [m.name for m in models].index(c[0])))
