"""The replication report: one row per published claim, its verdict, and each check beside the
published number it tests.

``write(entries, folder)`` writes ``report.html`` and ``report.md`` into ``folder``
(``reports/replications/``). Each ``Entry`` is one replication file, or one part of one (its
claim's experiment with some settings changed, sized for a smaller machine): its experiment
(with the ``claim`` block), the runs it planned (``reading.planned``: read from the result
files only) and, when the runner did not run it, why. A part's row and section follow its
claim's, with a verdict of its own. The verdicts come from ``checks.judge``; every number
on the page is computed from the result files.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from pipeline.config import Experiment
from pipeline.config.claims import Part
from pipeline.report.checks import VERDICTS, Measurement, Verdict, judge, number
from pipeline.report.render import Link, Section, render_html, render_markdown
from pipeline.report.results import init_setting

TITLE = "Replications: published long-gap results, reproduced or not"


@dataclass(frozen=True)
class Entry:
    """One replication file, as the page shows it."""

    file: Path
    exp: Experiment
    runs: pd.DataFrame  # the planned evaluation runs (reading.planned)
    why_not_run: str | None = None  # why the runner left it out, if it did
    has_report: bool = False  # reports/<name>/ exists (linked from the row)
    part: Part | None = None  # a part of a claim: what it changes, shows and cannot show
    part_of: str | None = None  # a part's claim

    @property
    def name(self) -> str:
        return self.exp.name

    @property
    def verdict(self) -> Verdict:
        return judge(self.exp, self.runs)


def verdict_text(entry: Entry, verdict: Verdict) -> str:
    """``reproduced``, ``not run: estimated 9.6 h of training on this machine ...``, with
    ``(published claim unverified)`` and the budget where it is smaller than the paper's.
    """
    text = verdict.verdict + _qualifiers(entry.exp.claim, verdict)
    if verdict.verdict == "not run" and entry.why_not_run:
        text += f": {entry.why_not_run}"
    return text


def _qualifiers(claim, verdict: Verdict) -> str:
    out = "" if claim.verified else " (published claim unverified)"
    if claim.budget and verdict.verdict != "not run":
        out += f" (on a smaller budget than the paper's: {claim.budget})"
    if claim.caveats and verdict.verdict != "not run":
        out += "; known against it, outside the checks: " + " ".join(claim.caveats)
    return out


def setting_text(exp: Experiment, runs: pd.DataFrame) -> str:
    """Our setting in one line: task, lengths, models, training, seeds, data."""
    task, t = exp.tasks[0], exp.training
    built = task.build()
    if built.paper_t(task.distances[0]) is None:
        lengths = "distances " + ", ".join(map(str, task.distances))
    else:
        lengths = "T = " + ", ".join(str(built.paper_t(d)) for d in task.distances)
    variant = f" ({task.variant})" if getattr(task, "variant", None) else ""
    models = "; ".join(
        f"{m.name}: {m.cell}, {init_setting(exp, m.name)} ({_parameters(runs, m.name)})"
        for m in exp.models
    )
    decay = f", decay {t.rmsprop_decay:g}" if t.rmsprop_decay is not None else ""
    clip = "no clipping" if t.grad_clip is None else f"clip {t.clip_mode} {t.grad_clip:g}"
    return (
        f"{task.task}{variant}, {lengths}; {models}; {t.optimizer} lr {t.learning_rate:g}{decay}, "
        f"batch {t.batch_size}, {clip}, at most {t.max_steps:,} updates; seeds "
        f"{', '.join(map(str, exp.seeds))}; data {exp.data.n_train:,}/{exp.data.n_val:,}/"
        f"{exp.data.n_test:,}"
    )


def _parameters(runs: pd.DataFrame, model: str) -> str:
    counts = pd.to_numeric(runs.loc[runs["model"] == model, "parameters"]).dropna()
    return f"{int(counts.max()):,} parameters" if len(counts) else "parameters unknown"


def measured_text(m: Measurement) -> str:
    """``0.0031 (seeds 0: 0.0021, 1: 0.0040)``, or how many seeds have finished."""
    metric = m.check.metric
    seeds = ", ".join(f"{s}: {number(v, metric)}" for s, v in zip(m.seeds, m.values, strict=True))
    if not m.complete:
        done = f"{len(m.seeds)} of {m.planned} seeds finished"
        return f"not run ({done}{': ' + seeds if seeds else ''})"
    return f"{number(m.measured, metric)} (seeds {seeds})"


def _check_rows(measured: tuple[Measurement, ...]) -> pd.DataFrame:
    rows = [
        {
            "model": c.check.model,
            "distance": c.distance,
            "check": c.check.label(),
            "published": c.check.published,
            "measured": measured_text(c),
            "outcome": c.outcome,
        }
        for c in measured
    ]
    return pd.DataFrame(rows)


def _row(entry: Entry, verdict: Verdict) -> dict:
    claim = entry.exp.claim
    html, md = f"../{entry.name}/report.html", f"../{entry.name}/report.md"
    return {
        "claim": entry.name,
        "paper": f"part of {entry.part_of}" if entry.part_of else claim.authors,
        "setting": setting_text(entry.exp, entry.runs),
        "published": "; ".join(dict.fromkeys(e.published for e in claim.expect)),
        "measured": "; ".join(
            f"{c.check.model} at {c.distance}: {measured_text(c)}" for c in verdict.checks
        )
        if any(c.seeds for c in verdict.checks)
        else "no finished runs",
        "verdict": verdict_text(entry, verdict),
        "report": Link("report", html, md) if entry.has_report else "none yet",
    }


def method() -> list[str]:
    return [
        "Each claim is an experiment file in experiments/replications/ with a claim block: the "
        "citation, the published statement, the paper's setting, where ours differs, and "
        "checks. A check compares one metric of one model's runs at one distance with a "
        "number, combined over the seeds as it says: the median seed, every seed (the worst "
        "decides) or some seed (the best decides). A run that lacks the metric counts as its "
        "worst value (an unsolved run's steps to solve, a diverged run's non-finite loss).",
        "A check is decided only when every planned seed's run has finished; until then it is "
        "'not run'. A claim is reproduced when every check holds, not reproduced when any check "
        "fails (the claim as stated cannot hold then, whatever the rest give), and not run "
        "otherwise. 'Measured' rows beside the checks are shown, never checked.",
        "A part of a claim (named claim.part) is the claim's experiment with some settings "
        "changed, sized for a machine the whole claim is too long for (a shorter length, fewer "
        "updates). It is checked by the claim's own checks, those of the models and distances "
        "it runs, and has a verdict of its own beside the claim's, which stays 'not run' until "
        "the claim itself runs; its section says what it can and cannot show of the claim.",
        "make replicate first times a few dozen updates of each model at each length on its "
        "machine and estimates each claim's and part's training time (every run to its last "
        "update); then it runs the claims, cheapest first, each whose estimate fits what is "
        "left of its budget (BUDGET, in minutes of training, of which each claim takes what it "
        "trained), and then, the same way, the parts of the claims left out. ALL=1 runs "
        "every claim and part, CLAIM=name one (whatever its size). One left out stays 'not "
        "run' with its estimate, unless result files from an earlier run exist: they are "
        "checked as they stand.",
        "A claim whose published numbers could not be confirmed from the paper itself is "
        "marked 'published claim unverified'; its section lists what could not be confirmed. "
        "Where our setting differs from the paper's (task details, architecture, optimizer, "
        "budget), its section says how; a verdict holds for our setting, not the paper's.",
        f"Written {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} from the result files under "
        "results/<claim>/; each claim's full report (figures, every run, provenance) is linked "
        "from its row.",
    ]


def _verdict_sentence(entry: Entry, verdict: Verdict) -> str:
    """``Verdict: not run (published claim unverified): 5 of 5 checks ... Not run because ...``"""
    text = f"Verdict: {verdict.verdict}{_qualifiers(entry.exp.claim, verdict)}: {verdict.reason}."
    if verdict.verdict == "not run" and entry.why_not_run:
        text += f" Not run here: {entry.why_not_run}."
    return text


def _part_section(entry: Entry, verdict: Verdict) -> Section:
    part = entry.part
    changed = "; ".join(f"{field} = {value}" for field, value in part.settings.items())
    blocks: list = [
        f"A smaller run of {entry.part_of}'s experiment ({entry.file}, "
        f"claim.parts.{entry.name.rpartition('.')[2]}), with {changed}. It is judged by the "
        "claim's own checks, those of the models and distances it runs. The published claim, "
        f"the paper's setting, where ours differs and what is unverified: see {entry.part_of}.",
        f"What its verdict can show of the claim: {part.shows}",
        f"What it cannot show: {part.cannot_show}",
        f"Our setting: {setting_text(entry.exp, entry.runs)}.",
        _verdict_sentence(entry, verdict),
        _check_rows(verdict.checks),
    ]
    if verdict.observed:
        blocks += ["Measured beside the published numbers (not checked):"]
        blocks.append(_check_rows(verdict.observed).drop(columns=["check", "outcome"]))
    return Section(f"{entry.name}: a part of {entry.part_of}", blocks)


def _claim_section(entry: Entry, verdict: Verdict) -> Section:
    if entry.part is not None:
        return _part_section(entry, verdict)
    claim = entry.exp.claim
    blocks: list = [
        f"{claim.citation}",
        f"Published claim: {claim.statement}",
        f"The paper's setting: {claim.setting}",
        f"Our setting ({entry.file}): {setting_text(entry.exp, entry.runs)}.",
    ]
    if claim.differences:
        blocks += ["Where ours differs from the paper's:", list(claim.differences)]
    blocks.append(
        "Published numbers confirmed from the paper itself."
        if claim.verified
        else "Published claim UNVERIFIED: it could not be confirmed from the paper itself."
    )
    if claim.unverified:
        blocks += ["Not confirmed from the paper itself:", list(claim.unverified)]
    blocks += [
        _verdict_sentence(entry, verdict),
        _check_rows(verdict.checks),
    ]
    if verdict.observed:
        blocks += ["Measured beside the published numbers (not checked):"]
        blocks.append(_check_rows(verdict.observed).drop(columns=["check", "outcome"]))
    return Section(f"{entry.name}: {claim.authors}", blocks)


def document(entries: list[Entry]) -> list[Section]:
    verdicts = [e.verdict for e in entries]
    claims = [v.verdict for e, v in zip(entries, verdicts, strict=True) if e.part is None]
    parts = [v.verdict for e, v in zip(entries, verdicts, strict=True) if e.part is not None]
    summary = (
        f"{len(claims)} published claim(s) about long-gap learning, each replicated by its own "
        f"experiment: {_counts(claims)}."
    )
    if parts:
        summary += (
            f" {len(parts)} part(s) of them, each a smaller run of its claim's experiment with a "
            f"verdict of its own: {_counts(parts)}."
        )
    table = pd.DataFrame([_row(e, v) for e, v in zip(entries, verdicts, strict=True)])
    sections = [
        Section("Summary", [summary, table]),
        Section("Method", [method()]),
    ]
    sections += [_claim_section(e, v) for e, v in zip(entries, verdicts, strict=True)]
    return sections


def _counts(verdicts: list[str]) -> str:
    """``2 reproduced, 0 not reproduced, 4 not run``."""
    return ", ".join(f"{verdicts.count(v)} {v}" for v in VERDICTS)


def write(entries: list[Entry], folder: Path) -> None:
    """Write ``report.html`` and ``report.md`` for ``entries`` into the (empty) ``folder``."""
    sections = document(entries)
    (folder / "report.html").write_text(render_html(sections, TITLE, folder))
    (folder / "report.md").write_text(render_markdown(sections, TITLE))
