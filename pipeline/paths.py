"""Every path the pipeline reads or writes, in one place, and how a file is published whole.

The project root is the folder holding ``experiments/``; ``PIPELINE_ROOT`` moves all outputs
elsewhere (the tests point it at a temporary folder).

    data/<experiment>/<task>/d<distance>_s<seed>/   task splits + manifest.json   (data stage)
    results/<experiment>/<task>/<model>_d<distance>_s<seed>.json  one file per finished run
    reports/<experiment>/                            report.html, report.md, CSVs, figures
    mlruns/mlflow.db, mlruns/artifacts/              the embedded MLflow tracking store
"""

from __future__ import annotations

import json
import os
from pathlib import Path

SOURCE_ROOT = Path(__file__).resolve().parent.parent


def root() -> Path:
    return Path(os.environ.get("PIPELINE_ROOT", SOURCE_ROOT)).resolve()


def experiments_dir() -> Path:
    return SOURCE_ROOT / "experiments"


def experiment_file(name: str) -> Path:
    return experiments_dir() / f"{name}.yaml"


def experiment_path(experiment: str | os.PathLike) -> Path:
    """The experiment file ``experiment`` names: a path to a YAML file as given, else a name
    under ``experiments/`` (``default``, ``replications/le2015-adding``).
    """
    path = Path(experiment)
    return path if path.suffix in (".yaml", ".yml") else experiment_file(str(experiment))


def data_dir(experiment: str) -> Path:
    return root() / "data" / experiment


def results_dir(experiment: str) -> Path:
    return root() / "results" / experiment


def result_file(experiment: str, run_key: str) -> Path:
    """The result file of one finished run, ``run_key`` like ``recall/lstm_d20_s1``."""
    return results_dir(experiment) / f"{run_key}.json"


def reports_dir(experiment: str) -> Path:
    return root() / "reports" / experiment


def mlruns_dir() -> Path:
    return root() / "mlruns"


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else the embedded SQLite store under ``mlruns/``."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{mlruns_dir() / 'mlflow.db'}"


def artifact_root() -> str:
    """Where a new MLflow experiment keeps its artifacts when the store is the local default."""
    return (mlruns_dir() / "artifacts").as_uri()


def stage_text(path: Path, text: str) -> Path:
    """Write ``text`` to a temporary file beside ``path``, flushed to disk; returns the
    temporary path, for the caller to ``os.replace`` into place once it is ready to publish.
    Raises OSError (a full disk, say) before anything is published.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    return tmp


def write_json(path: Path, payload: dict) -> None:
    """Write ``payload`` to ``path`` atomically: a reader sees the whole file or none of it."""
    text = json.dumps(payload, indent=2, sort_keys=True) + "\n"
    os.replace(stage_text(path, text), path)
