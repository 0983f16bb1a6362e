"""What a run leaves behind: its metric points in MLflow, its artifacts, and how to read weights.

``Recorder`` buffers metric points and writes them in batches; ``log_outcome`` writes a finished
run's final metrics, probe curves, status tag and description, artifacts (``config.yaml``,
``model.pt``, ``probe.csv``, ``result.json``) and its logged model (``model.pt`` and
``spec.json``: ``conventions.log_model``); ``load_weights`` reads a ``model.pt`` back without
unpickling code.
"""

from __future__ import annotations

import csv
import json
import math
import platform
import shutil
import tempfile
import time
from functools import cache
from pathlib import Path

import torch
import yaml
from mlflow.entities import Metric, RunTag

from pipeline import conventions, layout, tracking
from pipeline.errors import WeightsError
from pipeline.models import parameter_count
from pipeline.probe import Profile
from pipeline.runs import RunSpec

Profiles = list[tuple[str, int, Profile]]  # (phase, training step, profile), in probe order
TEST_SCORES = ("test_accuracy", "test_loss")  # the final metrics measured on the test split


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

    return {
        "env.cpu": cpu_name(),
        "env.device": torch.cuda.get_device_name(device) if device.startswith("cuda") else "cpu",
        "env.torch": torch.__version__,
        "env.lightning": pl.__version__,
        "env.mlflow": mlflow.__version__,
        "env.python": platform.python_version(),
    }


class Recorder:
    """Buffers metric points and writes them to MLflow in batches, so logging costs a small share
    of a step: a write per step roughly doubles a small LSTM's step. A write to the SQLite store
    is a commit (an fsync), so validations write at most every ``interval`` seconds
    (``flush(due_only=True)``); the run's end writes the rest.
    """

    def __init__(self, client, run_id: str, interval: float = 5.0) -> None:
        self.client, self.run_id, self.points = client, run_id, []
        self.interval, self.written_at = interval, time.monotonic()

    def add(self, step: int, **values: float) -> None:
        stamp = int(time.time() * 1000)
        self.points += [Metric(k, float(v), stamp, step) for k, v in values.items()]

    def flush(self, due_only: bool = False) -> None:
        """Write the buffered points (with ``due_only``: only once ``interval`` s have passed)."""
        if due_only and time.monotonic() - self.written_at < self.interval:
            return
        for start in range(0, len(self.points), 1000):  # MLflow's batch limit
            batch = self.points[start : start + 1000]
            tracking.retry(lambda b=batch: self.client.log_batch(self.run_id, metrics=b))
        self.points = []
        self.written_at = time.monotonic()


def _profiles_csv(path: Path, profiles: Profiles) -> None:
    with open(path, "w", newline="") as f:
        writer = None
        for phase, step, profile in profiles:
            for row in profile.rows():
                row = {"phase": phase, "step": step, **row}
                if writer is None:
                    writer = csv.DictWriter(f, fieldnames=list(row))
                    writer.writeheader()
                writer.writerow(row)


def _curve_metrics(profiles: Profiles) -> list[Metric]:
    """The init and final curves as metric histories whose step is k (chartable in the UI)."""
    stamp, out = int(time.time() * 1000), []
    for phase, _, profile in profiles:
        if phase not in ("init", "final"):
            continue
        for state, stats in (("h", profile.h), ("c", profile.c)):
            if stats is None:
                continue
            out += [
                Metric(f"probe_curve/{phase}/{state}", v, stamp, k)
                for k, v in zip(profile.k, stats["median"], strict=True)
                if math.isfinite(v)
            ]
    return out


def _final_metrics(
    result: dict, model_id: str | None = None, test_set: tuple[str, str] | None = None
) -> list[Metric]:
    """The result's numbers as metrics at the run's last step (its identity left out); the test
    scores linked to the logged model ``model_id`` and the test split's dataset ``test_set``
    (name, digest), so the experiment's Models tab lists them.
    """
    numbers = {
        k: float(v)
        for k, v in result.items()
        if isinstance(v, int | float)
        and not isinstance(v, bool)
        and v is not None
        and k not in ("distance", "seed")
    }
    numbers |= {
        "solved": float(result["solved"]),
        "diverged": float(result["diverged_step"] is not None),
    }
    stamp, step = int(time.time() * 1000), result["steps"]
    name, digest = test_set or (None, None)
    link = {"model_id": model_id, "dataset_name": name, "dataset_digest": digest}
    return [
        Metric(k, v, stamp, step, **(link if k in TEST_SCORES else {}))
        for k, v in numbers.items()
        if math.isfinite(v)
    ]


def log_outcome(
    recorder: Recorder,
    spec: RunSpec,
    model: torch.nn.Module,
    profiles: Profiles,
    result: dict,
    exp_id: str,
    source: dict[str, str],
    test_set: tuple[str, str] | None = None,
) -> None:
    """Write a finished run's artifacts, its logged model (in experiment ``exp_id``, tagged with
    the run's ``source`` tags), its final metrics (the test scores linked to that model and to
    the test split's dataset ``test_set``), probe curves, status tag and description.
    """
    client, run_id = recorder.client, recorder.run_id
    model_id = _log_files(client, exp_id, run_id, spec, model, profiles, result, source)
    recorder.points += _final_metrics(result, model_id, test_set) + _curve_metrics(profiles)
    recorder.flush()
    note = conventions.outcome_note(result)
    tags = [RunTag("status", result["status"]), RunTag(layout.NOTE, note)]
    tracking.retry(lambda: client.log_batch(run_id, tags=tags))


def _log_files(client, exp_id, run_id, spec, model, profiles, result, source) -> str:
    """The run's artifacts and its logged model; returns the model's id."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files, weights = tmp / "run", tmp / "model"
        files.mkdir()
        weights.mkdir()
        (files / "config.yaml").write_text(yaml.safe_dump(spec.params(), sort_keys=False))
        torch.save({k: v.cpu() for k, v in model.state_dict().items()}, files / "model.pt")
        _profiles_csv(files / "probe.csv", profiles)
        (files / "result.json").write_text(json.dumps(result, indent=2, sort_keys=True))
        tracking.retry(lambda: client.log_artifacts(run_id, str(files)))
        shutil.copy(files / "model.pt", weights / "model.pt")
        (weights / "spec.json").write_text(spec.model_dump_json(indent=2))
        identity = spec.identity()
        what = {
            **{k: identity[k] for k in ("task", "model", "cell", "distance", "seed")},
            "hidden_size": spec.hidden_size,
            "parameters": parameter_count(model),
        }
        return conventions.log_model(
            client, exp_id, run_id, spec.key, weights, result["steps"], what, source
        )


def load_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a ``model.pt`` artifact as a state dict of tensors, never unpickling code.

    Raises WeightsError naming the file when it is unreadable, holds anything but a mapping of
    names to tensors, or would need arbitrary code to load (``weights_only=True`` refuses it).
    """
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as e:  # UnpicklingError for code, RuntimeError/EOFError for bad files
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise WeightsError(f"{path}: not a plain state dict ({first[:200]})") from None
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise WeightsError(f"{path}: not a state dict (expected names -> tensors)")
    return state
