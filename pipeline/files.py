"""Atomic JSON files: a reader sees the whole file or none of it, never a half-written one."""

from __future__ import annotations

import json
import os
from pathlib import Path


def stage_json(path: Path, payload: dict) -> Path:
    """Write ``payload`` to a temporary file beside ``path``, flushed to disk; returns the
    temporary path, for the caller to ``os.replace`` into place once it is ready to publish.
    Raises OSError (a full disk, say) before anything is published.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=2, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    return tmp


def write_json(path: Path, payload: dict) -> None:
    """Write ``payload`` to ``path`` atomically."""
    os.replace(stage_json(path, payload), path)
