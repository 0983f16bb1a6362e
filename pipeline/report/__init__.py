"""The report stage: accuracy and gradient norm against distance, from one experiment's runs.

Reads the per-run result files and the experiment's MLflow runs (never training code) and writes
``reports/<experiment>/``:

    report.html   one self-contained page (figures embedded as PNG, a table of contents): opens
                  offline
    report.md     the same content in Markdown, figures linked from figures/
    abstract.txt  the abstract alone, as the terminal shows it (make report prints it)
    results.csv   one row per planned evaluation run of the experiment, unfinished ones included
    tuning.csv, control.csv   the same for the tuning runs and the control runs, where there are
    probe.csv     the gradient-norm curves of every probed run: one row per (run, phase, k)
    figures/      every figure as PNG; the gradient curves also as SVG

The folder is built beside its final place and swapped in whole, so an interruption leaves the
previous report (or none), never half of one. The same files are then logged as the artifacts
``report/`` of the sweep's parent run in MLflow (the run its finished runs nest under), replacing
the previous report there.

Where each part lives: ``reading`` reads the runs into a ``results.Readout``; ``stats``,
``scaling``, ``survival`` and ``compare`` compute counts, horizons, exponents, times to solve and
tests; ``ranking`` (brackets, exponents, the ranking, the family verdicts and their control) and
``verdict`` (the same without a staircase), ``over_training`` (the probes and the mechanism
against the training step) and ``extrapolation`` (accuracy at other distances) give their
tables, sentences and figures; ``tables``, ``findings``, ``figures`` and ``gradient_figures`` the
rest; ``abstract`` the first paragraph; ``document`` puts them in order and ``render`` writes
HTML and Markdown; ``publish`` swaps the folder into place and attaches it to MLflow. For the
replications (``experiments/replications/``): ``checks`` decides each claim's verdict from its
runs and ``replications`` writes ``reports/replications/``.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from pipeline import paths
from pipeline.config import Experiment
from pipeline.report.document import document
from pipeline.report.figures import plots
from pipeline.report.publish import attach, parent_run, staging
from pipeline.report.reading import collect
from pipeline.report.render import render_html, render_markdown
from pipeline.report.results import Readout
from pipeline.tracking import store


def run(exp: Experiment, experiment_file: str | Path | None = None) -> Path:
    """Write ``reports/<experiment>/`` and attach it to MLflow; returns the path of report.html.

    ``experiment_file`` (default ``experiments/<name>.yaml``) is hashed for the provenance.
    Raises ReportError when the MLflow experiment does not exist or no run has finished, and
    TrackingError for an unreachable store.
    """
    client = store.connect()
    sweep = collect(exp, client)
    sweep.parent_run = parent_run(client, sweep)  # named in the provenance
    folder = paths.reports_dir(exp.name)
    with staging(folder) as stage:
        write(sweep, stage, Path(experiment_file or paths.experiment_file(exp.name)))
    attach(client, sweep, folder)
    return folder / "report.html"


def wrap(text: str, width: int = 100) -> str:
    """``text`` wrapped for a terminal, paragraph by paragraph."""
    return "\n\n".join(textwrap.fill(p, width) for p in text.split("\n\n"))


def write(sweep: Readout, folder: Path, experiment_file: Path) -> None:
    """Write every report file into the (empty) ``folder``."""
    (folder / "figures").mkdir(parents=True)
    sweep.runs.to_csv(folder / "results.csv", index=False)
    for name, frame in (("tuning", sweep.tuning), ("control", sweep.control)):
        if frame is not None and not frame.empty:
            frame.to_csv(folder / f"{name}.csv", index=False)
    sweep.curves.to_csv(folder / "probe.csv", index=False)
    drawn = plots(sweep)
    for plot in drawn:  # PNG for every figure; SVG only where it helps (it costs a second each)
        for suffix in ("png", "svg") if plot.svg else ("png",):
            plot.figure.savefig(folder / "figures" / f"{plot.name}.{suffix}", dpi=110)
    title = f"Long-term dependencies in recurrent networks: experiment {sweep.exp.name}"
    sections = document(sweep, drawn, experiment_file)
    # the abstract alone, for the terminal: make report and make run-all print it
    (folder / "abstract.txt").write_text(wrap(f"{title}\n\n{sections[0].blocks[0]}") + "\n")
    (folder / "report.html").write_text(render_html(sections, title, folder))
    (folder / "report.md").write_text(render_markdown(sections, title))
