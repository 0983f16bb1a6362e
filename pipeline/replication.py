"""``python -m pipeline replicate``: run the published claims of ``experiments/replications/`` and
write the replication report.

Each replication file is an ordinary experiment file with a ``claim`` block (``claims``). For
each claim it runs, the stages run as they always do: ``data.run``, ``phases.run`` (resumable: a
rerun skips finished runs) and ``report.run`` (``reports/<claim>/``). Then
``reports/replications/`` (``report.html``, ``report.md``) gets one row per claim, every claim
of the folder, whether this call ran it or not (``report.replications``).

Which claims run: with ``claim``, that one, whatever its size; otherwise those sized for this
machine: every ``compute: cpu`` claim, and the ``compute: gpu`` ones only where torch finds a
GPU, or with ``everything``. A claim left out is "not run" on the page, with the reason, unless
result files of an earlier run exist (they are checked as they stand).
"""

from __future__ import annotations

from pathlib import Path

from pipeline import config, data, paths, report
from pipeline.config import Experiment
from pipeline.errors import ConfigError, ReportError, SweepError
from pipeline.report.publish import staging
from pipeline.report.reading import planned
from pipeline.report.replications import Entry, write
from pipeline.sweep import phases

FOLDER = "replications"  # experiments/replications/*.yaml; reports/replications/


def claim_files() -> list[Path]:
    """Every replication file, sorted by name."""
    return sorted((paths.experiments_dir() / FOLDER).glob("*.yaml"), key=lambda p: p.stem)


def load_claims(files: list[Path]) -> dict[str, tuple[Path, Experiment]]:
    """Each file validated, by claim name. Raises ConfigError (naming the file) for an invalid
    file, one without a ``claim`` block, or a claim named like the report's own folder.
    """
    out = {}
    for path in files:
        exp = config.load(path)
        if exp.claim is None:
            raise ConfigError(f"{path}: claim: missing; a replication file holds a claim block")
        if exp.name == FOLDER:
            raise ConfigError(f"{path}: the name {FOLDER!r} is the replication report's folder")
        out[exp.name] = (path, exp)
    return out


def gpu_here() -> bool:
    import torch

    return torch.cuda.is_available()


def plan(
    claims: dict[str, tuple[Path, Experiment]], claim: str | None, everything: bool, gpu: bool
) -> tuple[list[str], dict[str, str]]:
    """``(to run, {left out: why})``. Raises ConfigError for an unknown ``claim``."""
    if claim is not None and claim not in claims:
        known = ", ".join(claims) or "none"
        raise ConfigError(
            f"no claim {claim!r} in {paths.experiments_dir() / FOLDER} (claims: {known})"
        )
    run, skipped = [], {}
    for name, (_, exp) in claims.items():
        if name == claim or (claim is None and (exp.claim.compute == "cpu" or gpu or everything)):
            run.append(name)
        elif exp.claim.compute == "gpu" and not gpu:
            skipped[name] = (
                "sized for a GPU (compute: gpu) and this machine has none; run it where one is, "
                f"or here with make replicate CLAIM={name} (or ALL=1 for every claim)"
            )
        else:
            skipped[name] = f"this call ran {claim} only (make replicate CLAIM={name} runs it)"
    return run, skipped


def run(
    claim: str | None = None,
    everything: bool = False,
    jobs: int = 1,
    executor: str = "local",
    log=print,
    files: list[Path] | None = None,
) -> Path:
    """Run the claims ``plan`` picks among ``files`` (default ``claim_files()``), then write
    ``reports/replications/``; returns its report.html. Every claim file is validated before
    any work starts. Raises SweepError after the page is written when some claim's runs failed
    (the other claims still ran).
    """
    claims = load_claims(claim_files() if files is None else files)
    todo, skipped = plan(claims, claim, everything, gpu_here())
    failed = {}
    for name in todo:
        path, exp = claims[name]
        if exp.claim.compute == "gpu" and not gpu_here():
            log(f"replicate: {name} is sized for a GPU and this machine has none: hours here")
        log(f"replicate: {name} ({path})")
        data.run(exp, log=log)
        try:
            phases.run(exp, jobs=jobs, executor=executor, log=log)
        except SweepError as e:
            failed[name] = str(e)
            log(f"replicate: {name}: {e}")
        try:
            report.run(exp, experiment_file=path)
        except ReportError as e:  # no run finished: the page says not run
            log(f"replicate: {name}: no report ({e})")
    page = write_page(claims, skipped)
    log(f"replicate: {len(todo)} claim(s) run, {len(skipped)} left out; report: {page}")
    if failed:
        raise SweepError(
            "runs failed in " + "; ".join(f"{name}: {why}" for name, why in failed.items())
        )
    return page


def write_page(claims: dict[str, tuple[Path, Experiment]], skipped: dict[str, str]) -> Path:
    """Write ``reports/replications/`` for every claim from its result files."""
    entries = [
        Entry(
            file=_shown(path),
            exp=exp,
            runs=planned(exp)[0],
            why_not_run=skipped.get(name),
            has_report=(paths.reports_dir(name) / "report.html").exists(),
        )
        for name, (path, exp) in claims.items()
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
