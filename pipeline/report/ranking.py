"""The answer to the study's question, per variant: where its memory horizon lies (the staircase's
bracket, censored ends written as bounds) and how its time to solve grows with distance (the
scaling exponent of ``scaling``), and the ranking of the variants on whichever of the two
separates them.

- **Bracket.** The staircase's rule (``config.staircase``) leaves a variant holding at ``lower``
  and failing at ``upper``: the horizon is at least ``lower`` and below ``upper``. A variant that
  held at the cap is written ``>= cap`` and one that failed at the shortest distance ``< d``:
  bounds, never values.
- **Ranking.** Variant A is ahead of B on the brackets when A held at a distance where B failed
  with every seed counted (``A.lower >= B.upper``); otherwise on the exponents when their
  Holm-corrected comparison is significant at ``ALPHA`` (a smaller exponent: time to solve grows
  more slowly with distance); otherwise the data do not separate them. The ranking sentence
  says, for each adjacent pair, which measure separated them.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from pipeline.config import control
from pipeline.report import scaling
from pipeline.report.results import FINISHED, Readout, distance_text
from pipeline.report.style import Plot, distance_axis, figure, legend, model_colours

ALPHA = 0.05  # the family-wise level of the exponent comparisons (Holm)


def bracket_text(b) -> str:
    """``20 to 40``, ``>= 80 (the cap)``, ``< 5 (the shortest distance)``, or ``plan incomplete``;
    with the distances a monotone horizon would not explain, where there are any.
    """
    if b is None:
        return "plan incomplete (runs missing or failed)"
    if b.below_min:
        text = f"< {b.upper} (failed at the shortest distance)"
    elif b.beyond_cap:
        text = f">= {b.lower} (held at the cap)"
    else:
        text = f"{b.lower} to {b.upper}"
    if b.contradictions:
        text += f"; non-monotone at {', '.join(map(str, b.contradictions))}"
    return text


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


def ranking(sweep: Readout, task: str) -> str:
    """The variants in order, best first, each adjacent pair joined by the measure that
    separated them (``>`` by brackets, ``>>`` by exponents) or ``=`` where neither did.
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
    parts, measures = [order[0]], set()
    for ahead, behind in zip(order, order[1:], strict=False):
        if _ahead_on_brackets(brackets[ahead], brackets[behind]):
            parts.append(f"> {behind}")
            measures.add("brackets")
            continue
        c = contrasts.get(frozenset((ahead, behind)))
        if c is not None and fitted[ahead].alpha < fitted[behind].alpha:
            parts.append(f">> {behind}")
            measures.add("exponents")
        else:
            parts.append(f"= {behind}")
    how = {
        frozenset(): "neither measure separates any adjacent pair",
        frozenset({"brackets"}): "the brackets separate them",
        frozenset({"exponents"}): "the exponents separate them",
        frozenset({"brackets", "exponents"}): "the brackets and, where those overlap, the "
        "exponents separate them",
    }[frozenset(measures)]
    return (
        f"Ranking on {task}: {' '.join(parts)}. Read '>' as held where the next one failed "
        "(brackets, every seed counted), '>>' as time to solve grows more slowly with distance "
        f"(exponents, Holm-corrected p < {ALPHA}), '=' as not separated by either; {how}."
    )


def _group_text(group: list[str]) -> str:
    return " and ".join(group)


def control_sentences(sweep: Readout, task: str) -> list[str]:
    """For every family verdict the brackets decide: where it was decided and whether it holds
    at the shared settings too (the control runs), with the seeds solved on each side.
    """
    if sweep.control is None:
        return []
    brackets = {m: sweep.brackets.get((task, m)) for m in sweep.models}
    shared = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}"
                       for k, v in sweep.exp.control.point)  # fmt: skip
    if any(b is None for b in brackets.values()):
        return [f"Control at the shared settings ({shared}): not run, a staircase is incomplete."]
    runs = sweep.control[sweep.control["task"] == task]
    out = []
    for label, groups in zip(
        ("PyTorch defaults", "each family at its best"),
        control.comparisons(sweep.exp.models, brackets),
        strict=False,
    ):
        pairs = control.decided(groups, brackets)
        if not pairs:
            out.append(f"{label}: the brackets separate no family, so no verdict needed a control.")
            continue
        for ahead, behind, d in pairs:
            at = runs[runs["distance"] == d]

            def counts(group, at=at):
                mine = at[at["model"].isin(group)]
                return (
                    int((mine["status"] == "solved").sum()),
                    len(mine),
                    int(mine["status"].isin(FINISHED).sum()),
                )

            (a_solved, a_n, a_done), (b_solved, b_n, b_done) = counts(ahead), counts(behind)
            verdict = (
                f"{_group_text(ahead)} ahead of {_group_text(behind)}, decided at distance {d} "
                f"(at the tuned settings {_group_text(ahead)} held {brackets[ahead[0]].lower} "
                f"and {_group_text(behind)} failed at {d})"
            )
            if a_done < a_n or b_done < b_n or not a_n or not b_n:
                out.append(f"{label}: {verdict}; the control runs at {d} are not all finished.")
                continue
            holds = 2 * a_solved >= a_n and a_solved > 0 and not 2 * b_solved >= b_n
            out.append(
                f"{label}: {verdict}. At the shared settings ({shared}), at distance {d}: "
                f"{_group_text(ahead)} solved {a_solved}/{a_n} runs, {_group_text(behind)} "
                f"{b_solved}/{b_n}: the verdict "
                + ("holds at the shared settings as well." if holds else "does not hold there.")
            )
    return out


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
