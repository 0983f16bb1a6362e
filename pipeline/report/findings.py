"""What the report says in words: sentences that quote one sweep's numbers, each with its n.

Every sentence is computed from the sweep (``tests/test_report.py`` builds sweeps with opposite
outcomes and checks that the sentences change with them); where the data cannot decide a
question, the sentence says that instead of an answer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from pipeline.decay import GEOMETRIC_R2
from pipeline.report import ranking
from pipeline.report.compare import ALPHA, share_against_outcome, smallest_p, stratified
from pipeline.report.results import (
    FINISHED,
    NO_PROBE,
    Readout,
    baselines_at,
    efold_text,
    num,
    spread_text,
    values_of,
)
from pipeline.report.stats import fit_d50, horizons, parting_distances, success_counts
from pipeline.report.survival import survival_table
from pipeline.report.tables import count_text, d50_text, horizon_text, short_bracket, survival_text
from pipeline.report.verdict import verdicts
from pipeline.status import UNFINISHED


def findings(sweep: Readout) -> list[str]:
    """Every finding, in the report's order: the results, then the appendix's detail."""
    out = []
    for task in sweep.tasks:
        out += outcome_findings(sweep, task) + gradient_findings(sweep, task)
        out += detail_findings(sweep, task)
    return out


def _prefix(sweep: Readout, task: str) -> str:
    return f"{task}: " if len(sweep.tasks) > 1 else ""


def outcome_findings(sweep: Readout, task: str) -> list[str]:
    """The results on ``task``: runs finished, each variant's horizon (and exponent), the
    ranking, the family verdicts (with the control where there is one), the adding task's error.
    """
    runs = sweep.runs[sweep.runs["task"] == task]
    prefix = _prefix(sweep, task)
    out = [prefix + _outcome_counts(runs)]
    if sweep.brackets:
        out += [prefix + s for s in _staircase_sentences(sweep, task)]
    else:
        counts = success_counts(runs)
        out.append(prefix + _ranking(counts, task, sweep))
        out += [prefix + s for s in verdicts(sweep, task)]
    if task in sweep.regression_tasks:
        out.append(prefix + _mse_sentence(sweep, task))
    return out


def gradient_findings(sweep: Readout, task: str) -> list[str]:
    """What the gradient shows on ``task``: whether the initial share orders the horizons, the
    exploding regime where the numbers show one, and the within-model comparison of seeds.
    """
    runs = sweep.probed(task)
    prefix = _prefix(sweep, task)
    out = [prefix + _exploding(sweep, task)]
    if runs.empty:
        return [prefix + "No run of this task has probe data, so the gradient cannot be compared."]
    out.insert(0, prefix + _initial_share_against_horizon(sweep, task))
    out.append(prefix + _within_models(runs))
    return out


def detail_findings(sweep: Readout, task: str) -> list[str]:
    """The appendix's detail on ``task``: seeds solved per distance, the key share at every
    distance where the variants part, the decay rates, the pooled comparisons, time to solve.
    """
    runs = sweep.runs[sweep.runs["task"] == task]
    counts = success_counts(runs)
    prefix = _prefix(sweep, task)
    out = [prefix + _model_sentence(sweep, counts, model) for model in sweep.models]
    if not sweep.probed(task).empty:
        out += [prefix + s for s in _gradient_sentences(sweep, task, counts)]
    out += [prefix + s for s in _steps_sentences(sweep, task)]
    return out


def _outcome_counts(runs: pd.DataFrame) -> str:
    n = runs["status"].value_counts()
    finished = int(n.reindex(list(FINISHED), fill_value=0).sum())
    text = (
        f"{finished} of {len(runs)} planned runs finished: {n.get('solved', 0)} solved, "
        f"{n.get('unsolved', 0)} unsolved, {n.get('diverged', 0)} diverged."
    )
    other = {s: int(n[s]) for s in UNFINISHED if n.get(s, 0)}
    if other:
        text += " Not finished: " + ", ".join(f"{c} {s}" for s, c in other.items())
        text += " (listed under Problem runs)."
    return text


def _model_sentence(sweep: Readout, counts: pd.DataFrame, model: str) -> str:
    """One model's outcome on one task: its horizon (the staircase's bracket, or the monotone
    horizon and the fitted d50 without a staircase) and the seeds solved per distance.
    """
    mine = counts[counts["model"] == model].sort_values("distance")
    task = mine["task"].iloc[0]
    per = ", ".join(f"{c.distance}: {count_text(c._asdict())}" for c in mine.itertuples())
    if sweep.brackets:
        bracket = ranking.bracket_text(sweep.brackets.get((task, model)))
        return f"{model}: memory horizon {bracket}. Seeds solved per distance: {per}."
    h = horizons(mine)[(task, model)]
    d50 = d50_text(fit_d50(mine), mine["distance"].min(), mine["distance"].max())
    return (
        f"{model}: memory horizon {horizon_text(h)}; fitted horizon d50 {d50}. "
        f"Seeds solved per distance: {per}."
    )


def _ranking(counts: pd.DataFrame, task: str, sweep: Readout) -> str:
    """Models ordered by memory horizon (ties kept together), censored ends as bounds."""
    held = horizons(counts)
    order = sorted(sweep.models, key=lambda m: -(held[(task, m)].distance or 0))
    return (
        "Memory horizon by model (the largest distance held at and below, in at least half the "
        "seeds): " + ", ".join(f"{m} {horizon_text(held[(task, m)])}" for m in order) + "."
    )


def _staircase_sentences(sweep: Readout, task: str) -> list[str]:
    """Each variant's bracket and exponent, the ranking on whichever separates them, and the
    family verdicts with their control.
    """
    fits = ranking.fits(sweep, task)
    parts = [
        f"{model} {short_bracket(sweep.brackets.get((task, model)))}, alpha "
        f"{ranking.exponent_text(fits.get(model))}"
        for model in sweep.models
    ]
    return [
        "Memory horizon as the staircase bracketed it (held at the lower end, failed at the "
        "upper; a censored end as a bound), and the exponent alpha of updates to solve ~ "
        "distance^alpha with its 95% interval: " + "; ".join(parts) + ".",
        ranking.ranking(sweep, task),
        *ranking.family_verdicts(sweep, task),
    ]


@dataclass(frozen=True)
class Exploding:
    """A variant on the exploding side: its runs' mean pre-clip gradient norms (``grad``, where
    their median exceeds the norm clip ``clip``) and Jacobian norms from the key step after
    training (``jacobian``, where their median exceeds 1); either may be empty.
    """

    model: str
    grad: pd.Series
    jacobian: pd.Series
    clip: float | None


def exploding(sweep: Readout, task: str) -> list[Exploding]:
    """The variants whose runs trained above the clip or whose path from the key step to the
    output grew after training (a Jacobian norm above 1)."""
    t = sweep.exp.training
    runs = sweep.finished[sweep.finished["task"] == task]
    clip = t.grad_clip if t.grad_clip is not None and t.clip_mode == "norm" else None
    out = []
    for model in sweep.models:
        mine = runs[runs["model"] == model]
        grad = values_of(mine, "mean_grad_norm")
        jacobian = values_of(mine, "probe_final_h_jacobian_key")
        grad = grad if clip is not None and not grad.empty and grad.median() > clip else grad[:0]
        jacobian = jacobian if not jacobian.empty and jacobian.median() > 1 else jacobian[:0]
        if not (grad.empty and jacobian.empty):
            out.append(Exploding(model, grad, jacobian, clip))
    return out


def _exploding(sweep: Readout, task: str) -> str:
    """``exploding`` in words, with every number's range and n."""
    parts = []
    for e in exploding(sweep, task):
        said = []
        if not e.grad.empty:
            said.append(
                f"its runs' mean pre-clip gradient norm was {spread_text(e.grad)}, "
                f"{e.grad.median() / e.clip:.3g} times the clip ({e.clip:g}, global L2 norm)"
            )
        if not e.jacobian.empty:
            said.append(
                "its Jacobian norm from the key step to the output after training was "
                f"{spread_text(e.jacobian)}, above 1"
            )
        parts.append(f"{e.model}: " + " and ".join(said))
    t = sweep.exp.training
    clip = f"the clip ({t.grad_clip:g})" if t.grad_clip is not None else "a clip"
    if not parts:
        return (
            f"No variant's runs trained with a median pre-clip gradient norm above {clip} or "
            "ended with a median Jacobian norm to the key step above 1."
        )
    return (
        "The exploding side: "
        + "; ".join(parts)
        + ". A Jacobian norm above 1 means a change of the state at the key step grows on its "
        "way to the output (the exploding regime of Pascanu et al. 2013); with a mean pre-clip "
        "norm above the clip, clipping shortened at least some of those runs' updates."
    )


@dataclass(frozen=True)
class ShareOrder:
    """The key share at initialisation against the horizons: at ``distance`` (where every
    variant ran) each variant's median ``share``; of the ``pairs`` of variants the horizons
    separate (ahead, behind), those where the one ahead started with the larger share
    (``concordant``) and the others (``discordant``).
    """

    distance: int
    share: dict[str, float]
    concordant: list[tuple[str, str]]
    discordant: list[tuple[str, str]]

    @property
    def pairs(self) -> int:
        return len(self.concordant) + len(self.discordant)


def share_order(sweep: Readout, task: str) -> ShareOrder | None:
    """Whether the key share at initialisation orders the variants as their horizons do, at the
    one distance every variant ran (the staircase's start, or the shortest distance); None
    without probe data for two variants there.
    """
    runs = sweep.probed(task)
    d0 = _shared_distance(sweep, task)
    at = runs[runs["distance"] == d0]
    share = {m: values_of(at[at["model"] == m], "probe_init_h_key_share") for m in sweep.models}
    share = {m: float(v.median()) for m, v in share.items() if not v.empty}
    if d0 is None or len(share) < 2:
        return None
    reach = _reach(sweep, task)
    pairs = [(a, b) for a in share for b in share if a != b and _ahead(reach, a, b)]
    concordant = [(a, b) for a, b in pairs if share[a] > share[b]]
    discordant = [(a, b) for a, b in pairs if share[a] <= share[b]]
    return ShareOrder(d0, share, concordant, discordant)


def _initial_share_against_horizon(sweep: Readout, task: str) -> str:
    """``share_order`` in words: a run that contradicts the vanishing-gradient account (a
    variant that started with less gradient at the key step yet held further) says so.
    """
    order = share_order(sweep, task)
    if order is None:
        return (
            "No distance has probe data for two variants or more, so initial shares cannot be "
            "set against horizons."
        )
    share = order.share
    listed = ", ".join(f"{m} {num(v)}" for m, v in share.items())
    text = (
        f"At distance {order.distance}, where every variant ran, the key share at "
        f"initialisation (median over seeds) was: {listed}."
    )
    if not order.pairs:
        return text + (
            " The horizons separate no pair of variants, so the data cannot say whether the "
            "initial share orders who learns."
        )
    text += (
        f" Of the {order.pairs} pairs of variants the horizons separate (one held at a distance "
        f"where the other failed), the one that held further started with the larger share in "
        f"{len(order.concordant)}"
    )
    if not order.discordant:
        return text + (
            f": here the initial shares order the horizons. {len(share)} variants show an "
            "association, not that the share decides."
        )
    examples = "; ".join(
        f"{a} started with {num(share[a])} and held further than {b}, which started with "
        f"{num(share[b])}"
        for a, b in sorted(order.discordant, key=lambda p: share[p[0]] / share[p[1]])[:2]
    )
    return text + (
        f" and with the smaller (or an equal) one in {len(order.discordant)} ({examples}): in "
        "this run the gradient reaching the key step at initialisation, and so its initial "
        "decay, does not decide who learns."
    )


def _shared_distance(sweep: Readout, task: str) -> int | None:
    """The distance every variant ran at: the staircase's start, else the shortest."""
    if sweep.exp.staircase is not None:
        return sweep.exp.staircase.start
    runs = sweep.runs[sweep.runs["task"] == task]
    return int(runs["distance"].min()) if not runs.empty else None


def _reach(sweep: Readout, task: str) -> dict[str, tuple[float, float]]:
    """Per variant: (the longest distance it held at, the shortest it failed at, inf if none),
    from its bracket or, without a staircase, its monotone horizon.
    """
    if sweep.brackets:
        out = {}
        for model in sweep.models:
            b = sweep.brackets.get((task, model))
            if b is not None:
                out[model] = (
                    -math.inf if b.lower is None else b.lower,
                    math.inf if b.upper is None else b.upper,
                )
        return out
    held = horizons(success_counts(sweep.runs[sweep.runs["task"] == task]))
    return {
        m: (h.distance or -math.inf, h.failed_at or math.inf)
        for (t, m), h in held.items()
        if t == task
    }


def _ahead(reach: dict, a: str, b: str) -> bool:
    """Whether ``a`` held at a distance where ``b`` failed."""
    return a in reach and b in reach and reach[a][0] >= reach[b][1]


# ---- the gradient --------------------------------------------------------------------------


def _gradient_sentences(sweep: Readout, task: str, counts: pd.DataFrame) -> list[str]:
    runs = sweep.probed(task)
    if runs.empty:
        return ["No run of this task has probe data, so the gradient cannot be compared."]
    out = []
    shortest = counts["distance"].min()
    for d, lost in parting_distances(counts).items():
        at = runs[runs["distance"] == d]
        verb = "did not hold" if d == shortest else "stopped holding"
        where = f", where {' and '.join(lost)} {verb}," if lost else ""
        out.append(
            f"At distance {d}{where} the key share, the ratio of the gradient norm at the key "
            f"step to that at the output step (above 1 where the gradient grows going back; per "
            f"run: the median over probe samples of each sample's ratio; here the "
            f"median over seeds with its range) was, before training: "
            f"{_measure(sweep, at, 'init', 'key_share')}; after training (at each run's last "
            f"update: when it solved, or at the budget): "
            f"{_measure(sweep, at, 'final', 'key_share')}."
        )
    longest = int(runs["distance"].max())
    at = runs[runs["distance"] == longest]
    out.append(_decay_sentence(sweep, at, longest))
    out.append(
        f"Without the loss (the Jacobian norm ||dh_s/dh_key||/sqrt(H), which the output "
        f"residual cannot inflate or shrink), at distance {longest} before training: "
        f"{_measure(sweep, at, 'init', 'jacobian_key')}."
    )
    out.append(_share_against_outcome(runs))
    return out


def _measure(sweep: Readout, at: pd.DataFrame, phase: str, stat: str) -> str:
    """``1.2e-07 (range ..., n=3) for rnn, ...``: a probe summary of the runs ``at``, by model."""
    parts = []
    ran = set(sweep.finished.loc[sweep.finished["distance"].isin(at["distance"]), "model"])
    for model in [m for m in sweep.models if m in ran]:  # a variant not run there: left out
        mine = at[at["model"] == model]
        if mine.empty:
            parts.append(f"{NO_PROBE} for {model}")
            continue
        part = f"{spread_text(values_of(mine, f'probe_{phase}_h_{stat}'))} for {model}"
        c = values_of(mine, f"probe_{phase}_c_{stat}")
        if not c.empty:
            part += f" (cell state c: {num(c.median())})"
        parts.append(part)
    return ", ".join(parts)


def _decay_sentence(sweep: Readout, at: pd.DataFrame, distance: int) -> str:
    """e-folding lengths at initialisation over one fit window (k = 1..distance) for every
    model, printed only where the curve is geometric.
    """
    parts = []
    for model in sweep.models:
        mine = at[at["model"] == model]
        for state in ("h", "c"):
            rho = values_of(mine, f"probe_init_{state}_rho")
            if rho.empty:
                continue
            r2 = values_of(mine, f"probe_init_{state}_rho_r2").median()
            name = model if state == "h" else f"{model} (cell state c)"
            parts.append(f"{name}: {efold_text(rho.median(), r2, distance)}")
    return (
        f"At initialisation, fitted over k = 1..{distance} at distance {distance} (one window for "
        f"every model; a curve counts as geometric at R² >= {GEOMETRIC_R2}), the gradient norm "
        f"with respect to the hidden state (and the LSTM's cell state c) shrank by a factor e "
        f"every: " + ", ".join(parts) + " (median over seeds)."
    )


def _share_against_outcome(runs: pd.DataFrame) -> str:
    """Within each distance, models pooled: did the runs that learned start with a larger key
    share? Descriptive only: pooling models sets architectures against each other.
    """
    comparisons = share_against_outcome(runs)
    if not comparisons:
        return (
            "At no distance did some runs solve and others not, so the data cannot separate the "
            "initial key share of runs that learned from those that did not."
        )
    parts, verdicts = [], []
    for c in comparisons:
        test = (
            f"Mann-Whitney p = {c.p:.3g}, Holm-adjusted {c.p_holm:.3g}"
            if not math.isnan(c.p)
            else "one run on a side: no test"
        )
        parts.append(
            f"at distance {c.distance}, {c.n_solved} solved run(s) started with a median share of "
            f"{num(c.median_solved)} and {c.n_unsolved} unsolved with {num(c.median_unsolved)} "
            f"({test})"
        )
        if c.significant:
            verdicts.append((c.distance, c.larger_in_solved))
    text = "Compared within the same distance, models pooled: " + "; ".join(parts)
    caveat = (
        " These comparisons set one model against another as much as one run against another "
        "(a model's cell sets both its share and its chance to learn), so they are not read as "
        "the share deciding learning: the within-model comparison below is."
    )
    floor = min(smallest_p(c.n_solved, c.n_unsolved) for c in comparisons)
    if verdicts:
        larger = [d for d, up in verdicts if up]
        smaller = [d for d, up in verdicts if not up]
        said = []
        if larger:
            said.append(f"solved runs had the larger initial share at distance(s) {larger}")
        if smaller:
            said.append(f"solved runs had the smaller initial share at distance(s) {smaller}")
        text += f". After Holm's correction (alpha {ALPHA}), " + "; ".join(said) + "."
    elif floor >= ALPHA:
        text += (
            f". No difference holds after Holm's correction (alpha {ALPHA}); with these run "
            f"counts the smallest possible p is {floor:.3g}, so the data cannot show one "
            "either way."
        )
    else:
        text += f". No difference holds after Holm's correction (alpha {ALPHA})."
    return text + caveat


def _within_models(runs: pd.DataFrame) -> str:
    """Where one model both solved and failed at one distance, its seeds compared: the model and
    the distance cannot confound it there (the seeds differ in initialisation and data). The
    verdict on the share comes from here only, the strata combined by one permutation test.
    """
    combined = stratified(runs)
    if combined is None:
        return (
            "No model ended both ways at one distance, so the data cannot separate the initial "
            "share's bearing on learning from the model's and the distance's."
        )
    parts = []
    for c in combined.rows:
        parts.append(
            f"{c.model} at {c.distance}: {c.n_solved} solved (median {num(c.median_solved)}) "
            f"against {c.n_unsolved} unsolved ({num(c.median_unsolved)})"
        )
    text = (
        "Within one model at one distance, where its seeds ended both ways (they differ in "
        "their initialisation and in their data set: each seed has its own), the initial key "
        "share of solved against unsolved seeds: "
        + "; ".join(parts)
        + f". Combined over these {combined.strata} strata ({combined.n_solved} solved, "
        f"{combined.n_unsolved} unsolved seeds), the solved seed started with the larger share "
        f"in {combined.larger:g} of {combined.pairs} solved-unsolved pairs ({combined.pairs / 2:g} "
        f"expected if the share did not matter; exact permutation test within strata, two-sided "
        f"p = {combined.p:.3g})"
    )
    if combined.p < ALPHA:
        side = "larger" if combined.larger > combined.pairs / 2 else "smaller"
        return text + f": within a model, a {side} initial share went with learning."
    if combined.p_floor >= ALPHA:
        return (
            text + f": no association shown; these strata cannot give p below "
            f"{combined.p_floor:.3g}, so the data cannot show one either way."
        )
    return text + ": no association shown."


# ---- time to solve, and the adding task's error --------------------------------------------


def _steps_sentences(sweep: Readout, task: str) -> list[str]:
    budget = sweep.exp.training.max_steps
    curves = survival_table(sweep.runs[sweep.runs["task"] == task], budget)
    parts = []
    for model in sweep.models:
        mine = [(d, c) for (t, m, d), c in curves.items() if t == task and m == model]
        if mine:
            shown = ", ".join(f"{d}: {survival_text(c)}" for d, c in sorted(mine))
            parts.append(f"{model} ({shown})")
    if not parts:
        return []
    return [
        "Median steps to solve (Kaplan-Meier, runs that did not solve censored at the "
        f"{budget}-step budget; 'not reached' where fewer than half solved): "
        + "; ".join(parts)
        + "."
    ]


def _mse_sentence(sweep: Readout, task: str) -> str:
    """Each model's median test MSE per distance against the memoryless baselines: below the
    second (remembering one value) a model uses both values.
    """
    runs = sweep.finished[sweep.finished["task"] == task]
    parts, named = [], {}
    for model in sweep.models:
        for d, at in runs[runs["model"] == model].groupby("distance"):
            baselines = baselines_at(sweep, task, d)
            named |= baselines
            below = list(baselines.values())[1]  # remembering one value
            mse = values_of(at, "test_loss")
            n_below = int((mse < below).sum())
            parts.append(
                f"{model} at {d}: {mse.median():.4f} ({n_below}/{len(mse)} below {below:.4g})"
            )
    names = "; ".join(f"{v:.4g}: {name}" for name, v in named.items())
    return (
        f"Test MSE, median over seeds, against the memoryless baselines ({names}; below the "
        "second a model uses the value it would otherwise forget): " + "; ".join(parts) + "."
    )
