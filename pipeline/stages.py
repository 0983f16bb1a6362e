"""Which code each stage's outputs depend on: the one list that Make and the sweep both read.

``STAGE_CODE[stage]`` is what Make watches: a change to any of these files reruns the stage (for
train, the sweep then skips every run that is still current). ``OUTCOME_CODE`` is the part of
the train stage's code that decides a run's outcome: a change to it makes every finished run
stale (``resume.code_version``), while a change to the rest (the scheduler, the executors, the
tracking door, MLflow's conventions) retrains nothing. ``python -m pipeline.stages train`` prints
a stage's files for the Makefile. Standard library only, so Make can ask before anything is
installed.
"""

from __future__ import annotations

import sys
from pathlib import Path

PACKAGE = "pipeline"

COMMON = (
    "__init__.py",
    "paths.py",
    "errors.py",
    "files.py",
    "fields.py",
    "config.py",
    "sections.py",
    "claims.py",  # the claim block of a replication file: no run's outcome depends on it
    "tasks/*.py",
    "capacity.py",
    "runs.py",
)
DATA = (*COMMON, "data.py")
OUTCOME_CODE = (
    *("config.py", "sections.py", "fields.py", "runs.py", "tasks/*.py", "capacity.py"),
    *("data.py", "models.py", "decay.py"),
    *("probe.py", "batches.py", "record.py", "learner.py", "train.py"),
)
TRAIN = (
    *COMMON,
    *(name for name in OUTCOME_CODE if name not in COMMON),
    "tracking.py",
    "layout.py",
    "conventions.py",
    "runner.py",
    "local_executor.py",
    "resume.py",
    "sweep.py",
    "workers.py",
    "preload.py",
    "ray_executor.py",
    "stages.py",
    "tuning.py",
)
REPORT = (*COMMON, "decay.py", "tracking.py", "layout.py", "tuning.py", "report/*.py")
# python -m pipeline replicate: each claim's data, train and report stages, then the page. Not a
# file target (its stages skip finished work themselves); listed so that every stage's code is here
REPLICATE = (*dict.fromkeys((*DATA, *TRAIN, *REPORT)), "replication.py")

# python -m pipeline derive (make ... SET=...): a derived experiment file is written again when
# this code changes
DERIVE = (*COMMON, "derive.py")

STAGE_CODE = {
    "derive": DERIVE,
    "data": DATA,
    "train": TRAIN,
    "report": REPORT,
    "replicate": REPLICATE,
}


def files(stage: str) -> list[str]:
    """The stage's code files, as paths (or globs) relative to the project root."""
    return [f"{PACKAGE}/{name}" for name in STAGE_CODE[stage]]


def outcome_files() -> list[Path]:
    """``OUTCOME_CODE``'s files, globs expanded, in a stable order (for the code version)."""
    package = Path(__file__).parent
    return [path for name in OUTCOME_CODE for path in sorted(package.glob(name))]


if __name__ == "__main__":
    print(" ".join(files(sys.argv[1])))
