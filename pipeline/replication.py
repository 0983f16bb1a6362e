"""``python -m pipeline replicate``: run the published claims of ``experiments/replications/`` and
the parts of them sized for this machine, and write the replication report.

Each replication file is an ordinary experiment file with a ``claim`` block (``claims``). A part
of a claim (``claim.parts``) is the claim's experiment with some settings changed, named
``<claim>.<part>`` (``derive.part``). For each claim or part it runs, the stages run as they
always do: ``data.run``, ``phases.run`` (resumable: a rerun skips finished runs) and
``report.run`` (``reports/<name>/``). Then ``reports/replications/`` (``report.html``,
``report.md``) gets one row per claim and per part, whether this call ran it or not
(``report.replications``).

Which run: with ``claim``, that one (a claim or a part), whatever its size; with ``everything``,
all; otherwise those that fit ``budget`` minutes here. Before any work, ``estimate`` measures
how fast this machine trains each model at each length and prints every claim's and part's
estimated time (its runs without a result, each to its last update, on ``jobs`` workers); then
the claims run, cheapest first, each whose estimate fits what is left of the budget, and then
the parts of the claims left out, the same way (``plan``). What comes off the budget is the
time a claim trained, not its estimate: one whose runs solve early leaves the rest to the next.
A claim or part left out is "not run" on the page, with its estimate, unless result files of
an earlier run exist (they are checked as they stand).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipeline import config, data, estimate, paths, report, stages
from pipeline.config import Experiment, derive
from pipeline.config.claims import Part
from pipeline.config.runs import RunSpec, evaluation_runs, is_done
from pipeline.errors import ConfigError, ReportError, SweepError
from pipeline.report.publish import staging
from pipeline.report.reading import planned
from pipeline.report.replications import Entry, write
from pipeline.sweep import phases

FOLDER = "replications"  # experiments/replications/*.yaml; reports/replications/
BUDGET_MINUTES = (
    15.0  # make replicate's default (BUDGET=): minutes of estimated training a call runs
)


@dataclass(frozen=True)
class Replication:
    """A claim, or a part of one, as the runner plans it."""

    path: Path  # the claim file
    exp: Experiment  # a part's: the claim's experiment with the part's settings
    part: Part | None = None
    part_of: str | None = None  # a part's claim

    @property
    def name(self) -> str:
        return self.exp.name


@dataclass(frozen=True)
class Estimate:
    """What is left of a claim or part to train here (``estimate``)."""

    runs: int  # runs without a current result file
    seconds: float  # their training on the workers, every run to its last update


def claim_files() -> list[Path]:
    """Every replication file, sorted by name."""
    return sorted((paths.experiments_dir() / FOLDER).glob("*.yaml"), key=lambda p: p.stem)


def load_claims(files: list[Path]) -> dict[str, Replication]:
    """Each file validated, with its parts, by name: every claim followed by its parts. Raises
    ConfigError (naming the file) for an invalid file or part, one without a ``claim`` block, or
    a claim named like the report's own folder.
    """
    out = {}
    for path in files:
        exp = config.load(path)
        if exp.claim is None:
            raise ConfigError(f"{path}: claim: missing; a replication file holds a claim block")
        if exp.name == FOLDER:
            raise ConfigError(f"{path}: the name {FOLDER!r} is the replication report's folder")
        out[exp.name] = Replication(path, exp)
        for name, part in derive.parts(path).items():
            out[name] = Replication(path, part, exp.claim.parts[name.rpartition(".")[2]], exp.name)
    return out


def pending(exp: Experiment, version: str) -> list[RunSpec]:
    """``exp``'s runs without a result file of code ``version`` (what the sweep would train)."""
    return [spec for spec in evaluation_runs(exp) if not is_done(spec, version)]


def estimates(
    items: dict[str, Replication], jobs: int, log=print, seconds: float = 0.5
) -> dict[str, Estimate]:
    """Each item's ``Estimate`` here, from one calibration of every model and length they have
    left to train (``estimate.calibrate``, ``seconds`` each).
    """
    version = stages.code_version()
    left = {name: pending(item.exp, version) for name, item in items.items()}
    specs = [spec for specs in left.values() for spec in specs]
    if specs:
        n = len({estimate.speed_key(s) for s in specs})
        log(
            f"replicate: timing {n} models and lengths on this machine ({seconds:g} s of "
            "updates each)"
        )
    speeds = estimate.calibrate(specs, seconds)
    return {
        name: Estimate(len(specs), estimate.sweep_seconds(specs, speeds, jobs))
        for name, specs in left.items()
    }


def plan(
    items: dict[str, Replication],
    costs: dict[str, Estimate],
    claim: str | None,
    everything: bool,
    budget: float,
    take: Callable[[str], float] | None = None,
) -> tuple[list[str], dict[str, str]]:
    """``(to run, {left out: why})`` for ``budget`` minutes of training: ``claim`` alone, or
    every one with ``everything``; otherwise the claims, cheapest first, each whose estimate
    fits what is left of the budget, then the same way the parts of the claims left out.

    ``take(name)``, where given, runs each one as it is picked and returns the seconds it
    trained, which come off the budget in place of its estimate: a claim whose runs solve early
    leaves the rest to the next. Without it nothing runs and the estimates come off: the
    forecast. Raises ConfigError for an unknown ``claim``.
    """
    if claim is not None and claim not in items:
        known = ", ".join(items) or "none"
        raise ConfigError(
            f"no claim or part {claim!r} in {paths.experiments_dir() / FOLDER} (these: {known})"
        )
    take = take or (lambda name: costs[name].seconds)
    if claim is not None or everything:
        run = [claim] if claim is not None else list(items)
        for name in run:
            take(name)
        why = "this call ran {claim} only (make replicate CLAIM={name} runs it)"
        return run, {n: why.format(claim=claim, name=n) for n in items if n not in run}
    run, skipped, left = [], {}, budget * 60
    claims = [name for name, item in items.items() if item.part_of is None]
    parts = [name for name, item in items.items() if item.part_of is not None]
    for group in (claims, parts):
        for name in sorted(group, key=lambda n: costs[n].seconds):
            if items[name].part_of in run:
                skipped[name] = f"its claim {items[name].part_of} ran in this call"
            elif costs[name].seconds <= left:
                run.append(name)
                left -= take(name)
            else:
                skipped[name] = (
                    f"estimated {duration(costs[name].seconds)} of training on this machine, "
                    f"over what was left of the {budget:g}-minute budget; make replicate "
                    f"CLAIM={name} runs it (or BUDGET=minutes, ALL=1 for every claim and part)"
                )
    return run, skipped


def duration(seconds: float) -> str:
    """``40 s``, ``12 min``, ``9.6 h``."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def estimate_table(
    items: dict[str, Replication], costs: dict[str, Estimate], todo: list[str]
) -> str:
    """The estimates as ``make replicate`` prints them, one line per claim and part."""
    width = max(len(name) for name in items) + 2
    lines = [
        f"  {'claim or part':<{width}}{'runs left':>10}  {'estimate':>9}  plan",
    ]
    for name, item in items.items():
        shown = ("  " + name) if item.part_of else name
        cost = costs[name]
        lines.append(
            f"  {shown:<{width}}{cost.runs:>10}  {duration(cost.seconds):>9}  "
            + ("run" if name in todo else "not run")
        )
    return "\n".join(lines)


def run(
    claim: str | None = None,
    everything: bool = False,
    jobs: int = 1,
    executor: str = "local",
    log=print,
    files: list[Path] | None = None,
    budget: float = BUDGET_MINUTES,
    dry_run: bool = False,
) -> Path | None:
    """Estimate every claim and part of ``files`` (default ``claim_files()``), print the
    estimates, run those ``plan`` picks, then write ``reports/replications/``; returns its
    report.html (None with ``dry_run``: the estimates only). Every claim file is validated
    before any work starts. Raises SweepError after the page is written when some claim's runs
    failed (the other claims still ran).
    """
    items = load_claims(claim_files() if files is None else files)
    if claim is not None and claim not in items:
        plan(items, {}, claim, everything, budget)  # raises, naming the claims
    timed = {claim: items[claim]} if claim is not None else items
    costs = estimates(timed, jobs, log)
    costs |= {name: Estimate(0, 0.0) for name in items if name not in costs}
    forecast, _ = plan(items, costs, claim, everything, budget)
    total = sum(costs[name].seconds for name in forecast)
    log(
        f"replicate: estimated training here on {jobs} worker(s), every run to its last update "
        f"(a run that solves stops sooner); budget {budget:g} min\n"
        + estimate_table(timed, costs, forecast)
        + f"\nreplicate: {len(forecast)} to run, estimated at most {duration(total)} of training"
        + ("" if claim or everything else "; what one leaves unused goes to the next in line")
    )
    if dry_run:
        return None
    failed = {}

    def take(name: str) -> float:
        """Run ``name``'s stages; the seconds it trained."""
        item = items[name]
        log(f"replicate: {name} ({item.path}), estimated at most {duration(costs[name].seconds)}")
        data.run(item.exp, log=log)
        started = time.perf_counter()
        try:
            phases.run(item.exp, jobs=jobs, executor=executor, log=log)
        except SweepError as e:
            failed[name] = str(e)
            log(f"replicate: {name}: {e}")
        trained = time.perf_counter() - started
        log(f"replicate: {name} trained in {duration(trained)}")
        try:
            report.run(item.exp, experiment_file=item.path)
        except ReportError as e:  # no run finished: the page says not run
            log(f"replicate: {name}: no report ({e})")
        return trained

    ran, skipped = plan(items, costs, claim, everything, budget, take)
    page = write_page(items, skipped)
    log(f"replicate: {len(ran)} run, {len(skipped)} left out; report: {page}")
    if failed:
        raise SweepError(
            "runs failed in " + "; ".join(f"{name}: {why}" for name, why in failed.items())
        )
    return page


def write_page(items: dict[str, Replication], skipped: dict[str, str]) -> Path:
    """Write ``reports/replications/`` for every claim and part from its result files."""
    entries = [
        Entry(
            file=_shown(item.path),
            exp=item.exp,
            runs=planned(item.exp)[0],
            why_not_run=skipped.get(name),
            has_report=(paths.reports_dir(name) / "report.html").exists(),
            part=item.part,
            part_of=item.part_of,
        )
        for name, item in items.items()
    ]
    folder = paths.reports_dir(FOLDER)
    with staging(folder) as stage:
        write(entries, stage)
    return folder / "report.html"


def _shown(path: Path) -> Path:
    """``experiments/replications/x.yaml`` for a file of this project; others as given."""
    try:
        return path.resolve().relative_to(paths.SOURCE_ROOT)
    except ValueError:
        return path
