"""Running the Makefile in a test: a sandbox copy of what it reads, and ``make`` with none of the
caller's own make variables (a suite started by ``make test EXP=quick`` passes EXP down through
MAKEFLAGS and the environment).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from pipeline import paths

ROOT = paths.SOURCE_ROOT


def variables() -> list[str]:
    """The variables the Makefile takes from its command line: its ``## NAME=...`` lines."""
    return re.findall(r"^## ([A-Z_]+)=", (ROOT / "Makefile").read_text(), re.M)


def defaults() -> list[str]:
    """The variables the Makefile gives a default (``NAME ?= ...``): the caller's may not leak."""
    return re.findall(r"^([A-Z_]+)\s*\?=", (ROOT / "Makefile").read_text(), re.M)


def sandbox(folder: Path) -> Path:
    """A copy of the Makefile, the files its install rule reads and ``experiments/`` in
    ``folder``, with ``pipeline/`` linked (Make asks ``pipeline.stages`` for each stage's code).
    No ``.venv``: ``make -n install`` prints the whole recipe.
    """
    for name in ("Makefile", "pyproject.toml", "constraints.txt"):
        shutil.copy2(ROOT / name, folder / name)
    derived = shutil.ignore_patterns("*-set-*.yaml")  # this checkout's own, git-ignored
    shutil.copytree(ROOT / "experiments", folder / "experiments", ignore=derived)
    (folder / "pipeline").symlink_to(ROOT / "pipeline", target_is_directory=True)
    return folder


def make(
    folder: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """``make *args`` in ``folder`` with ``env`` added, stdout and stderr captured as text."""
    drop = {"MAKEFLAGS", "MFLAGS", "MAKELEVEL", *defaults()}
    env = {k: v for k, v in os.environ.items() if k not in drop} | (env or {})
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
