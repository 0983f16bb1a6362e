"""What the report knows about one experiment: the ``Readout`` (read once by ``collect``) and how
its numbers are written everywhere in the report.

The stages below read a ``Readout`` and nothing else: ``stats`` (counts, horizons), ``tables``,
``findings`` (sentences) and ``figures``; none touches MLflow or files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from pipeline.config import Experiment
from pipeline.decay import GEOMETRIC_R2, efold
from pipeline.status import FINISHED
from pipeline.tasks import TASKS

PHASES, STATES = ("init", "final"), ("h", "c")
# the probe's summaries per phase and state (probe.py), as result-file keys probe_<phase>_<state>_*
PROBE_STATS = (
    "key_share", "key_share_q25", "key_share_q75", "rho", "rho_r2", "efold", "jacobian_key",
)  # fmt: skip
NO_PROBE = "no probe data"
# below this many runs an interval estimate (Kaplan-Meier's, a band over seeds) claims more than
# the runs hold: the report gives each value, or the range, with n instead
FEW_RUNS = 10
# the mechanism's measures (mechanism.metrics without its mech/ prefix), as result-file keys
# mech_<phase>_* and columns of probe_summary.csv: W's blocks per cell (rnn: W; lstm: W_i, W_f,
# W_g, W_o; gru: W_r, W_z, W_n), then the keep gate's time constants (lstm: f; gru: z); written
# out here because the report imports no torch (a test holds them to mechanism.metrics)
MECH_BLOCKS = ("W", "W_i", "W_f", "W_g", "W_o", "W_r", "W_z", "W_n")
KEEP_GATES = {"lstm": "f", "gru": "z"}
MECH_MEASURES = (
    *(f"{block}_{s}" for block in MECH_BLOCKS for s in ("radius", "sv")),
    *(f"{gate}_tau_{s}" for gate in KEEP_GATES.values() for s in ("median", "max", "share")),
)


@dataclass
class Readout:
    """What the report read back of one experiment's sweep: everything it shows, read once.

    ``runs``: one row per planned evaluation run (``reading.RESULT_COLUMNS``), the report's
    subject. ``tuning``: one row per tuning run, and ``selections`` what tuning chose (empty
    without tuning). ``curves``: rows of the runs' ``probe.csv`` artifacts with the run's
    identity. ``history``: long format (identity, metric, step, value) of
    ``reading.HISTORIES``. ``commits``: code commits the finished runs were trained at.
    ``probe_summary``: rows of the runs' ``probe_summary.csv`` artifacts (one per probe taken:
    phase, step, the probe's summaries and the mechanism's measures, ``MECH_MEASURES``) with the
    run's identity; empty where no run has one.
    """

    exp: Experiment
    experiment_id: str
    tracking_uri: str
    runs: pd.DataFrame
    curves: pd.DataFrame
    history: pd.DataFrame
    commits: list[str] = field(default_factory=list)
    tuning: pd.DataFrame | None = None  # rows of the tuning runs (same columns as ``runs``)
    selections: list = field(default_factory=list)  # tuning.Selection per (task, variant)
    # the sweep's parent run that the finished runs nest under (None: they nest under none), and
    # the code version most of them were trained with
    parent_run: str | None = None
    code_version: str | None = None
    # per (task, model), where its staircase put its memory horizon (``staircase.Bracket``);
    # None while its plan is incomplete; empty without a staircase
    brackets: dict = field(default_factory=dict)
    # rows of the control runs (same columns as ``runs``): the shared settings where the family
    # verdicts are decided; None without a control
    control: pd.DataFrame | None = None
    probe_summary: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def finished(self) -> pd.DataFrame:
        return self.runs[self.runs["status"].isin(FINISHED)]

    @property
    def models(self) -> list[str]:
        return [m.name for m in self.exp.models]

    @property
    def tasks(self) -> list[str]:
        return [t.task for t in self.exp.tasks]

    @property
    def regression_tasks(self) -> list[str]:
        """The tasks whose output is a number scored by squared error (the adding problem)."""
        return [t.task for t in self.exp.tasks if TASKS[t.task].regression]

    def probed(self, task: str) -> pd.DataFrame:
        """The finished runs of ``task`` that have probe data."""
        runs = self.finished
        return runs[(runs["task"] == task) & runs["probe_data"]]


def baselines_at(sweep: Readout, task: str, distance: int) -> dict[str, float]:
    """The losses of the task's memoryless strategies at ``distance``, by name (the task's own
    ``baselines``; for the adding task: no memory first, then remembering one value).
    """
    return next(t for t in sweep.exp.tasks if t.task == task).build().baselines(distance)


def clip_words(t) -> str:
    """How a run's update was clipped (``TrainingConfig``), as the report says it."""
    if t.grad_clip is None:
        return "not clipped"
    if t.clip_mode == "value":
        return f"each element clamped to [-{t.grad_clip:g}, {t.grad_clip:g}]"
    return f"clipped to global L2 norm {t.grad_clip:g}"


def optimizer_words(t) -> str:
    """``rmsprop (decay 0.9), learning rate 0.001``."""
    decay = f" (decay {t.rmsprop_decay:g})" if t.rmsprop_decay is not None else ""
    return f"{t.optimizer}{decay}, learning rate {t.learning_rate:g}"


def median_of(runs: pd.DataFrame, column: str) -> float:
    """Median of ``column`` over the runs that have it (nan when none does)."""
    values = pd.to_numeric(runs[column], errors="coerce").dropna()
    return float(values.median()) if len(values) else math.nan


def values_of(runs: pd.DataFrame, column: str) -> pd.Series:
    """``column`` as numbers, over the runs that have it."""
    return pd.to_numeric(runs[column], errors="coerce").dropna()


def num(x: float | None) -> str:
    """A measured number as the report writes it everywhere: three significant digits, plain
    where a plain number fits (``0.0342``, ``1.00``, ``154``, ``12,300``) and in scientific
    notation only outside [0.001, 1,000,000) (``2.31e-07``); ``n/a`` where there is none.
    """
    if x is None or (isinstance(x, float) and math.isnan(x)) or pd.isna(x):
        return "n/a"
    x = float(x)
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    if x == 0:
        return "0"
    rounded = float(f"{x:.3g}")  # to three significant digits first: 0.9996 is 1.00
    if not 1e-3 <= abs(rounded) < 1e6:
        return f"{x:.2e}"
    decimals = 2 - math.floor(math.log10(abs(rounded)))
    return f"{rounded:.{decimals}f}" if decimals > 0 else f"{round(rounded):,}"


def spread_text(values: pd.Series, fmt=num) -> str:
    """``0.0342 (range 0.0100 to 0.0500, n=3)``: a median with its range over runs."""
    if values.empty:
        return "n/a"
    if len(values) == 1:
        return f"{fmt(values.iloc[0])} (n=1)"
    return (
        f"{fmt(values.median())} (range {fmt(values.min())} to {fmt(values.max())}, "
        f"n={len(values)})"
    )


def distance_text(d: float) -> str:
    """A fitted distance: ``28``, ``4.5``, ``1,590`` (three significant digits from 1,000)."""
    if d >= 1000:
        return num(d)
    return f"{d:.0f}" if d >= 10 else f"{d:.1f}"


def steps_text(x: float) -> str:
    """An e-folding length in steps: ``12.3``, ``∞`` when the gradient does not shrink."""
    if x is None or math.isnan(x):
        return "n/a"
    return "∞" if math.isinf(x) else f"{x:.1f}"


def efold_text(rho: float, r2: float, window: int) -> str:
    """An e-folding length as the report prints it: only where the curve is geometric, and not
    as a number where it exceeds the ``window`` (steps) it was fitted over: less than one e-fold
    inside the window is too little to measure a length.
    """
    if not r2 >= GEOMETRIC_R2:
        return f"not geometric (R² {r2:.2f}), no single decay rate"
    length = efold(rho)
    fit = f"rho {rho:.3f}, R² {r2:.2f}"
    if length > window:
        return f"longer than the {window}-step window, less than one e-fold inside it ({fit})"
    return f"{steps_text(length)} steps ({fit})"


def init_setting(exp: Experiment, model: str) -> str:
    """``hidden 64, forget_bias 1``: a model's size and initialisation, as the report names it."""
    m = next(m for m in exp.models if m.name == model)
    return f"hidden {m.hidden_size or exp.hidden_size}, {m.describe_init()}"


def is_unprobed(runs: pd.DataFrame) -> pd.Series:
    """Per run: finished, but without probe data."""
    return runs["status"].isin(FINISHED) & ~runs["probe_data"]
