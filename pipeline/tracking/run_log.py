"""Everything one run writes to MLflow, through one object the training code calls.

``MlflowRuns(client, exp_id, tags).open(name, tags)`` creates the run (RUNNING, with the sweep's
tags and the run's own) and returns its ``RunLog``; the training code then calls, in order:

- ``params``: every setting, under the config's field names;
- ``datasets``: the train, validation and test splits as dataset inputs, named
  ``<task>/d<distance>_s<seed>`` with a digest from the data manifest's SHA-256, so two runs on
  the same data show the same digest;
- ``add`` during training: metric points, buffered and written in batches (``flush``);
- ``outcome``: the artifacts (``config.yaml``, ``model.pt``, ``probe.csv``,
  ``probe_summary.csv``, ``result.json``),
  the logged model (MLflow 3: a plain state dict and the run's spec, loaded without unpickling
  code), the final metrics (the test scores linked to that model and the test split), the probe
  curves, the status tag and a one-line description;
- ``finish`` (FINISHED), or ``fail`` (FAILED, or KILLED when interrupted).

``MemoryRuns`` is the twin that keeps all of it in memory, for tests that train without a store.
Nothing here decides a run's outcome, and nothing here imports torch.
"""

from __future__ import annotations

import contextlib
import csv
import json
import math
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pipeline.tracking import store
from pipeline.tracking.names import (
    CREATION,
    DATASET_CONTEXT,
    ERROR,
    EXTRAPOLATION,
    NOTE,
    PARENT_RUN,
    PROBE_CURVE,
    PROBE_SUMMARY_ARTIFACT,
    RESULT_ARTIFACT,
    RUN_KEY,
    STATUS,
    TEST_SCORES,
)

CONTEXTS = {"train": "training", "val": "validation", "test": "testing"}  # MLflow's names
DIGEST_CHARS = 12  # of the manifest's SHA-256; MLflow keeps at most 36
RACES = 3  # tries of a dataset write that collided with another worker's same write
BATCH = 1000  # MLflow's limit of metrics per log_batch request
FLUSH_EVERY = 5.0  # seconds between metric writes during training (each is a SQLite commit)


# ---- what a run says about itself --------------------------------------------------------


def outcome_note(result) -> str:
    """A finished run's description: how it ended, and its test accuracy."""
    accuracy = f"test accuracy {result.test_accuracy:.3f}"
    if result.status == "solved":
        return f"solved at step {result.steps_to_solve}; {accuracy}"
    if result.status == "diverged":
        return f"diverged at step {result.diverged_step}; {accuracy}"
    best = f"best validation accuracy {result.best_val_accuracy:.3f}"
    return f"unsolved after {result.steps} steps ({best}); {accuracy}"


def failure_note(error: BaseException, interrupted: bool) -> str:
    """A run's description when it ended without a result."""
    if interrupted:
        return "interrupted; the next sweep trains it again"
    first = store.first_line(error) if str(error).strip() else ""
    return f"failed: {type(error).__name__}: {first}"


def dataset_name(task: str, distance: int, seed: int) -> str:
    """``recall/d20_s1``: the data folder's name under ``data/<experiment>/``."""
    return f"{task}/d{distance}_s{seed}"


def digest(manifest: dict, split: str) -> str:
    """The dataset digest of a split: the start of its file's SHA-256 in the data manifest."""
    return manifest["files"][split]["sha256"][:DIGEST_CHARS]


def model_name(run_key: str) -> str:
    """``recall-lstm_d20_s1``: a run key as a logged model's name, which may hold no ``/`` or
    ``.`` (``recall-tuning-rnn_lr0_003_d20_s100``).
    """
    return run_key.replace("/", "-").replace(".", "_").replace(":", "_").replace("%", "_")


def final_metrics(result) -> dict[str, float]:
    """The result's numbers as the run's final metrics (its identity left out), finite only;
    the scores at other distances under their own names (``extrapolation_metrics``).
    """
    without = result.model_copy(update={"extrapolation": {}})  # those are named below
    numbers = {
        k: float(v)
        for k, v in without.flat().items()
        if isinstance(v, int | float) and not isinstance(v, bool) and k not in ("distance", "seed")
    }
    numbers |= {"solved": float(result.solved), "diverged": float(result.diverged_step is not None)}
    numbers |= extrapolation_metrics(result)
    return {k: v for k, v in numbers.items() if math.isfinite(v)}


def extrapolation_metrics(result) -> dict[str, float]:
    """``extrapolation/accuracy_x2``, ``extrapolation/loss_x2``, ... for each factor the result
    scored (``RunResult.extrapolation``); a loss that was not finite is left out.
    """
    out = {}
    for label, scored in result.extrapolation.items():
        out[f"{EXTRAPOLATION}accuracy_x{label}"] = scored.accuracy
        if scored.loss is not None:
            out[f"{EXTRAPOLATION}loss_x{label}"] = scored.loss
    return out


def curve_points(probes) -> list[tuple[str, int, float]]:
    """The init and final probe curves as ``(metric, k, value)``: histories whose step is k,
    chartable in the UI (``probe_curve/<phase>/<state>``).
    """
    out = []
    for probe in probes:
        if probe.phase not in ("init", "final"):
            continue
        for state, stats in (("h", probe.profile.h), ("c", probe.profile.c)):
            if stats is None:
                continue
            name = f"{PROBE_CURVE}{probe.phase}/{state}"
            out += [
                (name, k, v)
                for k, v in zip(probe.profile.k, stats["median"], strict=True)
                if math.isfinite(v)
            ]
    return out


def write_probe_csv(path: Path, probes) -> None:
    """Every probe's per-k rows, with its phase and training step in front."""
    with open(path, "w", newline="") as f:
        writer = None
        for probe in probes:
            for row in probe.profile.rows():
                row = {"phase": probe.phase, "step": probe.step, **row}
                if writer is None:
                    writer = csv.DictWriter(f, fieldnames=list(row))
                    writer.writeheader()
                writer.writerow(row)


def write_probe_summary_csv(path: Path, probes) -> None:
    """One row per probe (``ProbeRecord.row``): phase, training step, the probe's summaries
    (``h_key_share``, ...) and the mechanism's measures (``W_f_radius``, ...), ``inf`` written
    as such (the result file's null would lose which way a value left the floats).
    """
    rows = [probe.row() for probe in probes]
    columns = list(dict.fromkeys(name for row in rows for name in row))  # first-seen order
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def artifact_files(folder: Path, spec, result, probes, model_folder: Path) -> None:
    """A finished run's artifact files, written into ``folder``."""
    (folder / "config.yaml").write_text(yaml.safe_dump(spec.params(), sort_keys=False))
    shutil.copy(model_folder / "model.pt", folder / "model.pt")
    write_probe_csv(folder / "probe.csv", probes)
    write_probe_summary_csv(folder / PROBE_SUMMARY_ARTIFACT, probes)
    (folder / RESULT_ARTIFACT).write_text(result.model_dump_json(indent=2))


def model_params(spec) -> dict[str, str]:
    """What a logged model is: its task, cell, width and parameter count."""
    identity = spec.identity()
    what = {
        **{k: identity[k] for k in ("task", "model", "cell", "distance", "seed")},
        "hidden_size": spec.hidden_size,
        "parameters": spec.parameter_count,
    }
    return {k: str(v) for k, v in what.items()}


# ---- MLflow ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MlflowRuns:
    """Where a worker's runs go: the tracking client, the MLflow experiment, and the tags every
    run carries (the sweep's: its code, its user, the parent run it nests under).
    """

    client: object
    exp_id: str
    tags: dict[str, str]

    def open(self, name: str, tags: dict[str, str]) -> RunLog:
        """Create the run ``name`` (RUNNING) with the sweep's tags and ``tags``."""
        run = store.create_run(self.client, self.exp_id, name, {**self.tags, **tags})
        return RunLog(self.client, self.exp_id, run, self.tags)


class RunLog:
    """One MLflow run, as the training code writes it (the module docstring's order)."""

    def __init__(self, client, exp_id: str, run, source: dict[str, str]) -> None:
        self.client, self.exp_id, self.run = client, exp_id, run
        self.run_id = run.info.run_id
        self.source = {k: v for k, v in source.items() if k != PARENT_RUN}
        self.points: list = []
        self.written_at = time.monotonic()

    def params(self, params: dict) -> None:
        from mlflow.entities import Param

        batch = [Param(k, str(v)) for k, v in params.items()]
        store.retry(lambda: self.client.log_batch(self.run_id, params=batch))

    def datasets(self, name: str, folder: Path, manifest: dict, splits: dict) -> None:
        """The splits of the data folder ``folder`` as dataset inputs: one request. Identical
        datasets (name and digest) are stored once per experiment: two workers storing the same
        one at once collide on that uniqueness, and the later one, retried, finds it and links it.
        """
        inputs = _dataset_inputs(name, folder, manifest, splits)
        for attempt in range(RACES):
            try:
                store.retry(lambda: self.client.log_inputs(self.run_id, datasets=inputs))
                return
            except Exception as e:
                text = str(e).lower()  # SQLite's words, then PostgreSQL's
                if attempt == RACES - 1 or not (
                    "unique constraint" in text or "duplicate key" in text
                ):
                    raise

    def add(self, step: int, **values: float) -> None:
        """Metric points at training ``step``, buffered: a write per step would roughly double a
        small LSTM's step.
        """
        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        self.points += [Metric(k, float(v), stamp, step) for k, v in values.items()]

    def flush(self, due_only: bool = False) -> None:
        """Write the buffered points (with ``due_only``: only once ``FLUSH_EVERY`` s passed)."""
        if due_only and time.monotonic() - self.written_at < FLUSH_EVERY:
            return
        for start in range(0, len(self.points), BATCH):
            batch = self.points[start : start + BATCH]
            store.retry(lambda b=batch: self.client.log_batch(self.run_id, metrics=b))
        self.points = []
        self.written_at = time.monotonic()

    def outcome(self, spec, result, probes, model_folder: Path, test_set: tuple[str, str]) -> None:
        """A finished run's artifacts, logged model, final metrics (the test scores linked to
        the model and to the test split's dataset ``test_set``: name, digest), probe curves,
        status tag and description. ``model_folder`` holds ``model.pt`` and ``spec.json``.
        """
        from mlflow.entities import Metric, RunTag

        with tempfile.TemporaryDirectory() as tmp:
            artifact_files(Path(tmp), spec, result, probes, model_folder)
            store.retry(lambda: self.client.log_artifacts(self.run_id, tmp))
        model_id = self._log_model(spec, model_folder, result.steps)
        stamp, step = int(time.time() * 1000), result.steps
        link = {"model_id": model_id, "dataset_name": test_set[0], "dataset_digest": test_set[1]}
        self.points += [
            Metric(k, v, stamp, step, **(link if k in TEST_SCORES else {}))
            for k, v in final_metrics(result).items()
        ]
        self.points += [Metric(name, v, stamp, k) for name, k, v in curve_points(probes)]
        self.flush()
        tags = [RunTag(STATUS, result.status), RunTag(NOTE, outcome_note(result))]
        store.retry(lambda: self.client.log_batch(self.run_id, tags=tags))

    def _log_model(self, spec, folder: Path, step: int) -> str:
        """``folder`` as the run's logged model at ``step`` (its Logged models, the Models
        column and the experiment's Models tab); returns its id. MLflow's PyTorch flavor is not
        used: it pickles the module's code, while a state dict loads with
        ``torch.load(weights_only=True)`` into the pipeline's own model.
        """
        from mlflow.entities import LoggedModelOutput, LoggedModelStatus

        c, token = self.client, uuid.uuid4().hex  # a second model a retried request made has it
        model = store.retry(
            lambda: c.create_logged_model(
                self.exp_id,
                name=model_name(spec.key),
                source_run_id=self.run_id,
                params=model_params(spec),
                model_type="pipeline.models.SequenceModel",
                tags={**self.source, RUN_KEY: spec.key, CREATION: token},
            )
        )
        model_id = model.model_id
        if store.resends(c):
            twins = f"tags.{CREATION} = '{token}'"
            for other in store.retry(lambda: c.search_logged_models([self.exp_id], twins)):
                if other.model_id != model_id:
                    store.retry(lambda m=other.model_id: c.delete_logged_model(m))
        try:
            store.retry(lambda: c.log_model_artifacts(model_id, str(folder)))
        except BaseException:
            store.retry(lambda: c.finalize_logged_model(model_id, LoggedModelStatus.FAILED))
            raise
        store.retry(lambda: c.finalize_logged_model(model_id, LoggedModelStatus.READY))
        try:
            store.retry(lambda: c.log_outputs(self.run_id, [LoggedModelOutput(model_id, step)]))
        except Exception:  # refused as a duplicate when a retried request's first arrival landed
            outputs = store.retry(lambda: c.get_run(self.run_id)).outputs
            if not any(o.model_id == model_id for o in (outputs.model_outputs if outputs else [])):
                raise
        return model_id

    def finish(self) -> None:
        """FINISHED, after deleting a duplicate of this run whose creation was held up."""
        store.drop_duplicates(self.client, self.exp_id, self.run)
        store.retry(lambda: self.client.set_terminated(self.run_id, "FINISHED"))

    def fail(self, error: BaseException, interrupted: bool) -> None:
        """End a run that did not finish, FAILED (KILLED when ``interrupted``), with its error as
        a tag and a description saying why; or leave it RUNNING when the store cannot be reached
        at once: the next sweep closes it, and a failing run does not wait out a lost server's
        retries once more.
        """
        tags = {
            ERROR: store.redact(repr(error))[:4000],
            NOTE: failure_note(error, interrupted),
        }
        status = "KILLED" if interrupted else "FAILED"
        with contextlib.suppress(Exception), store.fail_fast():
            store.close_run(self.client, self.run_id, status, tags)


def _dataset_inputs(name: str, folder: Path, manifest: dict, splits: dict) -> list:
    """One MLflow dataset input per split of ``folder``: ``name``, the digest, the split as
    MLflow's context, the arrays' shapes and types as a tensor schema, and the row count.
    ``splits``: split name -> an object with tensors ``x`` and ``y``.
    """
    from mlflow.entities import Dataset, DatasetInput, InputTag

    out = []
    for split, context in CONTEXTS.items():
        entry, arrays = manifest["files"][split], splits[split]
        schema = {
            "mlflow_tensorspec": {
                "features": json.dumps([_tensor("x", arrays.x)]),
                "targets": json.dumps([_tensor("y", arrays.y)]),
            }
        }
        dataset = Dataset(
            name=name,
            digest=digest(manifest, split),
            source_type="local",
            source=json.dumps({"uri": (folder / entry["file"]).resolve().as_uri()}),
            schema=json.dumps(schema),
            profile=json.dumps({"num_rows": entry["x_shape"][0]}),
        )
        out.append(DatasetInput(dataset, tags=[InputTag(DATASET_CONTEXT, context)]))
    return out


def _tensor(name: str, values) -> dict:
    """A tensor's entry in MLflow's tensor schema: any number of rows, then its own shape."""
    dtype = str(values.dtype).removeprefix("torch.")
    return {"name": name, "type": "tensor", "tensor-spec": {"dtype": dtype,
            "shape": [-1, *values.shape[1:]]}}  # fmt: skip


# ---- in memory ---------------------------------------------------------------------------


@dataclass
class MemoryRunLog:
    """A ``RunLog`` that keeps what it is given: for tests that train without a store."""

    name: str
    tags: dict[str, str]
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    logged_params: dict = field(default_factory=dict)
    dataset_names: list[str] = field(default_factory=list)
    metrics: list[tuple[str, int, float]] = field(default_factory=list)  # (key, step, value)
    artifacts: dict[str, str] = field(default_factory=dict)  # file name -> text (model: bytes)
    status: str = "RUNNING"

    def params(self, params: dict) -> None:
        self.logged_params |= {k: str(v) for k, v in params.items()}

    def datasets(self, name: str, folder: Path, manifest: dict, splits: dict) -> None:
        self.dataset_names += [f"{name} ({CONTEXTS[s]})" for s in CONTEXTS]

    def add(self, step: int, **values: float) -> None:
        self.metrics += [(k, step, float(v)) for k, v in values.items()]

    def flush(self, due_only: bool = False) -> None:
        pass

    def outcome(self, spec, result, probes, model_folder: Path, test_set: tuple[str, str]) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            artifact_files(Path(tmp), spec, result, probes, model_folder)
            self.artifacts = {
                p.name: p.read_bytes() if p.suffix == ".pt" else p.read_text()
                for p in Path(tmp).iterdir()
            }
        self.metrics += [(k, result.steps, v) for k, v in final_metrics(result).items()]
        self.metrics += curve_points(probes)
        self.tags |= {STATUS: result.status, NOTE: outcome_note(result)}

    def finish(self) -> None:
        self.status = "FINISHED"

    def fail(self, error: BaseException, interrupted: bool) -> None:
        self.status = "KILLED" if interrupted else "FAILED"
        self.tags |= {ERROR: repr(error), NOTE: failure_note(error, interrupted)}

    def values(self, key: str) -> list[float]:
        """Every value of metric ``key``, in the order logged."""
        return [v for k, _, v in self.metrics if k == key]


@dataclass
class MemoryRuns:
    """Where runs go when they go nowhere: every opened ``MemoryRunLog``, in order."""

    tags: dict[str, str] = field(default_factory=dict)  # every run's, as MlflowRuns.tags
    opened: list[MemoryRunLog] = field(default_factory=list)

    def open(self, name: str, tags: dict[str, str]) -> MemoryRunLog:
        log = MemoryRunLog(name, {**self.tags, **tags})
        self.opened.append(log)
        return log
