"""The report's first paragraph: the answer, computed from the run.

The question; the design in one sentence (variants, tuning, distances, seeds, budget); each
variant's memory horizon (its bracket, censored ends as bounds) and scaling exponent with its 95%
interval; the ranking and the family verdicts, each with whether it holds at the shared control
settings; then what the mechanism shows, in a few sentences with their n. Every number is the one
the body's tables and sentences print (the same functions make both), so the abstract cannot
disagree with them (``tests/test_report_stats.py`` checks it).
"""

from __future__ import annotations

from pipeline.report import extrapolation, findings, over_training, ranking, verdict
from pipeline.report.results import Readout, num
from pipeline.report.stats import horizons, success_counts
from pipeline.report.tables import short_bracket, short_horizon


def abstract(sweep: Readout) -> str:
    """About 150 words (more with many variants): the answer first."""
    parts = [_question(sweep), _design(sweep)]
    for task in sweep.tasks:
        prefix = f"On {task}: " if len(sweep.tasks) > 1 else ""
        parts.append(prefix + _horizons(sweep, task))
        parts.append(_ranking(sweep, task))
        parts += _families(sweep, task)
        parts += _mechanism(sweep, task)
    return " ".join(p for p in parts if p)


def _question(sweep: Readout) -> str:
    tasks = (
        sweep.tasks[0]
        if len(sweep.tasks) == 1
        else f"{', '.join(sweep.tasks[:-1])} and {sweep.tasks[-1]}"
    )
    return (
        f"How long a gap between the key and the output that needs it can each recurrent "
        f"variant learn on {tasks}, and how fast does its training time grow with the gap?"
    )


def _design(sweep: Readout) -> str:
    exp, t = sweep.exp, sweep.exp.training
    widths = sorted({int(w) for w in sweep.runs["hidden_size"].dropna()})
    width = f"hidden {widths[0]}" if len(widths) == 1 else f"hidden {widths[0]} to {widths[-1]}"
    text = f"Design: {len(sweep.models)} variants ({width})"
    if exp.tuning is not None:
        grid = "; ".join(
            f"{k} {', '.join(f'{v:g}' for v in vs)}" for k, vs in exp.tuning.grid.items()
        )
        text += f", each tuned over {grid} on {len(exp.tuning.seeds)} tuning seeds"
    else:
        text += f", untuned ({t.optimizer}, learning rate {t.learning_rate:g})"
    seeds = ", ".join(str(s) for s in exp.seeds)
    if exp.staircase is not None:
        s = exp.staircase
        extra = ", ".join(str(x) for x in s.extra_seeds)
        text += (
            f"; distances by a staircase from {s.start}, doubling while half the seeds solve, "
            f"to the cap {s.cap} (seeds {seeds}"
            + (
                f"; seed{'s' if len(s.extra_seeds) > 1 else ''} {extra} added at each bracket's "
                "ends)"
                if extra
                else ")"
            )
        )
    else:
        listed = "; ".join(
            (f"{task.task} " if len(exp.tasks) > 1 else "")
            + ", ".join(str(d) for d in task.distances)
            for task in exp.tasks
        )
        text += f"; distances {listed} (seeds {seeds})"
    return text + (
        f"; at most {t.max_steps:,} updates per run; {len(sweep.finished)} evaluation runs."
    )


def _horizons(sweep: Readout, task: str) -> str:
    """Each variant's horizon and exponent, as the horizon table prints them."""
    fits = ranking.fits(sweep, task)
    held = horizons(success_counts(sweep.runs[sweep.runs["task"] == task]))
    parts = []
    for model in sweep.models:
        if sweep.brackets:
            horizon = short_bracket(sweep.brackets.get((task, model)))
        else:
            horizon = short_horizon(held[(task, model)])
        fit = fits.get(model)
        exponent = "no fit"
        if fit is not None and fit.fitted:
            exponent = f"{fit.alpha:.2f} ({fit.alpha_ci[0]:.2f} to {fit.alpha_ci[1]:.2f})"
        parts.append(f"{model} {horizon}, {exponent}")
    return (
        "Memory horizon and exponent alpha (updates to solve ~ distance^alpha; 95% CI): "
        + "; ".join(parts)
        + "."
    )


def _ranking(sweep: Readout, task: str) -> str:
    if sweep.brackets:
        line = ranking.ranking_line(sweep, task)
        signs = ["'>' held where the next failed"] + (
            ["'>>' slower growth"] if ">>" in line else []
        )
        return f"Ranking: {line} ({', '.join(signs)})."
    held = horizons(success_counts(sweep.runs[sweep.runs["task"] == task]))
    order = sorted(sweep.models, key=lambda m: -(held[(task, m)].distance or 0))
    listed = ", ".join(f"{m} {short_horizon(held[(task, m)])}" for m in order)
    return f"By memory horizon: {listed}."


def _families(sweep: Readout, task: str) -> list[str]:
    """The family verdicts in one line each, with the control's word on each ``>``."""
    if not sweep.brackets:
        return [verdict.compact(sweep, task)] if verdict.compact(sweep, task) else []
    found = ranking.family_comparisons(sweep, task)
    if found is None:
        return ["Family verdicts: not given while a staircase is incomplete."]
    out = []
    for c in found:
        order = " ".join(
            (f"{c.joins[i - 1]} " if i else "") + family for i, (family, _) in enumerate(c.families)
        )
        text = f"{c.label}: {order}"
        if ">" not in c.joins:
            text += " (not separated" + (": each held at the cap)" if c.all_at_cap else ")")
        elif c.controls:
            held = sum(1 for r in c.controls if r.holds)
            said = ", ".join(
                f"{r.ahead_solved}/{r.ahead_runs} vs {r.behind_solved}/{r.behind_runs} at "
                f"{r.distance}"
                for r in c.controls
            )
            text += (
                f"; {held} of {len(c.controls)} '>' hold at {ranking.shared_text(sweep)} ({said})"
            )
        out.append(text + ".")
    return out


def _mechanism(sweep: Readout, task: str) -> list[str]:
    """What the gradient and the mechanism show, in short: whether the initial share orders
    the horizons, the key share's change in solved and unsolved runs, the exploding regime or
    the keep gates, and length extrapolation.
    """
    out = []
    order = findings.share_order(sweep, task)
    if order is not None and order.pairs:
        if order.discordant:
            out.append(
                f"The initial key share (at {order.distance}) does not order the horizons: in "
                f"{len(order.discordant)} of {order.pairs} separated pairs the variant that held "
                "further started with less."
            )
        else:
            out.append(
                f"The initial key share (at {order.distance}) orders the horizons in all "
                f"{order.pairs} separated pairs (an association, not a cause)."
            )
    changes = over_training.share_changes(sweep, task)
    if changes:
        out.append(
            "Training raised the key share a median "
            + " and ".join(f"{num(c.ratio)}-fold in {c.runs} {name}" for name, c in changes.items())
            + " runs."
            if all(c.ratio > 1 for c in changes.values())
            else "Over training the key share changed a median "
            + " and ".join(f"{num(c.ratio)}-fold in {c.runs} {name}" for name, c in changes.items())
            + " runs."
        )
    regime = [e for e in findings.exploding(sweep, task) if not e.jacobian.empty]
    for e in regime:
        grad = (
            f", its mean pre-clip gradient norm {num(e.grad.median())} against a clip of {e.clip:g}"
            if not e.grad.empty
            else ""
        )
        out.append(
            f"{e.model} ends exploding: Jacobian norm from the key step {num(e.jacobian.median())}"
            f"{grad} (medians, n={len(e.jacobian)})."
        )
    if not regime:
        reach = over_training.gate_reach(sweep, task)
        if reach:
            out.append(
                "Keep-gate time constants reached the distance in "
                + " and ".join(f"{k} of {n} {name}" for name, (k, n, _, _) in reach.items())
                + " gated runs."
            )
    table = extrapolation.summary_table(sweep, task)
    if not table.empty:
        kinds: dict[str, list[str]] = {}
        for row in table.to_dict("records"):
            kinds.setdefault(row["what it learned"].split(" (")[0], []).append(row["model"])
        out.append(
            f"At {extrapolation.LONGEST:g}x their distance: "
            + "; ".join(f"{kind}: {', '.join(models)}" for kind, models in kinds.items())
            + "."
        )
    return out
