"""What the report holds, in order: summary, findings, figures, tables, problem runs, provenance and
every run, as ``render.Section``s of paragraphs, bullet lists, tables and figures.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

from pipeline import config, tracking
from pipeline.config import Experiment
from pipeline.errors import ConfigError
from pipeline.report.figures import Plot
from pipeline.report.findings import findings
from pipeline.report.render import Section
from pipeline.report.results import Sweep, init_setting
from pipeline.report.tables import (
    decay_table,
    horizon_table,
    problem_table,
    runs_table,
    share_table,
)


def document(sweep: Sweep, drawn: list[Plot], experiment_file: Path) -> list[Section]:
    exp = sweep.exp
    intro = (
        f"Experiment {exp.name}: {len(exp.models)} model(s) trained on "
        f"{', '.join(t.task for t in exp.tasks)} at distances "
        f"{'; '.join(f'{t.task} {t.distances}' for t in exp.tasks)} with seeds {exp.seeds}. "
        "The distance is the number of time steps from the input step carrying the needed "
        "information (the key) to the output step scored on it. The question: up to what "
        "distance does each model learn the dependency, and how much of the loss's gradient "
        "reaches the key step?"
    )
    sections = [Section("Summary", [intro]), Section("Findings", [findings(sweep)])]
    sections.append(Section("Figures", list(drawn)))
    tables = Section("Tables")
    for task in sweep.tasks:
        tables.blocks += [
            f"{task}: memory horizon (the largest distance solved in at least half the seeds) "
            "and solved/planned runs per distance.",
            horizon_table(sweep, task),
        ]
        decay = decay_table(sweep, task)
        if not decay.empty:
            tables.blocks += [
                f"{task}: per-step decay rho of the gradient norm (fitted on log norm against k "
                "for 1 <= k <= distance) and e-folding length -1/ln(rho), median over runs.",
                decay,
                f"{task}: share of the output step's gradient reaching the key step, median "
                "over seeds, at initialisation → after training (0.0e+00: the gradient "
                "underflowed float32 before reaching the key).",
                share_table(sweep, task),
            ]
    sections.append(tables)
    problems = problem_table(sweep)
    sections.append(
        Section(
            "Problem runs",
            ["Runs that failed, diverged, are missing or stale, or have no probe data.", problems]
            if not problems.empty
            else ["None: every planned run finished without diverging, with probe data."],
        )
    )
    sections.append(Section("Provenance", [provenance(sweep, experiment_file)]))
    sections.append(Section("All runs", [runs_table(sweep)]))
    return sections


def provenance(sweep: Sweep, experiment_file: Path) -> list[str]:
    exp, t = sweep.exp, sweep.exp.training
    inits = "; ".join(f"{m.name}: {m.cell}, {init_setting(exp, m.name)}" for m in exp.models)
    return [
        _source(exp, experiment_file),
        "Code commit(s) the runs were trained at: " + (", ".join(sweep.commits) or "unknown") + ".",
        f"MLflow: experiment {exp.name!r} (id {sweep.experiment_id}) at "
        f"{tracking.redact(sweep.tracking_uri)}; "
        "run ids in results.csv and the table of all runs.",
        f"Report written {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}.",
        f"Training budget: at most {t.max_steps} updates x batch {t.batch_size} = "
        f"{t.max_steps * t.batch_size:,} sequences per run; {t.optimizer}, learning rate "
        f"{t.learning_rate:g}; stop at validation accuracy {t.solved_accuracy:g}, checked every "
        f"{t.eval_every} updates; data {exp.data.n_train}/{exp.data.n_val}/{exp.data.n_test} "
        "train/val/test sequences.",
        f"Models: {inits}.",
        f"Gradient norms are taken before clipping (global L2 norm; clipped to {t.grad_clip} "
        f"for the update). Probes: {exp.probe.batch_size} validation sequences, at "
        f"initialisation, {_every(exp.probe.every_evals)} and after training.",
    ]


def _source(exp: Experiment, experiment_file: Path) -> str:
    """The experiment file and its hash, checked to hold the settings this report was given
    (a file of the same name elsewhere, or one edited since, would misattribute the runs).
    """
    try:
        same = config.load(experiment_file) == exp
    except ConfigError as e:
        return f"Experiment file: {experiment_file} unusable ({e}); settings as loaded."
    digest = hashlib.sha256(experiment_file.read_bytes()).hexdigest()
    text = f"Experiment file: {experiment_file} (sha256 {digest})"
    return text + ("." if same else ", which differs from the settings of this report.")


def _every(n: int) -> str:
    if n == 0:
        return "never during training"
    return "every validation" if n == 1 else f"every {n} validations"
