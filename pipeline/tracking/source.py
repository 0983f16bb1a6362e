"""What ran a run: the code (its git commit and source), the person, and the machine, as the
tags MLflow's UI shows (the Source column, the run page's Source and Created by).
"""

from __future__ import annotations

import getpass
import platform
import subprocess
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

from pipeline import paths
from pipeline.tracking.names import (
    CODE_COMMIT,
    ENV,
    GIT_BRANCH,
    GIT_COMMIT,
    GIT_REPO,
    SOURCE_NAME,
    SOURCE_TYPE,
    USER,
)

ENTRY = "pipeline/train/run.py"  # the code a run executes, as the source names it


def _git(root: Path, *args: str) -> str:
    try:
        out = subprocess.run(
            ["git", *args], cwd=root, text=True, capture_output=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def _public(url: str) -> str:
    """``url`` without credentials (``https://user:token@host/...`` -> ``https://host/...``)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc or not parts.scheme:
        return url  # git@host:org/repo.git names a user, not a secret
    return parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]).geturl()


def source_tags(root: Path = paths.SOURCE_ROOT) -> dict[str, str]:
    """The tags naming the code in the checkout at ``root`` and the user who runs it.

    With a git remote (``origin``) the source is the remote's ``pipeline/train.py`` and the
    type ``PROJECT``, as MLflow Projects record it: then the UI links the source to the
    repository and the commit to its page. Without one the source is that file's path here
    (type ``LOCAL``), shown as ``train.py`` beside the branch and commit. ``code_commit`` keeps
    the pipeline's own form: the commit, ``+dirty`` when the checkout's pipeline/ has edits.
    """
    commit = _git(root, "rev-parse", "HEAD")
    branch = _git(root, "rev-parse", "--abbrev-ref", "HEAD")
    remote = _public(_git(root, "remote", "get-url", "origin"))
    dirty = bool(_git(root, "status", "--porcelain", "--", "pipeline"))
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        user = "unknown"
    tags = {USER: user, CODE_COMMIT: (commit + ("+dirty" if dirty else "")) or "unknown"}
    if remote:
        tags |= {SOURCE_NAME: f"{remote}#{ENTRY}", SOURCE_TYPE: "PROJECT", GIT_REPO: remote}
    else:
        tags |= {SOURCE_NAME: str(root / ENTRY), SOURCE_TYPE: "LOCAL"}
    if commit:
        tags[GIT_COMMIT] = commit
    if branch and branch != "HEAD":  # HEAD: detached, on no branch
        tags[GIT_BRANCH] = branch
    return tags


def cpu_name() -> str:
    """The processor's model name (``/proc/cpuinfo``), or what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@cache
def environment(device: str = "cpu") -> dict[str, str]:
    """Where a run trained: processor, accelerator and library versions, as run tags. Training
    is bitwise reproducible only where all of these are the same.
    """
    import mlflow
    import pytorch_lightning as pl
    import torch

    return {
        f"{ENV}cpu": cpu_name(),
        f"{ENV}device": torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu",
        f"{ENV}torch": torch.__version__,
        f"{ENV}lightning": pl.__version__,
        f"{ENV}mlflow": mlflow.__version__,
        f"{ENV}python": platform.python_version(),
    }
