"""What the report holds, in order: summary, findings, figures, tables, problem runs, provenance and
every run, as ``render.Section``s of paragraphs, bullet lists, tables and figures.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

from pipeline import config
from pipeline.config import Experiment
from pipeline.config.runs import grid_label
from pipeline.decay import GEOMETRIC_R2
from pipeline.errors import ConfigError
from pipeline.report import ranking
from pipeline.report.findings import findings
from pipeline.report.render import Section
from pipeline.report.results import (
    Readout,
    baselines_at,
    clip_words,
    init_setting,
    optimizer_words,
)
from pipeline.report.stats import LEVEL
from pipeline.report.style import Plot
from pipeline.report.tables import (
    decay_table,
    horizon_table,
    measure_table,
    models_table,
    mse_table,
    problem_table,
    runs_table,
    steps_table,
    tuning_caveats,
    tuning_table,
)
from pipeline.tracking import names, store, ui


def document(sweep: Readout, drawn: list[Plot], experiment_file: Path) -> list[Section]:
    exp = sweep.exp
    intro = (
        f"Experiment {exp.name}: {len(exp.models)} model(s) trained on "
        + "; ".join(
            f"{t.task} at distances {', '.join(str(d) for d in t.distances)}" for t in exp.tasks
        )
        + f", with seeds {', '.join(str(s) for s in exp.seeds)}. "
        "The distance is the number of time steps from the input step carrying the needed "
        "information (the key) to the output step scored on it. The question: up to what "
        "distance does each model learn the dependency, and how much of the loss's gradient "
        "reaches the key step?"
    )
    sections = [
        Section("Summary", [intro]),
        Section("Method", [method(sweep)]),
        Section("Findings", [findings(sweep)]),
        Section("Figures", list(drawn)),
        Section("Tables", tables(sweep)),
    ]
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


def method(sweep: Readout) -> list[str]:
    """How every number of the report was made, in the order a reader meets them."""
    t = sweep.exp.training
    out = [
        f"Outcome. A run is solved when its validation accuracy reaches {t.solved_accuracy:g} "
        f"at a check (every {t.eval_every} updates, at most {t.max_steps}); solved and "
        "unsolved are decided on validation data. Validation and test hold no sequence of the "
        "training split.",
        splits_text(sweep),
        "Seeds. Each seed sets a run's initialisation, its own data set (training, validation "
        "and test sequences are generated from the seed) and its batch order; every variant at "
        "one (distance, seed) reads the same data. Two seeds of one variant at one distance "
        "therefore differ in their data as well as their initialisation.",
        "Horizons. A model holds a distance when at least half its seeds solved it. Its memory "
        "horizon is the largest distance it held at, having held at every shorter distance of "
        "the sweep; holding again after a failure is reported as non-monotone. The fitted "
        "horizon d50 is where a logistic regression of solved on log2(distance) (all runs of "
        f"the model, statsmodels) crosses 50%, with a {LEVEL:.0%} profile-likelihood interval; "
        "where every run solved, none did, or solved and unsolved distances are separated "
        "(all solved below a distance and none above it, with or without a mix at it: the "
        "fit's slope then runs off to infinity), no number is given, only the distances "
        "bracketing it.",
        "Gradients. Probes unroll the reference cell in float64 on validation sequences before "
        "training, during it and after it. The key share is each sample's ratio of the "
        "gradient norm at the key step to that at the output step, median over samples; the "
        "Jacobian norm ||dh_out/dh_key||_F/sqrt(H) (root mean square over samples, random "
        "vector-Jacobian products) measures the same path without the loss. The decay rate "
        "rho is fitted on log median norm over k = 1..distance; its e-folding length -1/ln(rho) "
        f"is given only where the fit's R² is at least {GEOMETRIC_R2} (a geometric curve), and "
        "models are compared over the same window (the same distance).",
        "Share against outcome. Pooling distances would confound distance with outcome, and "
        "pooling models would confound the cell with it. Within a distance (models pooled) "
        "solved and unsolved runs are described by a two-sided Mann-Whitney test, "
        "Holm-corrected over the distances, with the runs on each side counted; the verdict "
        "comes only from seeds of one model at one distance, the strata combined by an exact "
        "permutation test of the summed Mann-Whitney U (labels permuted within strata).",
        f"Time to solve. Kaplan-Meier curves (statsmodels); runs that did not solve within "
        f"{t.max_steps} updates, and diverged runs, are censored there. Medians only where the "
        "curve falls to one half, with statsmodels' 95% interval.",
        "Divergence. A run diverges on a non-finite loss or gradient, or when a "
        f"{t.log_every}-update window's mean training loss exceeds {t.diverge_loss_factor:g} "
        "times the task's memoryless baseline loss; a large pre-clip gradient norm is clipped, "
        "not counted as divergence.",
        "Reproducibility. Each run is seeded and deterministic: bitwise reproducible on the "
        "same processor with the same library versions (listed under Provenance). On another "
        "machine the same seeds can end differently near the edge of a model's horizon, so "
        "outcomes agree there within seed noise, not run for run.",
    ]
    out.append(_tuning_method(sweep))
    if sweep.regression_tasks:
        out.append(_adding_method(sweep))
    return out


def splits_text(sweep: Readout) -> str:
    """Which data each number of the report comes from, figure by figure and table by table."""
    tuned = (
        " the tuning table and the tuning sensitivity figure (tuning runs),"
        if sweep.exp.tuning is not None
        else ""
    )
    return (
        "Which data. Test split: test accuracy and loss (the top of the accuracy figure, the "
        "test MSE, the table of all runs, factor 1 of the length extrapolation). Validation "
        "split: solved or not, and so the seeds solved, the memory horizons and their brackets, "
        "the steps to solve, the scaling exponents and Kaplan-Meier curves; the learning "
        f"curves;{tuned} and the gradient probes and the mechanism's measures (probe batches of "
        "validation sequences). Training batches: the training gradient norm. Fresh sequences "
        "at half, twice and four times each run's distance, as many as the test split: the "
        "length extrapolation."
    )


def _adding_method(sweep: Readout) -> str:
    task = next(t for t in sweep.exp.tasks if t.task in sweep.regression_tasks)
    d = task.distances[0]
    if task.variant == "hochreiter":
        scale = (
            "on the target in [0, 1], 0.5 + (X1 + X2)/4, as Hochreiter & Schmidhuber (1997), "
            "who used 0.04. Both marked values lie far from the output, so chance accuracy is "
            "that of predicting 0.5"
        )
    else:
        scale = (
            "on the raw sum in [0, 2]; Hochreiter & Schmidhuber (1997) used 0.04 on the sum "
            "scaled to [0, 1], which is 0.16 on this scale. Chance accuracy is that of "
            "remembering only the later value (2 x tolerance)"
        )
    baselines = "; ".join(
        f"{v:.4g} ({name})" for name, v in baselines_at(sweep, task.task, d).items()
    )
    return (
        f"Adding problem, variant {task.variant} (pipeline/tasks.py: where its markers sit and "
        f"what distance means). A sequence counts as correct when the absolute error is below "
        f"{task.tolerance:g}, {scale}. Errors are compared with the MSE of the memoryless "
        f"strategies, at distance {d}: {baselines}."
    )


def _tuning_method(sweep: Readout) -> str:
    tuning, t = sweep.exp.tuning, sweep.exp.training
    if tuning is None:
        return (
            f"Training settings. Every variant trained with the same settings "
            f"({optimizer_words(t)}, batch {t.batch_size}, gradients {clip_words(t)}); none "
            "was tuned, so a variant that needs another learning rate is at a disadvantage."
        )
    grid = "; ".join(f"{field} in {values}" for field, values in tuning.grid.items())
    where = ", ".join(
        f"{task.task} at {sweep.exp.tuning_distance(task)}" for task in sweep.exp.tasks
    )
    return (
        f"Tuning. Every variant had the same budget: each point of the grid ({grid}) trained on "
        f"tuning seed(s) {tuning.seeds}, never the evaluation seeds, at one distance per task "
        f"({where}). Per variant, the grid point with the most tuning seeds solved wins, then "
        "the fewest mean steps to solve (unsolved counting as the budget), then the highest "
        "mean best validation accuracy, then the lowest best validation loss, then the grid's "
        "order. Only validation numbers enter the choice; the evaluation runs (the seeds "
        f"{sweep.exp.seeds}) then train with it at every distance."
    )


def tables(sweep: Readout) -> list:
    blocks = []
    for task in sweep.tasks:
        blocks += [
            f"{task}: the variants compared: cell, initialisation, size and parameter count"
            + (", and the settings tuning chose." if sweep.exp.tuning else "."),
            models_table(sweep, task),
        ]
        if sweep.selections:
            blocks += [
                f"{task}: tuning, per variant and grid point, over the tuning seeds, on the "
                "validation split: seeds solved, mean steps to solve (unsolved: the budget), "
                "mean best validation accuracy.",
                tuning_table(sweep, task),
                f"{task}: {tuning_caveats(sweep, task)}",
            ]
        if sweep.brackets:
            blocks += [
                f"{task}: memory horizon as the staircase bracketed it (held in at least half "
                "the seeds at the lower end, failed at the upper end, every seed counted; "
                "censored ends as bounds), seeds solved at each end, the scaling exponent alpha "
                "of updates to solve ~ distance^alpha (log-normal accelerated-failure-time fit, "
                "unsolved and diverged runs censored at the budget) with its 95% interval and "
                "n, and the horizon the fit predicts at the budget and at ten times it.",
                ranking.horizon_table(sweep, task),
            ]
            contrasts = ranking.contrast_table(sweep, task)
            if not contrasts.empty:
                blocks += [
                    f"{task}: the exponents compared pairwise (Wald test on the difference; "
                    "p-values Holm-corrected over every pair).",
                    contrasts,
                ]
        blocks += [
            f"{task}: memory horizon (held in at least half the seeds at this and every shorter "
            f"distance), fitted horizon d50 with its {LEVEL:.0%} interval, and seeds "
            "solved/planned per distance.",
            horizon_table(sweep, task),
            f"{task}: median steps to solve (Kaplan-Meier; runs that did not solve censored at "
            "the budget).",
            steps_table(sweep, task),
        ]
        if task in sweep.regression_tasks:
            blocks += [
                f"{task}: test MSE, median over seeds (the memoryless baselines are in the "
                "method).",
                mse_table(sweep, task),
            ]
        decay = decay_table(sweep, task)
        if not decay.empty:
            blocks += [
                f"{task}: e-folding length of the gradient norm at initialisation (fit over "
                "k = 1..distance: the same window for every model in a column), with rho and "
                "the fit's R², median over seeds.",
                decay,
                f"{task}: key share, the ratio of the gradient norm at the key step to that at "
                "the output step (median over seeds, range over seeds; then the quartiles over "
                "each run's probe samples, median over seeds).",
                measure_table(sweep, task, "key_share"),
                f"{task}: Jacobian norm ||dh_out/dh_key||_F/sqrt(H), without the loss (median "
                "over seeds, range over seeds).",
                measure_table(sweep, task, "jacobian_key"),
            ]
    return blocks


def provenance(sweep: Readout, experiment_file: Path) -> list[str]:
    exp, t = sweep.exp, sweep.exp.training
    inits = "; ".join(f"{m.name}: {m.cell}, {init_setting(exp, m.name)}" for m in exp.models)
    return [
        _source(exp, experiment_file),
        "Code commit(s) the runs were trained at: " + (", ".join(sweep.commits) or "unknown") + ".",
        f"MLflow: experiment {names.mlflow_name(exp.name)!r} (id {sweep.experiment_id}) at "
        f"{store.redact(sweep.tracking_uri)}; run ids in results.csv and the table of all "
        f"runs; this report is attached to the sweep's parent run {sweep.parent_run} (artifacts "
        f"report/). Its runs in the MLflow UI: {_ui(sweep)}.",
        f"Report written {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}.",
        "Trained on: " + _environments(sweep) + ".",
        f"Training budget: at most {t.max_steps} updates x batch {t.batch_size} = "
        f"{t.max_steps * t.batch_size:,} sequences per run; {_settings(sweep)}; stop at "
        f"validation accuracy {t.solved_accuracy:g}, checked every "
        f"{t.eval_every} updates; data {exp.data.n_train}/{exp.data.n_val}/{exp.data.n_test} "
        "train/val/test sequences.",
        f"Models: {inits}.",
        f"Gradient norms are global L2 norms taken before clipping (for the update, "
        f"gradients {clip_words(t)}). Probes: {exp.probe.batch_size} validation sequences, at "
        f"initialisation, {_every(exp.probe.every_evals)} and after training.",
    ]


def _settings(sweep: Readout) -> str:
    """The optimiser as the runs used it: the file's settings, and what tuning chose."""
    base = optimizer_words(sweep.exp.training)
    if not sweep.selections:
        return base
    many = len(sweep.tasks) > 1
    chosen = ", ".join(
        f"{s.task + ' ' if many else ''}{s.model} {grid_label(s.chosen)}" for s in sweep.selections
    )
    fields = ", ".join(sweep.exp.tuning.grid)
    return f"{base} except where tuning chose ({fields}): {chosen}"


def _ui(sweep: Readout) -> str:
    return ui.ui_url(sweep.experiment_id, ui.ui_address(sweep.tracking_uri))


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


def _environments(sweep: Readout) -> str:
    """Each machine and library set the finished runs trained on, with its number of runs."""
    found = sweep.finished["environment"].fillna("not recorded").value_counts()
    return "; ".join(f"{env} ({n} runs)" for env, n in found.items())


def _every(n: int) -> str:
    if n == 0:
        return "never during training"
    return "every validation" if n == 1 else f"every {n} validations"
