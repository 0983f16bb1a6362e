"""Which code each stage's outputs depend on: the one list that Make and the sweep both read.

``STAGE_CODE[stage]`` is what Make watches: a change to any of these files reruns the stage (for
train, the sweep then skips every run that is still current). ``OUTCOME_CODE`` is the part of
the train stage's code that decides a run's outcome: a change to it makes every finished run
stale (``sweep.code_version``), while a change to the rest (the scheduler, the executors, the
tracking door, MLflow's conventions) retrains nothing. ``python -m pipeline.stages train`` prints
a stage's files for the Makefile. Standard library only, so Make can ask before anything is
installed.
"""

from __future__ import annotations

import sys

PACKAGE = "pipeline"

COMMON = (
    "__init__.py",
    "paths.py",
    "errors.py",
    "files.py",
    "fields.py",
    "config.py",
    "claims.py",  # the claim block of a replication file: no run's outcome depends on it
    "tasks.py",
    "capacity.py",
    "runs.py",
)
DATA = (*COMMON, "data.py")
OUTCOME_CODE = (
    *("config.py", "runs.py", "tasks.py", "capacity.py", "data.py", "models.py", "decay.py"),
    *("probe.py", "batches.py", "record.py", "train.py"),
)
TRAIN = (
    *COMMON,
    *(name for name in OUTCOME_CODE if name not in COMMON),
    "tracking.py",
    "conventions.py",
    "runner.py",
    "sweep.py",
    "workers.py",
    "preload.py",
    "ray_executor.py",
    "stages.py",
    "tuning.py",
)
REPORT = (*COMMON, "decay.py", "tracking.py", "tuning.py", "report/*.py")
# python -m pipeline replicate: each claim's data, train and report stages, then the page. Not a
# file target (its stages skip finished work themselves); listed so that every stage's code is here
REPLICATE = (*dict.fromkeys((*DATA, *TRAIN, *REPORT)), "replication.py")

STAGE_CODE = {"data": DATA, "train": TRAIN, "report": REPORT, "replicate": REPLICATE}


def files(stage: str) -> list[str]:
    """The stage's code files, as paths (or globs) relative to the project root."""
    return [f"{PACKAGE}/{name}" for name in STAGE_CODE[stage]]


if __name__ == "__main__":
    print(" ".join(files(sys.argv[1])))
