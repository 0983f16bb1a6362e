"""What the report says in words: its tables and its findings, written from one sweep's numbers.

Owns the ``Sweep`` (everything the report shows, read once by ``report.collect``), the numbers
the tables and sentences share (seeds solved per distance, memory horizons, medians, e-folding
lengths), how they are written (``sci``, ``steps_text``), the tables, and the findings: sentences
that quote those numbers and say where they contradict the usual story.

It reads a ``Sweep`` and nothing else (no MLflow, no files, no figures); ``figures`` and
``report`` import from here, never the other way round.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from pipeline.config import Experiment

FINISHED = ("solved", "unsolved", "diverged")
PHASES, STATES = ("init", "final"), ("h", "c")
NO_PROBE = "no probe data"


@dataclass
class Sweep:
    """Everything the report shows, read once.

    ``runs``: one row per planned run (``report.RESULT_COLUMNS``). ``curves``: rows of the runs'
    ``probe.csv`` artifacts with the run's identity. ``history``: long format (identity, metric,
    step, value) of ``report.HISTORIES``. ``commits``: code commits the finished runs were
    trained at.
    """

    exp: Experiment
    experiment_id: str
    tracking_uri: str
    runs: pd.DataFrame
    curves: pd.DataFrame
    history: pd.DataFrame
    commits: list[str] = field(default_factory=list)

    @property
    def finished(self) -> pd.DataFrame:
        return self.runs[self.runs["status"].isin(FINISHED)]

    @property
    def models(self) -> list[str]:
        return [m.name for m in self.exp.models]

    @property
    def tasks(self) -> list[str]:
        return [t.task for t in self.exp.tasks]

    def probed(self, task: str) -> pd.DataFrame:
        """The finished runs of ``task`` that have probe data."""
        runs = self.finished
        return runs[(runs["task"] == task) & runs["probe_data"]]


# ---- numbers: horizons, decay, shares -----------------------------------------------------


def success_counts(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (task, model, distance): runs ``solved``, ``finished`` and ``planned`` (seeds)."""
    flags = runs.assign(
        is_solved=runs["status"] == "solved", is_finished=runs["status"].isin(FINISHED)
    )
    return (
        flags.groupby(["task", "model", "distance"], sort=False)
        .agg(
            solved=("is_solved", "sum"),
            finished=("is_finished", "sum"),
            planned=("status", "size"),
        )
        .reset_index()
    )


def _holds(counts: pd.DataFrame) -> pd.Series:
    """Per row of ``counts``: solved in at least half the planned seeds (missing: not solved)."""
    return (counts["solved"] > 0) & (2 * counts["solved"] >= counts["planned"])


def horizons(counts: pd.DataFrame) -> dict[tuple[str, str], int | None]:
    """Memory horizon per (task, model): the largest distance solved in at least half of the
    planned seeds (a missing run counts as not solved); None where no distance was.
    """
    held = counts[_holds(counts)]
    out: dict[tuple[str, str], int | None] = {
        (t, m): None for t, m in counts[["task", "model"]].itertuples(index=False)
    }
    for (task, model), group in held.groupby(["task", "model"], sort=False):
        out[(task, model)] = int(group["distance"].max())
    return out


def parting_distances(counts: pd.DataFrame) -> dict[int, list[str]]:
    """Where the models part ways: each distance at which some model holds the dependency
    (solved in at least half its seeds) and another does not, and the set that holds differs
    from the distance before; mapped to the models that do not hold there but did before (or,
    at the first distance, that do not hold). When the models never part: the largest distance,
    mapped to no model.
    """
    holding = counts[_holds(counts)].groupby("distance")["model"].agg(frozenset)
    models = frozenset(counts["model"])
    out, before = {}, models
    for d in sorted(counts["distance"].unique()):
        now = holding.get(d, frozenset())
        if now and now != models and now != before:
            out[int(d)] = sorted(before - now) or sorted(models - now)
        before = now
    return out or {int(counts["distance"].max()): []}


def median_of(runs: pd.DataFrame, column: str) -> float:
    """Median of ``column`` over the runs that have it (nan when none does)."""
    values = pd.to_numeric(runs[column], errors="coerce").dropna()
    return float(values.median()) if len(values) else math.nan


def efold(rho: float) -> float:
    """Steps for the gradient to shrink by e, -1 / ln(rho); inf when it does not shrink."""
    if rho is None or not math.isfinite(rho) or rho <= 0:
        return math.nan
    return math.inf if rho >= 1 else -1 / math.log(rho)


def sci(x: float) -> str:
    """A gradient share as the report writes it everywhere: ``3.4e-02``."""
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.1e}"


def steps_text(x: float) -> str:
    """An e-folding length in steps: ``12.3``, ``∞`` when the gradient does not shrink."""
    if x is None or math.isnan(x):
        return "n/a"
    return "∞" if math.isinf(x) else f"{x:.1f}"


def init_setting(exp: Experiment, model: str) -> str:
    """``hidden 64, forget_bias 1``: a model's size and initialisation, as the report names it."""
    m = next(m for m in exp.models if m.name == model)
    size = m.hidden_size or exp.hidden_size
    if m.cell != "lstm":
        return f"hidden {size}, PyTorch default init"
    if m.chrono_t_max is not None:
        return f"hidden {size}, chrono init (t_max {m.chrono_t_max})"
    bias = 1.0 if m.forget_bias is None else m.forget_bias
    return f"hidden {size}, forget_bias {bias:g}"


def _unprobed(runs: pd.DataFrame) -> pd.Series:
    """Per run: finished, but without probe data."""
    return runs["status"].isin(FINISHED) & ~runs["probe_data"]


# ---- tables ----------------------------------------------------------------------------------


def horizon_table(sweep: Sweep, task: str) -> pd.DataFrame:
    """Per model: init, memory horizon with its seed count, and solved/planned per distance."""
    counts = success_counts(sweep.runs[sweep.runs["task"] == task])
    held = horizons(counts)
    rows = []
    for model in sweep.models:
        mine = counts[counts["model"] == model].set_index("distance")
        h = held[(task, model)]
        row = {
            "model": model,
            "cell": sweep.runs.loc[sweep.runs["model"] == model, "cell"].iloc[0],
            "init": init_setting(sweep.exp, model),
            "memory horizon": "none" if h is None else f"{h} ({_count(mine.loc[h])} seeds)",
        }
        row |= {f"d={d}": _count(c) for d, c in mine.iterrows()}
        rows.append(row)
    return pd.DataFrame(rows)


def _count(c) -> str:
    """``2/3``: seeds solved of planned, with those that did not finish: ``1/3 (1 unfinished)``."""
    text = f"{int(c['solved'])}/{int(c['planned'])}"
    unfinished = int(c["planned"] - c["finished"])
    return text + (f" ({unfinished} unfinished)" if unfinished else "")


def decay_table(sweep: Sweep, task: str) -> pd.DataFrame:
    """Per model and state: fitted decay rho and e-folding length, init and after training,
    median over the task's probed runs.
    """
    runs = sweep.probed(task)
    rows = []
    for model in sweep.models:
        mine = runs[runs["model"] == model]
        for state in STATES:
            if mine.empty or mine[f"probe_init_{state}_rho"].isna().all():
                continue
            row = {"model": model, "state": state, "probed runs": len(mine)}
            for phase, label in (("init", "at init"), ("final", "after training")):
                rho = median_of(mine, f"probe_{phase}_{state}_rho")
                row[f"rho {label}"] = f"{rho:.3f}" if math.isfinite(rho) else "n/a"
                row[f"e-fold {label} (steps)"] = steps_text(efold(rho))
            rows.append(row)
    return pd.DataFrame(rows)


def share_table(sweep: Sweep, task: str) -> pd.DataFrame:
    """Per model and state: median key share per distance, ``init -> after training``."""
    runs = sweep.probed(task)
    rows = []
    for model in sweep.models:
        mine = runs[runs["model"] == model]
        for state in STATES:
            if mine.empty or mine[f"probe_init_{state}_key_share"].isna().all():
                continue
            row = {"model": model, "state": state}
            for d, at in mine.groupby("distance"):
                init = median_of(at, f"probe_init_{state}_key_share")
                final = median_of(at, f"probe_final_{state}_key_share")
                row[f"d={d}"] = f"{sci(init)} → {sci(final)}"
            rows.append(row)
    return pd.DataFrame(rows)


def problem_table(sweep: Sweep) -> pd.DataFrame:
    """Every run that did not finish cleanly, and every finished run without probe data."""
    runs = sweep.runs
    bad = runs[(runs["status"] != "solved") & (runs["status"] != "unsolved")].copy()
    unprobed = runs[_unprobed(runs)].copy()
    unprobed["note"] = [NO_PROBE if pd.isna(n) else f"{n}; {NO_PROBE}" for n in unprobed["note"]]
    both = pd.concat([bad, unprobed[~unprobed.index.isin(bad.index)]]).sort_index()
    return both[["run_key", "status", "note", "run_id"]].fillna("")


def runs_table(sweep: Sweep) -> pd.DataFrame:
    """Every run, readable: accuracy, steps and key shares (or why there are none)."""
    runs = sweep.runs
    table = runs[["task", "model", "distance", "seed", "status"]].copy()
    table["test accuracy"] = runs["test_accuracy"].map(lambda v: "" if pd.isna(v) else f"{v:.3f}")
    table["steps"] = runs["steps"].astype("string").fillna("")
    table["steps to solve"] = runs["steps_to_solve"].astype("string").fillna("")
    unprobed = _unprobed(runs)
    for phase in PHASES:
        shares = runs[f"probe_{phase}_h_key_share"].map(lambda v: "" if pd.isna(v) else sci(v))
        table[f"key share h {phase}"] = shares.where(~unprobed, NO_PROBE)
    table["run_id"] = runs["run_id"].fillna("")
    return table


# ---- findings ------------------------------------------------------------------------------


def findings(sweep: Sweep) -> list[str]:
    """Sentences written from this run's numbers; where the data contradict the usual story
    (gated cells outlasting the tanh RNN), they say so.
    """
    out = [_outcome_counts(sweep.runs)]
    for task in sweep.tasks:
        counts = success_counts(sweep.runs[sweep.runs["task"] == task])
        held = horizons(counts)
        prefix = f"{task}: " if len(sweep.tasks) > 1 else ""
        out += [prefix + _model_sentence(counts, held, model) for model in sweep.models]
        out.append(prefix + _ranking(held, task, sweep))
        out += [prefix + s for s in _gradient_sentences(sweep, task, counts)]
    return out


def _outcome_counts(runs: pd.DataFrame) -> str:
    n = runs["status"].value_counts()
    finished = int(n.reindex(list(FINISHED), fill_value=0).sum())
    text = (
        f"{finished} of {len(runs)} planned runs finished: {n.get('solved', 0)} solved, "
        f"{n.get('unsolved', 0)} unsolved, {n.get('diverged', 0)} diverged."
    )
    other = {s: int(n[s]) for s in ("failed", "stale", "missing") if n.get(s, 0)}
    if other:
        text += " Not finished: " + ", ".join(f"{c} {s}" for s, c in other.items())
        text += " (listed under Problem runs)."
    return text


def _model_sentence(counts: pd.DataFrame, held: dict, model: str) -> str:
    """One model's outcome on one task (``counts`` and its ``horizons``, ``held``)."""
    mine = counts[counts["model"] == model]
    if (mine["solved"] == mine["planned"]).all():
        n = int(mine["planned"].max())
        return f"{model} solved every distance up to {mine['distance'].max()} in {n}/{n} seeds."
    horizon = held[(mine["task"].iloc[0], model)]
    per = ", ".join(f"{c.distance}: {_count(c._asdict())}" for c in mine.itertuples(index=False))
    verdict = (
        f"{model} solved no distance in at least half its seeds."
        if horizon is None
        else f"{model} held the dependency up to distance {horizon}."
    )
    return f"{verdict} Seeds solved per distance: {per}."


def _ranking(held: dict, task: str, sweep: Sweep) -> str:
    """Models ordered by memory horizon, and the LSTM-versus-RNN verdict in plain words."""
    horizon = {m: held[(task, m)] or 0 for m in sweep.models}
    order = sorted(sweep.models, key=lambda m: -horizon[m])
    text = (
        "Memory horizon by model: " + ", ".join(f"{m} {horizon[m] or 'none'}" for m in order) + "."
    )
    cells = sweep.runs.drop_duplicates("model").set_index("model")["cell"]
    lstm = [m for m in sweep.models if cells[m] == "lstm"]
    rnn = [m for m in sweep.models if cells[m] == "rnn"]
    if lstm and rnn:
        best_lstm = max(lstm, key=lambda m: horizon[m])
        best_rnn = max(rnn, key=lambda m: horizon[m])
        a, b = horizon[best_lstm], horizon[best_rnn]
        if a > b:
            text += f" The LSTM beat the RNN: {best_lstm} reached {a}, {best_rnn} {b or 'none'}."
        elif a == b:
            text += (
                f" The LSTM did not beat the RNN in this run: {best_lstm} and {best_rnn} both "
                f"reached {a or 'no distance'}."
            )
        else:
            text += (
                f" The LSTM did not beat the RNN in this run: {best_rnn} reached {b}, the best "
                f"LSTM ({best_lstm}) only {a or 'none'}."
            )
    return text


def _gradient_sentences(sweep: Sweep, task: str, counts: pd.DataFrame) -> list[str]:
    runs = sweep.probed(task)
    if runs.empty:
        return ["No run of this task has probe data, so the gradient cannot be compared."]
    out = []
    for d, lost in parting_distances(counts).items():
        at = runs[runs["distance"] == d]
        where = f", where {' and '.join(lost)} stopped solving," if lost else ""
        out.append(
            f"At distance {d}{where} the share of the output step's gradient that reached the "
            f"key step (median over seeds) was, before training: {_shares(sweep, at, 'init')}; "
            f"after training: {_shares(sweep, at, 'final')}."
        )
    out.append(_decay_sentence(sweep, runs))
    out.append(_share_predicts(runs))
    return out


def _shares(sweep: Sweep, at: pd.DataFrame, phase: str) -> str:
    """``1.2e-07 for rnn, 6.1e-02 for lstm (cell state c: 8.0e-01)``: medians of the runs ``at``."""
    parts = []
    for model in sweep.models:
        mine = at[at["model"] == model]
        if mine.empty:
            parts.append(f"{NO_PROBE} for {model}")
            continue
        part = f"{sci(median_of(mine, f'probe_{phase}_h_key_share'))} for {model}"
        c = median_of(mine, f"probe_{phase}_c_key_share")
        if math.isfinite(c):
            part += f" (cell state c: {sci(c)})"
        parts.append(part)
    return ", ".join(parts)


def _decay_sentence(sweep: Sweep, runs: pd.DataFrame) -> str:
    parts = []
    for model in sweep.models:
        mine = runs[runs["model"] == model]
        if mine.empty:
            continue
        rho = median_of(mine, "probe_init_h_rho")
        part = f"every {steps_text(efold(rho))} steps for {model} (rho {rho:.3f}"
        c = median_of(mine, "probe_init_c_rho")
        if math.isfinite(c):
            part += f"; cell state c every {steps_text(efold(c))}, rho {c:.3f}"
        parts.append(part + ")")
    return (
        "At initialisation the hidden-state gradient shrank by a factor e "
        + ", ".join(parts)
        + " (fitted per-step decay, median over runs)."
    )


def _share_predicts(runs: pd.DataFrame) -> str:
    """Does the initial key share separate the runs that learned from those that did not?"""
    solved = median_of(runs[runs["status"] == "solved"], "probe_init_h_key_share")
    not_solved = median_of(runs[runs["status"] != "solved"], "probe_init_h_key_share")
    if not (math.isfinite(solved) and math.isfinite(not_solved)):
        return "Every probed run ended the same way, so the key share cannot separate outcomes."
    verdict = (
        "a larger share went with learning the dependency"
        if solved > not_solved
        else "the share at initialisation did not predict which runs learned"
    )
    return (
        f"Runs that solved their distance started with a median key share of {sci(solved)}, "
        f"runs that did not with {sci(not_solved)}: {verdict}."
    )
