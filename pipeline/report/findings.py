"""What the report says in words: sentences that quote one sweep's numbers, and say where they
contradict the usual story (gated cells outlasting the tanh RNN).
"""

from __future__ import annotations

import math

import pandas as pd

from pipeline.decay import efold
from pipeline.report.results import FINISHED, NO_PROBE, Sweep, median_of, sci, steps_text
from pipeline.report.stats import horizons, parting_distances, success_counts
from pipeline.report.tables import _count


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
