"""What the report holds, in order, as ``render.Section``s of paragraphs, bullet lists, tables and
figures: the abstract (the answer, and the one figure that shows it), the method, the results in
short paragraphs (horizons and scaling, the gradient, the mechanism during training, length
extrapolation), and the appendix (per-distance detail, tuning, problem runs, provenance, every
run).
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
from pipeline.report import extrapolation, over_training, ranking, scaling
from pipeline.report.abstract import abstract
from pipeline.report.findings import detail_findings, gradient_findings, outcome_findings
from pipeline.report.render import Section
from pipeline.report.results import (
    FEW_RUNS,
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
    """The report in order: the abstract with the figure that answers the question, the method,
    the results in short paragraphs, then the appendix with every per-distance number, the
    problem runs, the provenance and every run. A figure the document does not place (none
    should be left) goes at the end of the appendix rather than missing.
    """
    figures = {p.name: p for p in drawn}
    placed: set[str] = set()

    def fig(name: str) -> list[Plot]:  # a figure of every task goes where it is first asked for
        found = figures.get(name)
        if found is None or name in placed:
            return []
        placed.add(name)
        return [found]

    if "horizons" in figures:  # the figure that shows the answer comes right after it
        figures["horizons"].caption += " " + _why_this_figure()
    sections = [
        Section("Abstract", [abstract(sweep), *fig("horizons")]),
        Section(
            "Method",
            [
                _design(sweep, "samples" in figures),
                *fig("samples"),
                *_variants(sweep),
                method(sweep),
            ],
        ),
        Section("Results", [_results_intro(sweep)]),
    ]
    for task in sweep.tasks:
        sections += _results(sweep, task, fig)
    sections.append(Section("Appendix", [_appendix_intro()]))
    for task in sweep.tasks:
        sections += _appendix(sweep, task, fig)
    left = [p for name, p in figures.items() if name not in placed]
    if left:
        sections.append(Section("Other figures", left, level=3))
    problems = problem_table(sweep)
    sections.append(
        Section(
            "Problem runs",
            ["Runs that failed, diverged, are missing or stale, or have no probe data.", problems]
            if not problems.empty
            else ["None: every planned run finished without diverging, with probe data."],
            level=3,
        )
    )
    sections.append(Section("Provenance", [provenance(sweep, experiment_file)], level=3))
    sections.append(
        Section(
            "All runs",
            [
                "Every evaluation run (test accuracy and loss on the test split; steps and key "
                "shares as in the method); results.csv holds every column.",
                runs_table(sweep),
            ],
            level=3,
        )  # fmt: skip
    )
    return sections


def _why_this_figure() -> str:
    return (
        "This figure, rather than accuracy against distance or steps to solve against "
        "distance, because it shows the two numbers the abstract gives per variant, each with "
        "its uncertainty; the runs behind them are drawn in the results."
    )


def _design(sweep: Readout, samples: bool) -> str:
    exp = sweep.exp
    if exp.staircase is not None:
        s = exp.staircase
        distances = (
            f"each variant's distances are found by a staircase, one rule for every variant: "
            f"train the seeds {', '.join(map(str, exp.seeds))} at distance {s.start}, double "
            f"while at least half of them solve, stop after {s.failures} failed level(s) in a "
            f"row or at the cap {s.cap}, go down by halving from a failed start; then add seed(s) "
            f"{', '.join(map(str, s.extra_seeds)) or 'none'} at both ends of the bracket and "
            "bisect it once (pipeline/config/staircase.py)"
        )
    else:
        distances = (
            "distances "
            + "; ".join(f"{t.task}: {', '.join(str(d) for d in t.distances)}" for t in exp.tasks)
            + f", with seeds {', '.join(map(str, exp.seeds))}"
        )
    control = (
        f" Every family verdict the brackets decide is trained again at one shared setting "
        f"({ranking.shared_text(sweep)}) on the evaluation seeds (the control)."
        if exp.control is not None
        else ""
    )
    return (
        f"Experiment {exp.name}: {len(exp.models)} variants on {', '.join(sweep.tasks)}; "
        f"{distances}. The distance is the number of time steps from the input step carrying "
        "the needed information (the key) to the output step scored on it"
        + (" (the next figure shows one sequence of each task)." if samples else ".")
        + control
    )


def _variants(sweep: Readout) -> list:
    blocks = []
    for task in sweep.tasks:
        blocks += [
            f"{task}: the variants compared: cell, initialisation, size and parameter count"
            + (", and the settings tuning chose." if sweep.exp.tuning else "."),
            models_table(sweep, task),
        ]
    return blocks


def _results_intro(sweep: Readout) -> str:
    return (
        "Each subsection states what this run shows, with its numbers and n; the appendix holds "
        "every per-distance number and the CSV files every column (results.csv, probe.csv"
        + (", tuning.csv" if sweep.tuning is not None and not sweep.tuning.empty else "")
        + (", control.csv" if sweep.control is not None and not sweep.control.empty else "")
        + ")."
    )


def _appendix_intro() -> str:
    return (
        "The detail behind the results: per-distance counts, every share and interval, tuning, "
        "time to solve, the figures per distance, the runs that did not finish cleanly, where "
        "the runs came from, and every run."
    )


def _title(sweep: Readout, task: str, words: str) -> str:
    return f"{words} ({task})" if len(sweep.tasks) > 1 else words


def _results(sweep: Readout, task: str, fig) -> list[Section]:
    """The results on ``task``: horizons and scaling, the gradient, the mechanism during
    training, length extrapolation; short paragraphs, the key table and figures.
    """
    outcome = [*outcome_findings(sweep, task)]
    if sweep.brackets:
        outcome += [
            f"Per variant: the bracket with the seeds solved at its ends, the exponent alpha with "
            f"its 95% interval and n, and the horizon the fit predicts at the budget and at "
            f"{scaling.WIDER_BUDGET} times it.",
            ranking.horizon_table(sweep, task),
        ]
    outcome += [*fig("scaling"), *fig("accuracy_vs_distance"), *fig("adding_mse")]
    gradient = [*gradient_findings(sweep, task), *fig("key_share_vs_distance")]
    mechanism = over_training.mechanism_sentences(sweep, task)
    table = over_training.mechanism_table(sweep, task)
    if not table.empty:
        mechanism += [
            "Per variant and outcome (median over runs, at initialisation → after training; "
            "probes on validation sequences): the key share, the Jacobian norm, the spectral "
            "radius of the block of W in the Elman W's place, and the keep gate's longest time "
            "constant over units.",
            table,
        ]
    mechanism += [*fig(f"probe_over_training_{task}"), *fig(f"mechanism_over_training_{task}")]
    sections = [
        Section(_title(sweep, task, "Horizons and scaling"), outcome, level=3),
        Section(_title(sweep, task, "The gradient at the key step"), gradient, level=3),
    ]
    if len(mechanism) > 0:
        sections.append(
            Section(_title(sweep, task, "The mechanism during training"), mechanism, level=3)
        )
    said = extrapolation.extrapolation_sentence(sweep, task)
    summary = extrapolation.summary_table(sweep, task)
    if said or not summary.empty:
        blocks = [said] if said else []
        if not summary.empty:
            blocks += [
                "Per variant, over its runs that solved their own distance: accuracy at half, "
                "once, twice and four times that distance (median, range, n; 1x is the test "
                "accuracy) and what the variant learned.",
                summary,
            ]
        blocks += fig("extrapolation")
        sections.append(Section(_title(sweep, task, "Length extrapolation"), blocks, level=3))
    return sections


def _appendix(sweep: Readout, task: str, fig) -> list[Section]:
    """Every per-distance number of ``task``: counts and the d50 fit, the exponents compared,
    tuning, time to solve, the gradient at every distance, extrapolation per distance.
    """
    detail = detail_findings(sweep, task)
    counts = [
        *[s for s in detail if ": memory horizon" in s],
        f"Seeds solved/planned per distance, and the fitted horizon d50 (a logistic regression "
        f"of solved on log2(distance), {LEVEL:.0%} profile-likelihood interval)"
        + (
            ": with a staircase the distances were chosen by the outcomes, so the fit is "
            "descriptive only, and it is left out where the bracket is censored."
            if sweep.brackets
            else "."
        ),
        horizon_table(sweep, task),
    ]
    if sweep.brackets:
        contrasts = ranking.contrast_table(sweep, task)
        if not contrasts.empty:
            counts += [
                "The exponents compared pairwise (Wald test on the difference; p-values "
                "Holm-corrected over every pair).",
                contrasts,
            ]
    counts += [
        "Median steps to solve (Kaplan-Meier, on validation checks; runs that did not solve "
        "censored at the budget).",
        steps_table(sweep, task),
        *fig("steps_to_solve"),
        *fig("learning_curves"),
    ]
    if task in sweep.regression_tasks:
        counts += [
            "Test MSE, median over seeds (the memoryless baselines are in the method).",
            mse_table(sweep, task),
        ]
    sections = [Section(_title(sweep, task, "Outcomes per distance"), counts, level=3)]
    if sweep.selections:
        sections.append(
            Section(
                _title(sweep, task, "Tuning"),
                [
                    "Per variant and grid point, over the tuning seeds, on the validation split: "
                    "seeds solved, mean steps to solve (unsolved: the budget), mean best "
                    "validation accuracy.",
                    tuning_table(sweep, task),
                    tuning_caveats(sweep, task),
                    *fig("tuning_sensitivity"),
                ],
                level=3,
            )
        )
    gradient = [
        s for s in detail if ": memory horizon" not in s and not s.startswith("Median steps")
    ]
    decay = decay_table(sweep, task)
    if not decay.empty:
        gradient += [
            "E-folding length of the gradient norm at initialisation (fit over k = 1..distance: "
            "the same window for every variant in a column), with rho and the fit's R², median "
            "over seeds.",
            decay,
            "Key share, the ratio of the gradient norm at the key step to that at the output "
            "step (median over seeds, range over seeds; then the quartiles over each run's "
            "probe samples, median over seeds).",
            measure_table(sweep, task, "key_share"),
            "Jacobian norm ||dh_out/dh_key||_F/sqrt(H), without the loss (median over seeds, "
            "range over seeds).",
            measure_table(sweep, task, "jacobian_key"),
        ]
    gradient += [*fig(f"gradient_vs_k_{task}"), *fig("grad_norm_training")]
    sections.append(Section(_title(sweep, task, "The gradient per distance"), gradient, level=3))
    detail_table = extrapolation.detail_table(sweep)
    detail_table = detail_table[detail_table["task"] == task].drop(columns="task")
    if not detail_table.empty:
        sections.append(
            Section(
                _title(sweep, task, "Length extrapolation per distance"),
                [
                    "Per variant and training distance, every finished run counted (n): the "
                    "median accuracy at each factor of the distance, with the distance scored.",
                    detail_table,
                ],
                level=3,
            )
        )
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
        _horizon_method(sweep),
        "Scaling. Per variant, a log-normal accelerated-failure-time model (lifelines) of "
        "updates to solve on distance, log T = a + alpha log d + sigma eps: alpha is the "
        "exponent of median updates to solve ~ distance^alpha, with its 95% Wald interval; runs "
        "that did not solve within the budget, and diverged runs, are censored at the budget. "
        "Two variants' exponents are compared by a Wald test, Holm-corrected over the pairs. "
        "The ranking puts a variant ahead where it held at a distance where the next failed "
        "(every seed counted), else where its exponent is significantly smaller, else calls "
        "them not separated.",
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
        "The mechanism. With every probe: the spectral radius and largest singular value of "
        "each block of the recurrent matrix W (Pascanu et al. 2013: below 1 the long-term "
        "gradient vanishes, above 1 it can explode), and the keep gate's time constant "
        "1/(1 - a) of each unit's geometric-mean gate (the LSTM's f, the GRU's z; Tallec & "
        "Ollivier 2018), summarised by the median and the largest over units "
        "(pipeline/mechanism.py).",
        "Length extrapolation. After training, each run is scored on fresh sequences at half, "
        "twice and four times its distance, as many as its test split. A variant learned a "
        "latch that holds at longer gaps where its solved runs keep, at four times the "
        "distance, a median of at least 90% of the way from chance to perfect accuracy; a "
        "solution tied to its own length where they keep at most 10%.",
        f"Time to solve. Kaplan-Meier curves (statsmodels); runs that did not solve within "
        f"{t.max_steps} updates, and diverged runs, are censored there. Medians only where the "
        f"curve falls to one half, with statsmodels' 95% interval only from {FEW_RUNS} runs "
        "(fewer claim more than they hold: the median is given with its n).",
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


def _horizon_method(sweep: Readout) -> str:
    if sweep.brackets:
        return (
            "Horizons. A variant holds a distance when at least half its seeds there solved it. "
            "Its memory horizon is the staircase's bracket: at least the longest distance it "
            "held at and below the distance above it where it failed, every seed counted at "
            "both ends. A variant that held at the cap has a horizon of at least the cap, one "
            "that failed at the shortest distance one below it: bounds, never values. The "
            "appendix also gives a logistic fit of solved on log2(distance) (d50), descriptive "
            "only, since the staircase chose its distances by the outcomes."
        )
    return (
        "Horizons. A model holds a distance when at least half its seeds solved it. Its memory "
        "horizon is the largest distance it held at, having held at every shorter distance of "
        "the sweep (at the longest distance run: at least that; failing the shortest: below "
        "it); holding again after a failure is reported as non-monotone. The fitted horizon d50 "
        "is where a logistic regression of solved on log2(distance) (all runs of the model, "
        f"statsmodels) crosses 50%, with a {LEVEL:.0%} profile-likelihood interval; where every "
        "run solved, none did, or solved and unsolved distances are separated, no number is "
        "given, only the distances bracketing it."
    )


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
