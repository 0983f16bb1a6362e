"""Which code each stage's outputs depend on, by package: the one list that Make and the sweep read.

``STAGE_CODE[stage]`` is what Make watches: a change to any of it reruns the stage (for train, the
sweep then skips every run that is still current). ``OUTCOME_CODE`` is the part of the train
stage's code that decides a run's outcome (the tasks, the data, the model, the probe and the
mechanism's measures, the config and ``train/``): a change to what it does makes every finished
run stale (``code_version``), while a change to the rest (``sweep/``, ``tracking/``) retrains
nothing. ``code_version`` hashes what the code does, its syntax tree without docstrings, so a
comment or a docstring retrains nothing either. ``python -m pipeline.stages train`` prints a
stage's files for the Makefile.
Standard library only, so Make can ask before anything is installed.
"""

from __future__ import annotations

import ast
import hashlib
import sys
from pathlib import Path

PACKAGE = "pipeline"
# an entry is a module, or a package (``name/``: every module in it)
COMMON = ("__init__.py", "paths.py", "errors.py", "bounds.py", "config/", "tasks/")
DATA = (*COMMON, "data.py")
OUTCOME_CODE = (*DATA, "models.py", "probe.py", "mechanism.py", "decay.py", "train/")
TRAIN = (*OUTCOME_CODE, "stages.py", "sweep/", "tracking/")
REPORT = (*COMMON, "decay.py", "status.py", "tracking/", "report/")
# python -m pipeline replicate: each claim's data, train and report stages, then the page. Not a
# file target (its stages skip finished work themselves); listed so that every stage's code is here
REPLICATE = (*dict.fromkeys((*TRAIN, *REPORT)), "replication.py", "estimate.py")

# python -m pipeline derive (make ... SET=...): a derived experiment file is written again when
# this code changes
DERIVE = COMMON  # config/derive.py

STAGE_CODE = {
    "derive": DERIVE,
    "data": DATA,
    "train": TRAIN,
    "report": REPORT,
    "replicate": REPLICATE,
}


def _pattern(entry: str) -> str:
    return f"{entry}*.py" if entry.endswith("/") else entry


def files(stage: str) -> list[str]:
    """The stage's code, as paths and globs relative to the project root."""
    return [f"{PACKAGE}/{_pattern(entry)}" for entry in STAGE_CODE[stage]]


def outcome_files() -> list[Path]:
    """``OUTCOME_CODE``'s files, in a stable order."""
    package = Path(__file__).parent
    return [path for entry in OUTCOME_CODE for path in sorted(package.glob(_pattern(entry)))]


def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if (
            isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and body
            and isinstance(body[0], ast.Expr)
            and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)
        ):
            node.body = body[1:] or [ast.Pass()]
    return tree


def code_fingerprint(source: str) -> str:
    """What ``source`` does, as text: its syntax tree without docstrings, comments or layout."""
    return ast.dump(_without_docstrings(ast.parse(source)), include_attributes=False)


def code_version() -> str:
    """A hash of what the outcome code does (``OUTCOME_CODE``): a change to any of it makes
    every finished run stale; an edit of a comment, a docstring or the layout does not.
    """
    h = hashlib.sha256()
    for path in outcome_files():
        h.update(path.relative_to(Path(__file__).parent).as_posix().encode())
        h.update(code_fingerprint(path.read_text()).encode())
    return h.hexdigest()[:12]


if __name__ == "__main__":
    print(" ".join(files(sys.argv[1])))
