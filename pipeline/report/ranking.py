"""The answer to the study's question, per variant: where its memory horizon lies (the staircase's
bracket, censored ends written as bounds) and how its time to solve grows with distance (the
scaling exponent of ``scaling``), and the ranking of the variants on whichever of the two
separates them.

- **Bracket.** The staircase's rule (``config.staircase``) leaves a variant holding at ``lower``
  and failing at ``upper``: the horizon is at least ``lower`` and below ``upper``. A variant that
  held at the cap is written ``≥ cap`` and one that failed at the shortest distance ``< d``:
  bounds, never values.
- **Ranking.** Variant A is ahead of B on the brackets when A held at a distance where B failed
  with every seed counted (``A.lower >= B.upper``); otherwise on the exponents when their
  Holm-corrected comparison is significant at ``ALPHA`` (a smaller exponent: time to solve grows
  more slowly with distance); otherwise the data do not separate them. The ranking sentence
  says, for each adjacent pair, which measure separated them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.config import control
from pipeline.report import scaling
from pipeline.report.results import FINISHED, Readout, distance_text
from pipeline.report.stats import horizons, success_counts
from pipeline.report.style import (
    Plot,
    distance_axis,
    figure,
    legend,
    model_colours,
    model_markers,
)
from pipeline.report.tables import short_bracket
from pipeline.report.verdict import FAMILY

ALPHA = 0.05  # the family-wise level of the exponent comparisons (Holm)


def bracket_text(b) -> str:
    """``20 to 40``, ``≥ 80 (held at the cap)``, ``< 5 (failed at the shortest distance)``, or
    ``plan incomplete``; with the distances a monotone horizon would not explain, where there
    are any. A censored end is a bound, never a value.
    """
    if b is None:
        return "plan incomplete (runs missing or failed)"
    if b.below_min:
        text = f"< {b.upper} (failed at the shortest distance)"
    elif b.beyond_cap:
        text = f"≥ {b.lower} (held at the cap)"
    else:
        text = f"{b.lower} to {b.upper}"
    if b.contradictions:
        text += f"; non-monotone at {', '.join(map(str, b.contradictions))}"
    return text


def exponent_text(fit) -> str:
    """``1.19 (95% CI 0.58 to 1.80, n=11)``, or why there is no exponent."""
    if fit is None:
        return "no runs"
    if not fit.fitted:
        return f"no fit ({fit.reason})"
    low, high = fit.alpha_ci
    return f"{fit.alpha:.2f} (95% CI {low:.2f} to {high:.2f}, n={fit.runs})"


def _level_text(b, distance: int | None) -> str:
    found = [lv for lv in b.levels if lv.distance == distance] if b is not None else []
    return f"{found[0].solved}/{found[0].runs}" if found else ""


def fits(sweep: Readout, task: str) -> dict[str, scaling.Scaling]:
    """Each variant's scaling fit on ``task``, in the experiment's model order."""
    runs = sweep.runs[sweep.runs["task"] == task]
    found = scaling.fit_scaling(runs, sweep.exp.training.max_steps)
    return {m: found[m] for m in sweep.models if m in found}


def crossing_text(c: scaling.Crossing | None) -> str:
    """``57 (95% CI 41 to 90)``, with ``extrapolated`` where it lies outside the distances run."""
    if c is None:
        return ""
    if c.distance is None:
        return f"none ({c.reason})"
    low = distance_text(c.low) if c.low > 0 else "0"
    high = distance_text(c.high) if math.isfinite(c.high) else "unbounded"
    text = f"{distance_text(c.distance)} (95% CI {low} to {high})"
    return text + (", extrapolated" if c.extrapolated else "")


def horizon_table(sweep: Readout, task: str) -> pd.DataFrame:
    """Per variant: the staircase's bracket with seeds solved at its ends, the scaling exponent
    with its 95% interval and n, and the horizons the fit predicts at the budget and 10x it.
    """
    budget = sweep.exp.training.max_steps
    rows = []
    for model, fit in fits(sweep, task).items():
        b = sweep.brackets.get((task, model))
        exponent = (
            f"{fit.alpha:.2f} ({fit.alpha_ci[0]:.2f} to {fit.alpha_ci[1]:.2f})"
            if fit.fitted
            else f"no fit: {fit.reason}"
        )
        rows.append(
            {
                "model": model,
                "memory horizon": bracket_text(b),
                "held at lower": _level_text(b, b.lower if b else None),
                "failed at upper": _level_text(b, b.upper if b else None),
                "exponent alpha (95% CI)": exponent,
                "runs (solved)": f"{fit.runs} ({fit.solved})",
                f"predicted horizon at {budget:,} updates": crossing_text(fit.at_budget),
                f"at {scaling.WIDER_BUDGET * budget:,} updates": crossing_text(fit.at_wider_budget),
            }
        )
    return pd.DataFrame(rows)


def contrast_table(sweep: Readout, task: str) -> pd.DataFrame:
    """Every pair of fitted variants: the exponents' difference with its 95% interval and the
    Wald test's p, raw and Holm-corrected over the pairs.
    """
    contrasts = scaling.compare_exponents(fits(sweep, task))
    return pd.DataFrame(
        [
            {
                "pair": f"{c.model_a} - {c.model_b}",
                "difference in alpha (95% CI)": (
                    f"{c.difference:+.2f} ({c.ci[0]:+.2f} to {c.ci[1]:+.2f})"
                ),
                "p": f"{c.p:.3g}",
                "p (Holm)": f"{c.p_holm:.3g}",
                "runs": f"{c.runs_a} + {c.runs_b}",
            }
            for c in contrasts
        ]
    )


def _ahead_on_brackets(a, b) -> bool:
    return (
        a is not None
        and b is not None
        and a.lower is not None
        and b.upper is not None
        and a.lower >= b.upper
    )


def ranked(sweep: Readout, task: str) -> list[tuple[str, str]]:
    """The variants in order, best first: (model, how it stands to the one before: ``>`` behind
    it on brackets, ``>>`` on exponents, ``=`` not separated; ``""`` for the first).
    """
    brackets = {m: sweep.brackets.get((task, m)) for m in sweep.models}
    fitted = fits(sweep, task)
    contrasts = {
        frozenset((c.model_a, c.model_b)): c
        for c in scaling.compare_exponents(fitted)
        if c.p_holm < ALPHA
    }

    def order_key(model: str) -> tuple:
        b = brackets[model]
        lower = -1 if b is None or b.lower is None else b.lower
        upper = math.inf if b is not None and b.beyond_cap else (b.upper or 0) if b else 0
        fit = fitted.get(model)
        alpha = fit.alpha if fit is not None and fit.fitted else math.inf
        return (-lower, -upper, alpha)

    order = sorted(sweep.models, key=order_key)
    out = [(order[0], "")]
    for ahead, behind in zip(order, order[1:], strict=False):
        c = contrasts.get(frozenset((ahead, behind)))
        if _ahead_on_brackets(brackets[ahead], brackets[behind]):
            out.append((behind, ">"))
        elif c is not None and fitted[ahead].alpha < fitted[behind].alpha:
            out.append((behind, ">>"))
        else:
            out.append((behind, "="))
    return out


def ranking_line(sweep: Readout, task: str) -> str:
    """``irnn = gru > lstm >> rnn``: ``ranked`` as one line."""
    return " ".join(f"{join} {model}".strip() for model, join in ranked(sweep, task))


def ranking(sweep: Readout, task: str) -> str:
    """The ranking in words, with how to read its signs and which measure separated what."""
    measures = {join for _, join in ranked(sweep, task)} - {"", "="}
    how = {
        frozenset(): "neither measure separates any adjacent pair",
        frozenset({">"}): "the brackets separate them",
        frozenset({">>"}): "the exponents separate them",
        frozenset({">", ">>"}): "the brackets and, where those overlap, the exponents separate "
        "them",
    }[frozenset(measures)]
    return (
        f"Ranking on {task}: {ranking_line(sweep, task)}. Read '>' as held where the next one "
        "failed (brackets, every seed counted), '>>' as time to solve grows more slowly with "
        f"distance (exponents, Holm-corrected p < {ALPHA}), '=' as not separated by either; "
        f"{how}."
    )


def shared_text(sweep: Readout) -> str:
    """``learning_rate 0.01``: the control's shared settings."""
    return ", ".join(
        f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in sweep.exp.control.point
    )


def _labelled_comparisons(sweep: Readout, brackets: dict) -> list[tuple[str, list[list[str]]]]:
    """``control.comparisons`` with their names: it leaves out a comparison of fewer than two
    families, so the names follow the same rule.
    """
    models = sweep.exp.models
    defaults = {m.cell for m in models if m.pytorch_default}
    names = (["PyTorch defaults"] if len(defaults) >= 2 else []) + (
        ["Each family at its best"] if len({m.cell for m in models}) >= 2 else []
    )
    return list(zip(names, control.comparisons(models, brackets), strict=True))


@dataclass(frozen=True)
class ControlResult:
    """A family verdict decided at ``distance`` trained again at the shared settings: seeds
    solved of runs on each side; ``holds`` None while its runs are unfinished.
    """

    ahead: tuple[str, ...]
    behind: tuple[str, ...]
    distance: int
    ahead_solved: int
    ahead_runs: int
    behind_solved: int
    behind_runs: int
    holds: bool | None


@dataclass(frozen=True)
class FamilyComparison:
    """One family comparison (``label``): the families best first, each with its compared
    variants, and how each stands to the one before (``>``: held where it failed, every seed
    counted; ``=``: not separated by the brackets); the control result of every ``>``.
    """

    label: str
    families: tuple[tuple[str, tuple[str, ...]], ...]
    joins: tuple[str, ...]
    controls: tuple[ControlResult, ...]
    all_at_cap: bool


def _control_result(sweep: Readout, task: str, ahead, behind, d: int) -> ControlResult:
    at = sweep.control[(sweep.control["task"] == task) & (sweep.control["distance"] == d)]

    def counts(group) -> tuple[int, int, int]:
        mine = at[at["model"].isin(group)]
        done = int(mine["status"].isin(FINISHED).sum())
        return int((mine["status"] == "solved").sum()), len(mine), done

    (a_solved, a_n, a_done), (b_solved, b_n, b_done) = counts(ahead), counts(behind)
    holds = None
    if a_n and b_n and a_done == a_n and b_done == b_n:
        holds = 2 * a_solved >= a_n and a_solved > 0 and not 2 * b_solved >= b_n
    return ControlResult(tuple(ahead), tuple(behind), d, a_solved, a_n, b_solved, b_n, holds)


def family_comparisons(sweep: Readout, task: str) -> list[FamilyComparison] | None:
    """The family comparisons on ``task`` decided by the brackets (``config.control``): PyTorch
    defaults against defaults, and each family at its best; None while a staircase is
    incomplete, empty with fewer than two families.
    """
    brackets = {m: sweep.brackets.get((task, m)) for m in sweep.models}
    if any(b is None for b in brackets.values()):
        return None
    cells = {m.name: m.cell for m in sweep.exp.models}
    out = []
    for label, groups in _labelled_comparisons(sweep, brackets):
        ranked_groups = sorted(groups, key=lambda g: control._key(brackets[g[0]]), reverse=True)
        decided = {(tuple(a), tuple(b)): d for a, b, d in control.decided(groups, brackets)}
        joins = tuple(
            ">" if (tuple(a), tuple(b)) in decided else "="
            for a, b in zip(ranked_groups, ranked_groups[1:], strict=False)
        )
        controls = ()
        if sweep.control is not None:
            controls = tuple(_control_result(sweep, task, a, b, d) for (a, b), d in decided.items())
        out.append(
            FamilyComparison(
                label=label,
                families=tuple((FAMILY[cells[g[0]]], tuple(g)) for g in ranked_groups),
                joins=joins,
                controls=controls,
                all_at_cap=all(brackets[g[0]].beyond_cap for g in ranked_groups),
            )
        )
    return out


def family_verdicts(sweep: Readout, task: str) -> list[str]:
    """``family_comparisons`` in words: each family's compared variants with their brackets
    and parameter counts, ``>`` and ``=`` between them, and whether each ``>`` holds at the
    control's shared settings, with the seeds solved on each side.
    """
    found = family_comparisons(sweep, task)
    if found is None:
        return ["Family verdicts: not given while a staircase is incomplete."]
    brackets = {m: sweep.brackets.get((task, m)) for m in sweep.models}
    sizes = sweep.runs.groupby("model")["parameters"].max()
    out = []
    for c in found:
        parts = []
        for i, (family, members) in enumerate(c.families):
            if i:
                parts.append(c.joins[i - 1])
            listed = ", ".join(
                f"{m} {short_bracket(brackets[m])}, {int(sizes.get(m, 0)):,} parameters"
                for m in members
            )
            parts.append(f"{family} ({listed})")
        text = f"{c.label}: {' '.join(parts)}"
        if c.label.startswith("Each family"):
            counted = ", ".join(
                f"{FAMILY[cell]} {sum(1 for m in sweep.exp.models if m.cell == cell)}"
                for cell in control.FAMILIES
                if any(m.cell == cell for m in sweep.exp.models)
            )
            text += (
                " (a family's best is picked on these results, so a family with more variants "
                f"had more chances: {counted})"
            )
        if ">" not in c.joins:
            text += ". The brackets separate no family here"
            if c.all_at_cap:
                text += " (each held at the cap: the cap is too short to rank them)"
            out.append(text + ".")
            continue
        text += ". Read '>' as held at a distance where the next family failed, every seed counted."
        if sweep.control is None:
            out.append(text + " No control at shared settings was run.")
            continue
        results = "; ".join(_control_words(r) for r in c.controls)
        out.append(
            f"{text} At the shared settings ({shared_text(sweep)}), on the evaluation seeds: "
            f"{results}."
        )
    return out


def _control_words(r: ControlResult) -> str:
    names = f"{' and '.join(r.ahead)} ahead of {' and '.join(r.behind)} at {r.distance}"
    if r.holds is None:
        return f"{names}: its control runs are not all finished"
    verdict = "holds" if r.holds else "does not hold"
    return (
        f"{names} {verdict} ({r.ahead_solved}/{r.ahead_runs} solved against "
        f"{r.behind_solved}/{r.behind_runs})"
    )


def plot_scaling(sweep: Readout) -> Plot | None:
    """Steps to solve against distance, log-log, one panel per task: each run a point (unsolved
    and diverged runs at the budget as open triangles: censored, only known to need more), each
    fitted variant's median line where its fit exists.
    """
    runs = sweep.finished
    if runs.empty:
        return None
    tasks = [t for t in sweep.tasks if not runs[runs["task"] == t].empty]
    fig, axes = figure(1, len(tasks), width=5.0, height=3.6)
    axes = np.ravel(axes)
    colours = model_colours(sweep)
    budget = sweep.exp.training.max_steps
    fitted_any = False
    for ax, task in zip(axes, tasks, strict=True):
        mine = runs[runs["task"] == task]
        fitted = fits(sweep, task)
        for model in sweep.models:
            own = mine[mine["model"] == model]
            if own.empty:
                continue
            solved = own[own["status"] == "solved"]
            censored = own[own["status"] != "solved"]
            ax.scatter(solved["distance"], solved["steps_to_solve"].astype(float), s=14,
                       color=colours[model], label=model)  # fmt: skip
            ax.scatter(censored["distance"], [budget] * len(censored), s=22, marker="^",
                       facecolors="none", edgecolors=colours[model])  # fmt: skip
            fit = fitted.get(model)
            if fit is not None and fit.fitted:
                fitted_any = True
                d = np.geomspace(own["distance"].min(), own["distance"].max(), 50)
                ax.plot(d, fit.median_steps(d), color=colours[model], lw=1.2)
        ax.axhline(budget, color="0.6", lw=0.8, ls=":")
        fastest = pd.to_numeric(mine["steps_to_solve"], errors="coerce").astype(float).min()
        low = budget if pd.isna(fastest) else fastest  # no run solved: every point on the budget
        ax.set_ylim(low / 2, budget * 2)  # the budget line inside, even where every point is on it
        ax.set_yscale("log")
        distance_axis(ax, sorted(mine["distance"].unique()))
        ax.set_ylabel("updates to solve")
        ax.set_title(task)
    legend(fig, axes)
    caption = (
        "Updates to solve against distance, both axes logarithmic. A filled point is a run that "
        "solved; an open triangle on the dotted line is a run that did not within the budget "
        f"({budget:,} updates): censored, it is only known to need more. "
        + (
            "A line is a variant's fitted median (log-normal accelerated-failure-time model, "
            "censoring included), drawn over the distances it ran; its slope is the exponent "
            "in the horizon table. Variants without a line had too few solved runs for a fit."
            if fitted_any
            else "No variant had solved runs at two distances or more: no line is fitted."
        )
    )
    return Plot("scaling", "Time to solve against distance", caption, fig)


def _ends(sweep: Readout, task: str) -> dict[str, tuple]:
    """Per variant: (held at, failed at, seeds solved there as text): its staircase's bracket
    or, without a staircase, its monotone horizon and the first distance it failed at. None for
    an end that does not exist (below the shortest distance, beyond the cap).
    """
    counts = success_counts(sweep.runs[sweep.runs["task"] == task])
    solved = {(c.model, c.distance): f"{c.solved}/{c.planned}" for c in counts.itertuples()}
    out = {}
    for model in sweep.models:
        if sweep.brackets:
            b = sweep.brackets.get((task, model))
            if b is None:
                continue
            lower, upper = b.lower, b.upper
        else:
            h = horizons(counts[counts["model"] == model])[(task, model)]
            lower, upper = h.distance, h.failed_at
        out[model] = (lower, upper, solved.get((model, lower), ""), solved.get((model, upper), ""))
    return out


def plot_horizons(sweep: Readout) -> Plot | None:
    """The answer in one figure, one row of two panels per task: each variant's memory horizon
    as the interval between the distance it held at and the one it failed at (an arrow where an
    end is censored), with the seeds solved at each end, beside its scaling exponent with its
    95% interval; variants in the ranking's order, best at the top.
    """
    if sweep.finished.empty:
        return None
    tasks = [t for t in sweep.tasks if not sweep.finished[sweep.finished["task"] == t].empty]
    fig, axes = figure(len(tasks), 2, width=4.6, height=0.5 * len(sweep.models) + 1.4)
    colours, markers = model_colours(sweep), model_markers(sweep)
    for row, task in enumerate(tasks):
        ends, fitted = _ends(sweep, task), fits(sweep, task)
        order = [m for m, _ in ranked(sweep, task)] if sweep.brackets else _by_reach(ends, sweep)
        distances = sorted(sweep.runs.loc[sweep.runs["task"] == task, "distance"].unique())
        left, right = axes[row]
        for y, model in enumerate(reversed(order)):
            if model not in ends:
                left.text(distances[0], y, "plan incomplete", va="center", fontsize=8)
                continue
            lower, upper, at_lower, at_upper = ends[model]
            c = colours[model]
            x0 = lower if lower is not None else distances[0] * 2**-0.45
            x1 = upper if upper is not None else distances[-1] * 2**0.45
            left.plot([x0, x1], [y, y], color=c, lw=5, alpha=0.35, solid_capstyle="butt")
            if lower is None:
                left.annotate("", (x0, y), (upper, y), arrowprops={"arrowstyle": "->", "color": c})
            else:
                left.plot([lower], [y], marker=markers[model], color=c, ms=8)
                left.annotate(at_lower, (lower, y), (0, 7), textcoords="offset points",
                              ha="center", fontsize=7)  # fmt: skip
            if upper is None:
                left.annotate("", (x1, y), (lower, y), arrowprops={"arrowstyle": "->", "color": c})
            else:
                left.plot([upper], [y], marker="x", color=c, ms=8, mew=2)
                left.annotate(at_upper, (upper, y), (0, 7), textcoords="offset points",
                              ha="center", fontsize=7)  # fmt: skip
            fit = fitted.get(model)
            if fit is not None and fit.fitted:
                low, high = fit.alpha_ci
                right.errorbar([fit.alpha], [y], xerr=[[fit.alpha - low], [high - fit.alpha]],
                               fmt=markers[model], color=c, ms=7, capsize=3)  # fmt: skip
            else:
                right.text(0.02, y, "no fit", va="center", fontsize=8, color="0.4",
                           transform=right.get_yaxis_transform())  # fmt: skip
        labels = list(reversed(order))
        for ax in (left, right):
            ax.set_yticks(range(len(labels)), labels)
            ax.set_ylim(-0.7, len(labels) - 0.3)
        distance_axis(left, distances)
        left.set_xlim(distances[0] * 2**-0.6, distances[-1] * 2**0.6)
        left.set_title(f"{task}: memory horizon, held (marker) to failed (×)", fontsize=10)
        right.set_title(f"{task}: exponent alpha, 95% CI", fontsize=10)
        right.set_xlabel("alpha: updates to solve ~ distance^alpha")
        right.grid(axis="y", visible=False)
    fig.suptitle("Where each variant's memory horizon lies, and how its training time grows")
    how = (
        "the staircase's bracket: the longest distance it held at (at least half its seeds "
        "solved) and the distance above it where it failed, every seed counted"
        if sweep.brackets
        else "its monotone horizon (the longest distance held at and below) and the first "
        "distance it failed at"
    )
    return Plot(
        "horizons",
        "Memory horizon and scaling exponent of every variant",
        f"Left: each variant's memory horizon lies in the shaded interval, {how}; the numbers "
        "are seeds solved of runs at each end (solved is decided on validation accuracy). An "
        "arrow is a censored end: a variant that held at the longest distance run has its "
        "horizon there or beyond, one that failed at the shortest below it. Right: the "
        "exponent alpha of updates to solve ~ distance^alpha (log-normal accelerated-failure-"
        "time fit, runs that did not solve censored at the budget) with its 95% interval. "
        + (
            "Variants in the ranking's order, best at the top."
            if sweep.brackets
            else "Variants by horizon, longest at the top."
        ),
        fig,
    )


def _by_reach(ends: dict, sweep: Readout) -> list[str]:
    def key(model: str) -> tuple:
        lower, upper, _, _ = ends.get(model, (None, None, "", ""))
        return (-(lower or -1), -(upper or math.inf))

    return sorted(sweep.models, key=key)
