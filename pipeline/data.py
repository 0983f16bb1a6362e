"""The data stage: write each (task, distance, seed) of an experiment as checked files.

One folder per (task, distance, seed) under ``data/<experiment>/<task>/d<distance>_s<seed>/``:

    train.npz, val.npz, test.npz   arrays ``x`` and ``y`` in the task's compact dtype
    manifest.json                  task parameters, distance, seed, sizes, a SHA-256 per file
    samples.txt                    a few validation samples, rendered readably

Every model of the experiment at that (task, distance, seed) reads the same files, so model
comparisons are paired. Validation and test hold no sequence of the training split, so they
measure generalisation, not memory, even where a task has few sequences (``generate``); the
experiment file is refused where that cannot be done, or where the stage would not fit in memory
(``capacity``). A folder is written under a temporary name and renamed into place once complete,
so an interrupted stage leaves no folder that looks finished; readers verify the checksums and
name any file that fails.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pipeline import paths
from pipeline.config import Experiment
from pipeline.errors import DataError
from pipeline.tasks import Task, TaskConfig, stream_seed
from pipeline.tasks.capacity import MIN_UNSEEN

SPLITS = ("train", "val", "test")
# 2: validation and test hold no training sequence (format 1 drew them regardless of train,
# so a folder of format 1 may not; the manifest check makes the stage rewrite it)
FORMAT = 2


@dataclass(frozen=True)
class Split:
    x: torch.Tensor
    y: torch.Tensor

    def __iter__(self):  # x, y = split
        return iter((self.x, self.y))


def folder(experiment: str, task: TaskConfig, distance: int, seed: int) -> Path:
    return paths.data_dir(experiment) / task.task / f"d{distance}_s{seed}"


def _identity(task: TaskConfig, distance: int, seed: int, sizes: dict[str, int]) -> dict:
    return {
        "format": FORMAT,
        "task": task.task,
        "params": task.params(),
        "distance": distance,
        "seed": seed,
        "sizes": sizes,
    }


def _npz_bytes(x: torch.Tensor, y: torch.Tensor) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, x=x.numpy(), y=y.numpy())
    return buf.getvalue()


def _rows(x: torch.Tensor) -> np.ndarray:
    """``x`` as one row of raw bytes per sequence, ``[n, bytes]`` (a view where it can be)."""
    return np.ascontiguousarray(x.numpy()).reshape(len(x), -1).view(np.uint8)


def generate(task: TaskConfig, distance: int, seed: int, sizes: dict[str, int]) -> dict[str, Split]:
    """The splits of one (task, distance, seed), in memory: what ``write`` stores.

    ``sizes`` maps split names to sequence counts, ``train`` among them. Train is the task's draw
    from its own stream. A held-out split (``val``, ``test``) holds no row whose ``x`` equals
    (byte for byte) a train row's: it is drawn from its own streams, and rows found in train are
    rejected (``_held_out``). Held-out splits avoid train only: they may share rows with each
    other, and repeat rows within themselves, as train may. ``y`` is a function of ``x`` in
    every task, so comparing inputs is enough. The same arguments give the same bytes, always;
    where no drawn row is in train (any large space), a split is exactly its stream's first draw.
    """
    if "train" not in sizes:
        raise ValueError(f"sizes {sizes} lack the train split that held-out splits avoid")
    generator = task.build()
    stream = stream_seed(task.task, distance, seed, "train")
    train = Split(*generator.generate(distance, sizes["train"], stream))
    seen = set(map(bytes, _rows(train.x))) if len(sizes) > 1 else set()
    splits = {}
    for split in sizes:
        splits[split] = (
            train if split == "train" else _held_out(generator, distance, seed, split, sizes, seen)
        )
    return splits


def _held_out(
    generator: Task, distance: int, seed: int, split: str, sizes: dict, seen: set[bytes]
) -> Split:
    """``sizes[split]`` rows of ``split`` whose inputs are not in ``seen``, drawn and rejected.

    Round 0 draws ``n`` rows from the split's stream, ``stream_seed(task, distance, seed,
    split)``; each later round ``r`` draws from ``stream_seed(task, distance, seed, split, r)``
    as many rows as the share kept so far says are needed, and a quarter more (at most ``n``,
    which bounds the memory a round takes). Kept rows keep their drawing order. The round sizes
    depend only on what was drawn before, so the result is deterministic. Raises DataError if
    far more rows are drawn than ``capacity.held_out_problem`` allows without filling the split:
    a space that validation would have refused.
    """
    name, n = generator.name, sizes[split]
    xs, ys, kept, drawn = [], [], 0, 0
    for r in itertools.count():
        if r == 0:
            stream, size = stream_seed(name, distance, seed, split), n
        else:
            rate = max(kept / drawn, MIN_UNSEEN)
            stream = stream_seed(name, distance, seed, split, r)
            size = min(n, math.ceil((n - kept) / rate * 1.25) + 16)
        x, y = generator.generate(distance, size, stream)
        drawn += size
        fresh = np.fromiter((row not in seen for row in map(bytes, _rows(x))), bool, size)
        if r == 0 and fresh.all():  # the usual case in a large space: no copy
            return Split(x, y)
        take = torch.from_numpy(np.flatnonzero(fresh)[: n - kept])
        xs.append(x[take])
        ys.append(y[take])
        kept += len(take)
        if kept == n:
            return Split(torch.cat(xs), torch.cat(ys))
        if drawn > 10 * n / MIN_UNSEEN + 1000:
            raise DataError(
                f"{name} at distance {distance}, seed {seed}: {split} found {kept} of {n} "
                f"sequences outside the {sizes['train']}-sequence training split in {drawn} "
                "draws: too few sequences for held-out splits that avoid train"
            )


def extrapolation_split(task: TaskConfig, distance: int, seed: int, n: int) -> Split:
    """``n`` sequences of ``task`` at ``distance`` for scoring a model trained at another
    distance: the stream ``stream_seed(task, distance, seed, "extrapolation")``, apart from the
    train, validation and test streams, drawn in memory and never written. A pure function of
    its arguments, so every model of a seed is scored on the same sequences at a distance. No
    row is rejected as ``generate``'s held-out splits reject theirs: every task's sequence length
    grows with the distance, so no sequence at another distance than the model's own can be one
    of its training sequences. Rows may repeat where the task has few sequences there.
    """
    x, y = task.build().generate(
        distance, n, stream_seed(task.task, distance, seed, "extrapolation")
    )
    return Split(x, y)


def write(target: Path, task: TaskConfig, distance: int, seed: int, sizes: dict[str, int]) -> int:
    """Generate and write one folder atomically; returns the number of input tokens written."""
    generator = task.build()
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    files, tokens = {}, 0
    for split, (x, y) in generate(task, distance, seed, sizes).items():
        blob = _npz_bytes(x, y)
        (tmp / f"{split}.npz").write_bytes(blob)
        files[split] = {
            "file": f"{split}.npz",
            "sha256": hashlib.sha256(blob).hexdigest(),
            "x_shape": list(x.shape),
            "y_shape": list(y.shape),
        }
        tokens += x.shape[0] * x.shape[1]
        if split == "val":
            (tmp / "samples.txt").write_text("\n".join(generator.render(x[:8], y[:8])) + "\n")
    listing = {**_identity(task, distance, seed, sizes), "files": files}
    (tmp / "manifest.json").write_text(json.dumps(listing, indent=2) + "\n")
    for f in tmp.iterdir():  # flush contents before the rename publishes them
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)
    return tokens


def manifest(target: Path) -> dict:
    """The folder's ``manifest.json``; raises DataError naming it when missing or unreadable."""
    path = target / "manifest.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise DataError(f"{path}: missing; run the data stage (make data)") from None
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(f"{path}: unreadable manifest ({e})") from None


def load(target: Path, split: str) -> Split:
    """Read one split after checking it against the manifest.

    Raises DataError naming the file if it is missing, truncated or altered.
    """
    entry = manifest(target)["files"][split]
    path = target / entry["file"]
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: missing; run the data stage (make data)") from None
    digest = hashlib.sha256(blob).hexdigest()
    if digest != entry["sha256"]:
        raise DataError(
            f"{path}: checksum mismatch (expected {entry['sha256'][:16]}..., got "
            f"{digest[:16]}...): the file is truncated or altered; delete {target} and rerun "
            "the data stage (make data)"
        )
    with np.load(io.BytesIO(blob), allow_pickle=False) as arrays:
        return Split(torch.from_numpy(arrays["x"]), torch.from_numpy(arrays["y"]))


def check(target: Path, task: TaskConfig, distance: int, seed: int, sizes: dict) -> None:
    """Raise DataError (naming the file) unless the folder holds exactly this data and every
    file passes its checksum.
    """
    expected = _identity(task, distance, seed, sizes)
    written = manifest(target)
    if {k: written.get(k) for k in expected} != expected:
        raise DataError(
            f"{target / 'manifest.json'}: written for other settings than the experiment's; "
            "rerun the data stage (make data)"
        )
    for split in SPLITS:
        load(target, split)


def is_current(target: Path, task: TaskConfig, distance: int, seed: int, sizes: dict) -> bool:
    try:
        check(target, task, distance, seed, sizes)
    except DataError:
        return False
    return True


def verify(exp: Experiment) -> None:
    """Check every data file of ``exp``; raises DataError naming the first missing, truncated or
    altered file. The train stage calls this before any run starts.
    """
    for task, distance, seed in exp.data_folders():
        check(folder(exp.name, task, distance, seed), task, distance, seed, exp.data.sizes())


def ensure(specs) -> int:
    """Write the data folder of each run in ``specs`` that is missing or not current (the
    staircase's later levels, which the data stage cannot know in advance); returns how many
    were written.
    """
    written, seen = 0, set()
    for spec in specs:
        where = (spec.experiment, spec.task.task, spec.distance, spec.seed)
        if where in seen:
            continue
        seen.add(where)
        target = folder(spec.experiment, spec.task, spec.distance, spec.seed)
        sizes = spec.data.sizes()
        if not is_current(target, spec.task, spec.distance, spec.seed, sizes):
            write(target, spec.task, spec.distance, spec.seed, sizes)
            written += 1
    return written


def _remove_partial(exp_name: str) -> None:
    """Remove folders an interrupted data stage left under their temporary names."""
    for tmp in paths.data_dir(exp_name).glob("*/.*.tmp*"):
        shutil.rmtree(tmp, ignore_errors=True)


def run(exp: Experiment, log=print) -> dict:
    """Write every (task, distance, seed) folder of ``exp`` that is missing or not current.

    Returns counts and throughput: ``{"written", "kept", "tokens", "seconds"}``.
    """
    sizes, written, kept, tokens = exp.data.sizes(), 0, 0, 0
    start = time.perf_counter()
    _remove_partial(exp.name)
    for task, distance, seed in exp.data_folders():
        target = folder(exp.name, task, distance, seed)
        if is_current(target, task, distance, seed, sizes):
            kept += 1
            continue
        tokens += write(target, task, distance, seed, sizes)
        written += 1
    seconds = time.perf_counter() - start
    rate = f", {tokens / seconds / 1e6:.1f} M tokens/s" if written else ""
    log(
        f"data: {written} written, {kept} already current under "
        f"{paths.data_dir(exp.name)} ({seconds:.1f} s{rate})"
    )
    return {"written": written, "kept": kept, "tokens": tokens, "seconds": seconds}


def load_run_data(exp_name: str, task: TaskConfig, distance: int, seed: int) -> dict[str, Split]:
    target = folder(exp_name, task, distance, seed)
    return {split: load(target, split) for split in SPLITS}
