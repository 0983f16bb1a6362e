"""The data stage: one checked folder per (task, distance, seed), compact dtypes, validation and
test that hold no training sequence, nothing rewritten when current, and damaged or half-written
files never read as good data.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from pipeline import bounds, config, data, paths, tasks
from pipeline.config.training import DataConfig
from pipeline.errors import DataError
from pipeline.tasks import stream_seed

SETTINGS = {
    "tasks": [
        # the shortest recall and the fewest copy symbols that leave enough sequences unseen by
        # train for validation and test (data.held_out_problem): 256 and 216 of them
        {"task": "recall", "distances": [5, 9], "n_keys": 4, "n_filler": 8},
        {"task": "copy", "distances": [5], "n_symbols": 6, "copy_length": 3},
        {"task": "adding", "distances": [6]},
    ],
    "models": [{"name": "rnn", "cell": "rnn"}],
    "seeds": [0, 1],
    "training": {"batch_size": 32},  # at most n_train
    "data": {"n_train": 64, "n_val": 32, "n_test": 48},
    "probe": {"batch_size": 16},
}
DTYPES = {
    "recall": (torch.uint8, torch.uint8),
    "copy": (torch.uint8, torch.uint8),
    "adding": (torch.float32, torch.float32),
}


def silent(*_) -> None:
    pass


@pytest.fixture
def exp(pipeline_root) -> config.Experiment:
    return config.Experiment(name="t", **SETTINGS)


@pytest.fixture
def written(exp) -> config.Experiment:
    data.run(exp, log=silent)
    return exp


def folders(exp: config.Experiment):
    """(task config, distance, seed, folder) for every folder of ``exp``."""
    for task in exp.tasks:
        for distance in task.distances:
            for seed in exp.seeds:
                yield task, distance, seed, data.folder(exp.name, task, distance, seed)


def recall_folder(exp: config.Experiment, distance: int = 5, seed: int = 0):
    return data.folder(exp.name, exp.tasks[0], distance, seed)


def test_writes_one_checked_folder_per_task_distance_seed(exp, pipeline_root):
    counts = data.run(exp, log=silent)
    assert counts["written"] == 8 and counts["kept"] == 0
    assert paths.data_dir("t") == pipeline_root / "data" / "t"
    sizes = {"train": 64, "val": 32, "test": 48}
    for task, distance, seed, target in folders(exp):
        assert target == pipeline_root / "data" / "t" / task.task / f"d{distance}_s{seed}"
        manifest = json.loads((target / "manifest.json").read_text())
        assert (manifest["task"], manifest["distance"], manifest["seed"]) == (
            task.task,
            distance,
            seed,
        )
        assert manifest["params"] == task.params()
        assert manifest["sizes"] == sizes
        generator = task.build()
        for split, n in sizes.items():
            entry = manifest["files"][split]
            blob = (target / entry["file"]).read_bytes()
            assert hashlib.sha256(blob).hexdigest() == entry["sha256"]
            loaded = data.load(target, split)
            assert (loaded.x.dtype, loaded.y.dtype) == DTYPES[task.task]
            assert loaded.x.shape[:2] == (n, generator.length(distance))
            assert list(loaded.x.shape) == entry["x_shape"]
            assert list(loaded.y.shape) == entry["y_shape"]


def test_files_hold_the_generator_output(written):
    task = written.tasks[0]
    target = recall_folder(written, 9, 1)
    x, y = task.build().generate(9, 32, data.stream_seed("recall", 9, 1, "val"))
    val = data.load(target, "val")
    assert torch.equal(val.x, x) and torch.equal(val.y, y)


def test_every_folder_has_readable_samples(written):
    lines = (recall_folder(written) / "samples.txt").read_text().splitlines()
    assert len(lines) == 8
    assert all(line.startswith("i grew up in ") and " i speak fluent -> " in line for line in lines)
    adding = (data.folder("t", written.tasks[2], 6, 0) / "samples.txt").read_text().splitlines()
    assert len(adding) == 8
    for line in adding:  # two marked values, and their sum as the target
        steps, target = line.split(" -> ")
        marked = [float(v.rstrip("*")) for v in steps.split() if v.endswith("*")]
        assert len(marked) == 2 and float(target) == pytest.approx(sum(marked), abs=0.011)


def test_splits_differ(written):
    for _, _, _, target in folders(written):
        x = {split: data.load(target, split).x for split in data.SPLITS}
        assert not torch.equal(x["train"][:32], x["val"])
        assert not torch.equal(x["val"], x["test"][:32])
        assert not torch.equal(x["train"][:48], x["test"])


def rows(x: torch.Tensor) -> set[bytes]:
    """The distinct inputs of a split, as raw bytes."""
    return {row.tobytes() for row in x.numpy().reshape(len(x), -1)}


def assert_held_out_avoid_train(splits: dict, sizes: dict, what: str) -> None:
    seen = rows(splits["train"].x)
    for split in ("val", "test"):
        x, y = splits[split]
        assert len(x) == len(y) == sizes[split], (what, split)
        shared = rows(x) & seen
        assert not shared, f"{what}: {len(shared)} {split} sequences are in train"


def test_held_out_splits_hold_no_training_sequence_in_quick_yaml():
    """quick.yaml's copy task has 8**4 = 4096 sequences and recall at distance 5 has 4608, for
    4096 training sequences: drawn regardless of train, over half of validation and test were
    training sequences.
    """
    exp = config.load(paths.experiment_file("quick"))
    sizes = exp.data.sizes()
    for task in exp.tasks:
        for distance in task.distances:
            for seed in exp.seeds:
                splits = data.generate(task, distance, seed, sizes)
                assert_held_out_avoid_train(splits, sizes, f"{task.task} d={distance} s={seed}")


def test_rejection_draw_is_deterministic_and_keeps_x_and_y_paired():
    task = tasks.CopyConfig(task="copy", distances=[5], n_symbols=6, copy_length=3)
    sizes = {"train": 64, "val": 32, "test": 48}
    first = data.generate(task, 5, 0, sizes)
    again = data.generate(task, 5, 0, sizes)
    for split in data.SPLITS:
        assert first[split].x.numpy().tobytes() == again[split].x.numpy().tobytes()
        assert first[split].y.numpy().tobytes() == again[split].y.numpy().tobytes()
        x, y = first[split]
        assert torch.equal(y[:, 5:], x[:, :3])  # each kept target still belongs to its input
    # the split's stream alone would have repeated training sequences: some were rejected
    plain, _ = task.build().generate(5, 32, stream_seed("copy", 5, 0, "val"))
    assert rows(plain) & rows(first["train"].x)
    assert not torch.equal(first["val"].x, plain)
    # a held-out split depends on train alone, not on the other held-out split
    alone = data.generate(task, 5, 0, {"train": 64, "val": 32})
    assert torch.equal(alone["val"].x, first["val"].x)
    other = data.generate(task, 5, 1, sizes)
    assert not torch.equal(other["val"].x, first["val"].x)


def test_a_space_train_covers_fails_loudly_instead_of_looping():
    """Validation refuses such sizes; called directly, the stage says why rather than spin."""
    task = tasks.CopyConfig(task="copy", distances=[2], n_symbols=2, copy_length=1)
    with pytest.raises(DataError, match="copy at distance 2, seed 0: val found 0 of 4"):
        data.generate(task, 2, 0, {"train": 64, "val": 4})


@st.composite
def small_experiments(draw):
    """Task parameters with small sequence spaces; the experiments validation accepts."""
    if draw(st.booleans()):
        task = {
            "task": "recall",
            "n_keys": draw(st.integers(2, 12)),
            "n_filler": draw(st.integers(1, 6)),
            "distances": [draw(st.integers(3, 7))],
        }
    else:
        length = draw(st.integers(1, 5))
        task = {
            "task": "copy",
            "n_symbols": draw(st.integers(2, 10)),
            "copy_length": length,
            "distances": [draw(st.integers(length + 1, length + 4))],
        }
    try:
        return config.Experiment(
            name="p",
            tasks=[task],
            models=[{"name": "rnn", "cell": "rnn"}],
            seeds=[draw(st.integers(0, bounds.MAX_SEED))],
            training={"batch_size": 1},
            data={k: draw(st.integers(1, 300)) for k in ("n_train", "n_val", "n_test")},
            probe={"batch_size": 1},
        )
    except ValidationError:
        assume(False)


@settings(max_examples=60, deadline=None)
@given(small_experiments())
def test_held_out_rows_never_appear_in_train(exp):
    task, sizes = exp.tasks[0], exp.data.sizes()
    splits = data.generate(task, task.distances[0], exp.seeds[0], sizes)
    assert_held_out_avoid_train(splits, sizes, repr(task))


def test_seeds_differ(written):
    a = data.load(recall_folder(written, 9, 0), "train").x
    b = data.load(recall_folder(written, 9, 1), "train").x
    assert not torch.equal(a, b)


def test_rerun_writes_nothing(written):
    before = {p: p.stat().st_mtime_ns for p in paths.data_dir("t").rglob("*")}
    counts = data.run(written, log=silent)
    assert counts["written"] == 0 and counts["kept"] == 8
    assert {p: p.stat().st_mtime_ns for p in paths.data_dir("t").rglob("*")} == before


def test_changed_sizes_rewrite(written):
    bigger = written.model_copy(update={"data": DataConfig(n_train=80, n_val=32, n_test=48)})
    assert data.run(bigger, log=silent)["written"] == 8
    assert data.load(recall_folder(bigger), "train").x.shape[0] == 80


def truncate(path) -> None:
    path.write_bytes(path.read_bytes()[:-50])


def flip_one_byte(path) -> None:
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))


@pytest.mark.parametrize("damage", [truncate, flip_one_byte], ids=["truncated", "altered"])
@pytest.mark.parametrize("split", data.SPLITS)
def test_damaged_split_is_named_and_regenerated(written, damage, split):
    target = recall_folder(written)
    path = target / f"{split}.npz"
    good = path.read_bytes()
    damage(path)
    with pytest.raises(DataError, match="checksum mismatch") as caught:
        data.load(target, split)
    assert str(path) in str(caught.value)
    with pytest.raises(DataError):
        data.load_run_data("t", written.tasks[0], 5, 0)
    counts = data.run(written, log=silent)
    assert counts["written"] == 1 and counts["kept"] == 7
    assert path.read_bytes() == good


def test_missing_split_is_named(written):
    target = recall_folder(written)
    (target / "test.npz").unlink()
    with pytest.raises(DataError, match="missing") as caught:
        data.load(target, "test")
    assert str(target / "test.npz") in str(caught.value)


@pytest.mark.parametrize(
    "damage",
    [lambda p: p.unlink(), lambda p: p.write_text('{"format": 1, "task": ')],
    ids=["missing", "truncated"],
)
def test_damaged_manifest_is_named_and_regenerated(written, damage):
    target = recall_folder(written)
    damage(target / "manifest.json")
    with pytest.raises(DataError) as caught:
        data.load(target, "train")
    assert str(target / "manifest.json") in str(caught.value)
    assert data.run(written, log=silent)["written"] == 1
    data.load(target, "train")


def test_interrupted_write_is_not_a_finished_folder(written):
    """A stage killed before its rename leaves only ``.d5_s0.tmp<pid>``: never read, and the
    next run writes the real folder, even when the leftover holds a complete copy.
    """
    target = recall_folder(written)
    leftover = target.with_name(".d5_s0.tmp123")
    shutil.copytree(target, leftover)
    shutil.rmtree(target)
    with pytest.raises(DataError, match="missing"):
        data.load_run_data("t", written.tasks[0], 5, 0)
    counts = data.run(written, log=silent)
    assert counts["written"] == 1 and counts["kept"] == 7
    assert data.load(target, "train").x.shape[0] == 64


def test_partial_temporary_folder_does_not_block_a_write(written):
    target = recall_folder(written, 9, 1)
    shutil.rmtree(target)
    leftover = target.with_name(".d9_s1.tmp99")
    leftover.mkdir()
    (leftover / "train.npz").write_bytes(b"half a file")
    assert data.run(written, log=silent)["written"] == 1
    assert {p.name for p in target.iterdir()} == {
        "train.npz",
        "val.npz",
        "test.npz",
        "manifest.json",
        "samples.txt",
    }
    assert not target.with_name(f".d9_s1.tmp{os.getpid()}").exists()  # renamed into place
