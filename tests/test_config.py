"""Experiment files: every bad file stops with one message naming the file, the field and the bad
value; the shipped files load; config names are the run's param names.
"""

from __future__ import annotations

import copy
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import pipeline
from pipeline import config, tasks
from pipeline.config.model import ModelConfig
from pipeline.config.runs import RunSpec, evaluation_runs
from pipeline.config.training import DataConfig, ProbeConfig, TrainingConfig
from pipeline.errors import ConfigError
from pipeline.tasks import RecallConfig, capacity

GOOD = {
    "tasks": [{"task": "recall", "distances": [6, 8]}],
    "models": [{"name": "rnn", "cell": "rnn"}, {"name": "lstm", "cell": "lstm"}],
    "seeds": [0, 1],
}


def changed(edit) -> dict:
    settings = copy.deepcopy(GOOD)
    edit(settings)
    return settings


def write(folder: Path, settings: dict | str, name: str = "bad") -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(settings if isinstance(settings, str) else yaml.safe_dump(settings))
    return path


# (case id, edit of GOOD, the field the message must name, the bad value it must show after it)
BAD = [
    ("unknown key", lambda s: s.update(epochs=3), "epochs", "3"),
    (
        "unknown nested key",
        lambda s: s.update(training={"learnin_rate": 0.1}),
        "training.learnin_rate",
        "0.1",
    ),
    ("wrong type", lambda s: s.update(hidden_size="big"), "hidden_size", "'big'"),
    (
        "wrong type in a list",
        lambda s: s["tasks"][0].update(distances=[4, "far"]),
        "tasks[0].distances[1]",
        "'far'",
    ),
    (
        "distance below the recall minimum",
        lambda s: s["tasks"][0].update(distances=[8, 2]),
        "tasks[0].distances",
        "2 is below the recall task's minimum distance 3",
    ),
    (
        "distance below the copy minimum",
        lambda s: s.update(tasks=[{"task": "copy", "distances": [20, 10], "copy_length": 10}]),
        "tasks[0].distances",
        "10 is below the copy task's minimum distance 11",
    ),
    ("empty seeds", lambda s: s.update(seeds=[]), "seeds", "0"),
    (
        "empty distances",
        lambda s: s["tasks"][0].update(distances=[]),
        "tasks[0].distances",
        "or add a staircase",
    ),
    ("empty models", lambda s: s.update(models=[]), "models", "0"),
    (
        "negative learning rate",
        lambda s: s.update(training={"learning_rate": -0.001}),
        "training.learning_rate",
        "-0.001",
    ),
    ("non-integer seed", lambda s: s.update(seeds=[0, 1.5]), "seeds[1]", "1.5"),
    ("seed as text", lambda s: s.update(seeds=["one"]), "seeds[0]", "'one'"),
    ("negative seed", lambda s: s.update(seeds=[0, -1]), "seeds", "-1"),
    ("duplicate seeds", lambda s: s.update(seeds=[3, 3]), "seeds", "3"),
    (
        "unknown cell",
        lambda s: s["models"][1].update(cell="transformer"),
        "models[1].cell",
        "'transformer'",
    ),
    (
        "duplicate model names",
        lambda s: s["models"][1].update(name="rnn"),
        "models",
        "'rnn'",
    ),
    (
        "duplicate distances",
        lambda s: s["tasks"][0].update(distances=[8, 6, 8]),
        "tasks[0].distances",
        "8",
    ),
    (
        "forget_bias on an rnn",
        lambda s: s["models"][0].update(forget_bias=3.0),
        "models[0].forget_bias",
        "3.0",
    ),
    (
        "chrono_t_max on an rnn",
        lambda s: s["models"][0].update(chrono_t_max=50),
        "models[0].chrono_t_max",
        "50",
    ),
    (
        "update_bias on an lstm",
        lambda s: s["models"][1].update(update_bias=1.0),
        "models[1].update_bias",
        "1.0",
    ),
    (
        "nonlinearity on a gru",
        lambda s: s["models"][0].update(cell="gru", nonlinearity="relu"),
        "models[0].nonlinearity",
        "'relu'",
    ),
    (
        "unknown nonlinearity",
        lambda s: s["models"][0].update(nonlinearity="sigmoid"),
        "models[0].nonlinearity",
        "'sigmoid'",
    ),
    (
        "identity init on an lstm",
        lambda s: s["models"][1].update(recurrent_init="identity"),
        "models[1].recurrent_init",
        "'identity'",
    ),
    (
        "a parameter budget and a hidden size",
        lambda s: s["models"][0].update(parameters=5000, hidden_size=32),
        "models[0].parameters",
        "5000",
    ),
    (
        "a parameter budget naming no model",
        lambda s: s["models"][0].update(parameters="lstmx"),
        "models",
        "'lstmx' must be a number or the name of another model",
    ),
    (
        "a parameter budget naming no model, beside a model with a budget of its own",
        lambda s: [s["models"][0].update(parameters=5000), s["models"][1].update(parameters="x")],
        "models",
        "(one of ['rnn'])",  # a number is a size of its own: rnn may be named
    ),
    (
        "a parameter budget naming itself",
        lambda s: s["models"][0].update(parameters=s["models"][0]["name"]),
        "models",
        "must be a number or the name of another model",
    ),
    (
        "forget_bias and chrono together",
        lambda s: s["models"][1].update(forget_bias=2.0, chrono_t_max=40),
        "models[1].chrono_t_max",
        "pick one",
    ),
    (
        "tuning seed that is an evaluation seed",
        lambda s: s.update(tuning={"grid": {"learning_rate": [1e-3, 3e-3]}, "seeds": [1]}),
        "tuning.seeds",
        "1 is also an evaluation seed",
    ),
    (
        "tuning a setting that cannot vary",
        lambda s: s.update(tuning={"grid": {"max_steps": [10, 20]}, "seeds": [9]}),
        "tuning.grid.max_steps",
        "not a setting tuning can vary",
    ),
    (
        "a bad value in the tuning grid",
        lambda s: s.update(tuning={"grid": {"learning_rate": [1e-3, -1.0]}, "seeds": [9]}),
        "tuning.grid.learning_rate",
        "-1.0",
    ),
    (
        "a tuning distance for a task the experiment lacks",
        lambda s: s.update(
            tuning={"grid": {"learning_rate": [1e-3]}, "seeds": [9], "distances": {"copy": 20}}
        ),
        "tuning.distances",
        "'copy'",
    ),
    (
        "unknown task",
        lambda s: s.update(tasks=[{"task": "sort", "distances": [10]}]),
        "tasks[0].task",
        "'sort'",
    ),
    (
        "n_keys out of range",
        lambda s: s["tasks"][0].update(n_keys=40),
        "tasks[0].n_keys",
        "40",
    ),
    (
        "probe batch larger than the validation split",
        lambda s: s.update(data={"n_val": 50}, probe={"batch_size": 64}),
        "probe.batch_size",
        "64",
    ),
    ("name is not a setting", lambda s: s.update(name="other"), "name", "not a setting"),
    # validation and test must avoid train: a space that train nearly exhausts is refused
    (
        "too few sequences for held-out splits",
        lambda s: s["tasks"][0].update(distances=[8, 4]),
        "tasks[0].distances",
        "recall at distance 4 has 192 possible sequences",
    ),
    # numbers must be finite (YAML writes these as .inf, -.inf and .nan)
    (
        "infinite learning rate",
        lambda s: s.update(training={"learning_rate": math.inf}),
        "training.learning_rate",
        "inf",
    ),
    (
        "nan clip norm",
        lambda s: s.update(training={"grad_clip": math.nan}),
        "training.grad_clip",
        "nan",
    ),
    (
        "negative infinite forget bias",
        lambda s: s["models"][1].update(forget_bias=-math.inf),
        "models[1].forget_bias",
        "-inf",
    ),
    (
        "nan tolerance as text",
        lambda s: s.update(tasks=[{"task": "adding", "distances": [10], "tolerance": "nan"}]),
        "tasks[0].tolerance",
        "'nan'",
    ),
    (
        "infinite GPUs",
        lambda s: s.update(resources={"gpus_per_run": math.inf}),
        "resources.gpus_per_run",
        "inf",
    ),
    # sizes a later stage cannot handle
    (
        "batch larger than the training split",
        lambda s: s.update(data={"n_train": 100}),
        "training.batch_size",
        "128 exceeds data.n_train 100",
    ),
    (
        "validation past the last step",
        lambda s: s.update(training={"max_steps": 50}),
        "training.eval_every",
        "100 exceeds training.max_steps 50",
    ),
    (
        "metric writes past the last step",
        lambda s: s.update(training={"max_steps": 20, "eval_every": 10}),
        "training.log_every",
        "25 exceeds training.max_steps 20",
    ),
    (
        "data larger than memory",
        lambda s: s.update(
            tasks=[{"task": "recall", "distances": [9000]}], data={"n_train": 10_000_000}
        ),
        "data",
        "10000000/1000/2000 sequences of recall at distance 9000 need about",
    ),
    # the adding task's variants and the training options the replications need
    (
        "unknown adding variant",
        lambda s: s.update(tasks=[{"task": "adding", "distances": [10], "variant": "arjovsky"}]),
        "tasks[0].variant",
        "'arjovsky'",
    ),
    (
        "distance below the hochreiter adding minimum",
        lambda s: s.update(
            tasks=[{"task": "adding", "distances": [99, 10], "variant": "hochreiter"}]
        ),
        "tasks[0].distances",
        "10 is below the adding task's minimum distance 19",
    ),
    (
        "unknown clip mode",
        lambda s: s.update(training={"clip_mode": "elementwise"}),
        "training.clip_mode",
        "'elementwise'",
    ),
    (
        "value clipping without a bound",
        lambda s: s.update(training={"clip_mode": "value", "grad_clip": None}),
        "training.clip_mode",
        "'value'",
    ),
    (
        "rmsprop decay with another optimizer",
        lambda s: s.update(training={"rmsprop_decay": 0.9}),
        "training.rmsprop_decay",
        "'adam' (got 0.9)",
    ),
    (
        "rmsprop decay of 1",
        lambda s: s.update(training={"optimizer": "rmsprop", "rmsprop_decay": 1.0}),
        "training.rmsprop_decay",
        "1.0",
    ),
    (
        "a grid point that contradicts the other settings",
        lambda s: s.update(
            training={"optimizer": "rmsprop", "rmsprop_decay": 0.9},
            tuning={"grid": {"optimizer": ["rmsprop", "sgd"]}, "seeds": [9]},
        ),
        "tuning.grid",
        "at grid point optimizer='sgd', rmsprop_decay: applies to the rmsprop optimizer only",
    ),
    (
        "unknown recurrent init",
        lambda s: s["models"][0].update(recurrent_init="xavier"),
        "models[0].recurrent_init",
        "'xavier'",
    ),
    # upper bounds
    (
        "distance too long",
        lambda s: s["tasks"][0].update(distances=[8, 20_000]),
        "tasks[0].distances[1]",
        "20000",
    ),
    ("hidden size too large", lambda s: s.update(hidden_size=100_000), "hidden_size", "100000"),
    (
        "model hidden size too large",
        lambda s: s["models"][0].update(hidden_size=5000),
        "models[0].hidden_size",
        "5000",
    ),
    ("n_train too large", lambda s: s.update(data={"n_train": 10**8}), "data.n_train", "100000000"),
    ("n_val too large", lambda s: s.update(data={"n_val": 10**8}), "data.n_val", "100000000"),
    ("n_test too large", lambda s: s.update(data={"n_test": 10**8}), "data.n_test", "100000000"),
    (
        "max_steps too large",
        lambda s: s.update(training={"max_steps": 10**7}),
        "training.max_steps",
        "10000000",
    ),
    (
        "learning rate too large",
        lambda s: s.update(training={"learning_rate": 1e7}),
        "training.learning_rate",
        "10000000.0",
    ),
    (
        "clip norm too large",
        lambda s: s.update(training={"grad_clip": 1e7}),
        "training.grad_clip",
        "10000000.0",
    ),
    ("seed too large for Lightning", lambda s: s.update(seeds=[0, 2**32]), "seeds", "4294967296"),
    (
        "copy_length too large",
        lambda s: s.update(tasks=[{"task": "copy", "distances": [2500], "copy_length": 2000}]),
        "tasks[0].copy_length",
        "2000",
    ),
    (
        "forget bias too large",
        lambda s: s["models"][1].update(forget_bias=1000.0),
        "models[1].forget_bias",
        "1000.0",
    ),
    (
        "chrono_t_max too large",
        lambda s: s["models"][1].update(chrono_t_max=10**6),
        "models[1].chrono_t_max",
        "1000000",
    ),
    (
        "model name too long",
        lambda s: s["models"][0].update(name="m" * 65),
        "models[0].name",
        "'mmm",
    ),
    (
        "probe interval too large",
        lambda s: s.update(probe={"every_evals": 10**7}),
        "probe.every_evals",
        "10000000",
    ),
    (
        "too many CPUs",
        lambda s: s.update(resources={"cpus_per_run": 1000}),
        "resources.cpus_per_run",
        "1000",
    ),
    (
        "too many GPUs",
        lambda s: s.update(resources={"gpus_per_run": 16}),
        "resources.gpus_per_run",
        "16",
    ),
    (
        "a fraction of GPUs above one",
        lambda s: s.update(resources={"gpus_per_run": 1.5}),
        "resources.gpus_per_run",
        "1.5",
    ),
]


@pytest.mark.parametrize(("edit", "field", "value"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_config_names_file_field_and_value(tmp_path, edit, field, value):
    path = write(tmp_path, changed(edit))
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    message = str(caught.value)
    assert len(message.splitlines()) == 1, message
    assert message.startswith(f"{path}: ")
    assert f"{field}:" in message or f"{field}[" in message
    assert value in message.split(f"{field}", 1)[1]  # the value comes with its field


@pytest.mark.parametrize(
    ("text", "expect"),
    [
        ("tasks: [recall, copy\n", "malformed YAML"),
        ("models:\n  - name: rnn\n   cell: rnn\n", "malformed YAML"),
        ("- recall\n- copy\n", "got list"),
        ("just text\n", "got str"),
        ("", "the file is empty"),
        ("# only a comment\n\n", "holds no settings, only comments"),
        ("1: 2\n", "1: not a setting"),
        ("a: " + "[" * 3000 + "]" * 3000 + "\n", "nest(ed|ing)"),
    ],
    ids=[
        "unclosed list",
        "bad indent",
        "top-level list",
        "top-level scalar",
        "empty file",
        "comments only",
        "number as a key",
        "deep nesting",
    ],
)
def test_unreadable_files(tmp_path, text, expect):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError, match=expect) as caught:
        config.load(path)
    assert str(caught.value).startswith(f"{path}: ")


def test_an_index_in_a_message_points_into_the_file(tmp_path):
    """Distances are sorted once validated; a message about one must not cite a sorted index."""
    path = write(tmp_path, changed(lambda s: s["tasks"][0].update(distances=[8, 6, 2])))
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    assert "distances[0]" not in str(caught.value)


def test_too_few_sequences_names_task_distance_and_sizes(tmp_path):
    settings = {
        **GOOD,
        "tasks": [{"task": "recall", "distances": [4, 8], "n_keys": 4, "n_filler": 8}],
        "data": {"n_train": 512, "n_val": 128, "n_test": 128},
        "probe": {"batch_size": 32},
    }
    path = write(tmp_path, settings)
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    assert str(caught.value) == (
        f"{path}: tasks[0].distances: recall at distance 4 has 32 possible sequences; a "
        "512-sequence training split leaves about 0 unseen, and validation plus test need 256: "
        "use longer distances, more filler words (n_filler), or a smaller data.n_train"
    )


def test_a_space_train_nearly_exhausts_is_refused_for_its_draws(tmp_path):
    """10**6 copy sequences and 5 million training draws leave about 6700 unseen, enough for
    validation and test, but 0.7% of the space: over a hundred draws per kept sequence.
    """
    settings = {
        **GOOD,
        "tasks": [{"task": "copy", "distances": [7], "n_symbols": 10, "copy_length": 6}],
        "data": {"n_train": 5_000_000},
    }
    with pytest.raises(ConfigError) as caught:
        config.load(write(tmp_path, settings))
    message = str(caught.value)
    assert "tasks[0].distances: copy at distance 7 has 1000000 possible sequences" in message
    assert "0.67% of them" in message and "about 148 draws per kept sequence" in message
    assert "use a longer copy_length, more symbols (n_symbols)" in message


def test_data_larger_than_memory_names_both_sizes(tmp_path, monkeypatch):
    monkeypatch.setattr(capacity, "memory_limit", lambda: 2**30)
    settings = {**GOOD, "tasks": [{"task": "adding", "distances": [1000]}]}
    settings["data"] = {"n_train": 100_000}  # float32 pairs: 8 bytes a step, 0.75 GiB a split
    with pytest.raises(ConfigError) as caught:
        config.load(write(tmp_path, settings))
    message = str(caught.value)
    assert len(message.splitlines()) == 1
    assert "data: 100000/1000/2000 sequences of adding at distance 1000 need about " in message
    assert "over the 1.0 GiB it may take here (half of this machine's 2.0 GiB)" in message
    need = capacity.peak_bytes(tasks.Adding(), 1000, {"train": 100_000, "val": 1000, "test": 2000})
    assert f"need about {need / 2**30:.1f} GiB" in message


@pytest.mark.parametrize(
    "blob",
    [
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
        b"tasks: []\nseeds: [0]\x00\n",
        b"seeds: [\xff\xfe]\n",
    ],
    ids=["binary", "nul byte", "invalid utf-8"],
)
def test_a_file_that_is_not_text(tmp_path, blob):
    path = tmp_path / "bad.yaml"
    path.write_bytes(blob)
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: not a text file")
    assert len(message.splitlines()) == 1


def test_malformed_yaml_says_where(tmp_path):
    path = write(tmp_path, "tasks: [recall, copy\n")
    with pytest.raises(ConfigError, match=r"line \d+"):
        config.load(path)


def test_missing_file(tmp_path):
    path = tmp_path / "nowhere.yaml"
    with pytest.raises(ConfigError, match="cannot read") as caught:
        config.load(path)
    assert str(path) in str(caught.value)


def test_yaml_is_read_safely(tmp_path):
    path = write(tmp_path, "tasks: !!python/object/apply:os.system ['true']\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        config.load(path)


# --- plain words for the mistakes people make ---

GOOD_TEXT = """\
tasks:
  - {task: recall, distances: [6, 8]}
models:
  - {name: rnn, cell: rnn}
seeds: [0, 1]
"""


def refusal(folder: Path, text: str) -> tuple[Path, str]:
    """(the file, its one-line refusal) for an experiment file holding ``text``."""
    path = write(folder, text)
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    message = str(caught.value)
    assert len(message.splitlines()) == 1, message
    assert message.startswith(f"{path}: ")
    return path, message.removeprefix(f"{path}: ")


def test_a_second_block_of_one_setting_is_refused_naming_both_lines(tmp_path):
    text = (
        GOOD_TEXT
        + "training: {max_steps: 100}\nprobe: {batch_size: 8}\ntraining:\n  eval_every: 5\n"
    )
    _, message = refusal(tmp_path, text)
    assert message.startswith("line 8: training is given twice in one mapping (first at line 6)")


def test_a_key_given_twice_inside_a_section_is_refused_too(tmp_path):
    text = GOOD_TEXT.replace("{name: rnn, cell: rnn}", "{name: rnn, cell: rnn, cell: lstm}")
    _, message = refusal(tmp_path, text)
    assert message.startswith("line 4: cell is given twice in one mapping (first at line 4)")


def test_a_merge_key_may_repeat_what_it_merges(tmp_path):
    text = GOOD_TEXT + "base: &b {max_steps: 100, eval_every: 50}\n"
    path = write(tmp_path, text.replace("base: &b", "training: &b"))
    assert config.load(path).training.max_steps == 100
    merged = GOOD_TEXT.replace("{name: rnn, cell: rnn}", "&m {name: rnn, cell: rnn}")
    merged += "  - {<<: *m, name: rnn2}\n"
    exp = config.load(write(tmp_path, merged.replace("seeds: [0, 1]\n", "") + "seeds: [0]\n"))
    assert [m.name for m in exp.models] == ["rnn", "rnn2"]


@pytest.mark.parametrize(
    ("text", "field", "closest", "valid"),
    [
        ("seed: [3]\n", "seed", "seeds", "an experiment file takes tasks, models, seeds,"),
        ("training: {learnin_rate: 0.1}\n", "training.learnin_rate", "learning_rate",
         "training takes optimizer, learning_rate,"),
        ("tuning: {grid: {learning_rate: [0.1]}, seeds: [4], distance: {recall: 6}}\n",
         "tuning.distance", "distances", "tuning takes grid, seeds, distances"),
    ],
    ids=["top level", "a section", "an optional section"],
)  # fmt: skip
def test_an_unknown_key_is_named_with_the_closest_and_the_valid_keys(
    tmp_path, text, field, closest, valid
):
    _, message = refusal(tmp_path, GOOD_TEXT + text)
    assert message.startswith(f"{field}: not a setting; did you mean {closest}? {valid}")
    assert "extra inputs" not in message.lower()


def test_an_unknown_key_of_a_task_or_a_model_lists_that_sections_keys(tmp_path):
    text = GOOD_TEXT.replace("distances: [6, 8]", "distances: [6, 8], n_kyes: 4")
    _, message = refusal(tmp_path, text)
    assert message == (
        "tasks[0].n_kyes: not a setting; did you mean n_keys? tasks[0] takes task, distances, "
        "n_keys, n_filler (got 4)"
    )
    text = GOOD_TEXT.replace("cell: rnn}", "cell: rnn, hiden_size: 8}")
    _, message = refusal(tmp_path, text)
    assert message.startswith("models[0].hiden_size: not a setting; did you mean hidden_size?")
    assert "models[0] takes name, cell, hidden_size, parameters," in message


def test_a_key_nothing_resembles_gets_no_suggestion(tmp_path):
    _, message = refusal(tmp_path, GOOD_TEXT + "zzzz: 1\n")
    assert message.startswith("zzzz: not a setting; an experiment file takes tasks,")
    assert "did you mean" not in message


def test_an_unknown_task_is_named_in_plain_words_with_the_closest(tmp_path):
    _, message = refusal(tmp_path, GOOD_TEXT.replace("task: recall", "task: recal"))
    assert message == (
        "tasks[0].task: no task 'recal'; did you mean recall? the tasks are recall, copy, adding"
    )
    _, message = refusal(tmp_path, GOOD_TEXT.replace("task: recall, ", ""))
    assert message == "tasks[0].task: missing; name the task (recall, copy, adding)"


@pytest.mark.parametrize(
    ("setting", "says"),
    [
        ("training: {max_steps: 2e3}", "training.max_steps: `2e3` is text to YAML, not a number; "
         "write 2000"),
        ("training: {max_steps: 2.0e3}", "`2.0e3` is text to YAML, not a number; write 2000"),
        ("training: {eval_every: 1E2}", "`1E2` is text to YAML, not a number; write 100"),
        ("training: {max_steps: 2.5e0}", "`2.5e0` is text to YAML, not a number; it takes an "
         "integer"),
        ("training: {max_steps: 2.0e+3}", "training.max_steps: input should be an integer: write "
         "2000, without a dot (got 2000.0)"),
    ],
    ids=["exponent", "exponent with a dot", "capital E", "not a whole number", "a float"],
)  # fmt: skip
def test_a_number_yaml_reads_as_text_says_so_and_how_to_write_it(tmp_path, setting, says):
    _, message = refusal(tmp_path, GOOD_TEXT + setting + "\n")
    assert says in message


def test_a_number_yaml_reads_as_text_is_a_number_where_a_real_number_is_expected(tmp_path):
    text = GOOD_TEXT + "training: {learning_rate: 3e-3}\n"
    assert yaml.safe_load(text)["training"]["learning_rate"] == "3e-3"
    assert config.load(write(tmp_path, text)).training.learning_rate == 0.003


def test_text_numbers_in_a_tuning_grid_become_the_numbers_their_runs_train_with(tmp_path):
    from pipeline.config.runs import tuning_runs

    text = GOOD_TEXT + "tuning: {grid: {learning_rate: [3e-3, 1.0e-2]}, seeds: [9]}\n"
    exp = config.load(write(tmp_path, text))
    assert exp.tuning.grid == {"learning_rate": [0.003, 0.01]}
    runs = tuning_runs(exp)
    assert {r.training.learning_rate for r in runs} == {0.003, 0.01}
    assert runs[0].key == "recall/tuning/rnn_lr0.003_d6_s9"


def test_the_same_grid_value_written_two_ways_is_a_duplicate(tmp_path):
    text = GOOD_TEXT + "tuning: {grid: {learning_rate: [3e-3, 0.003]}, seeds: [9]}\n"
    _, message = refusal(tmp_path, text)
    assert message.startswith("tuning.grid: duplicate learning_rate value 0.003")


def test_malformed_yaml_names_the_file_and_line_not_a_unicode_string(tmp_path):
    path, message = refusal(tmp_path, GOOD_TEXT + "training: {max_steps: 10\n")
    assert message.startswith("line 7, column 1: malformed YAML: ")
    assert "while parsing a flow mapping from line 6" in message
    assert "<unicode string>" not in message


def test_a_budget_no_width_meets_is_refused_naming_the_model_and_the_smallest_count(tmp_path):
    from pipeline.config.runs import count_parameters

    text = GOOD_TEXT.replace("{name: rnn, cell: rnn}", "{name: tiny, cell: lstm, parameters: 10}")
    _, message = refusal(tmp_path, text)
    t = RecallConfig(task="recall", distances=[6]).build()
    smallest = count_parameters("lstm", t.n_inputs, t.n_outputs, 1, t.tokens)
    assert message == (
        "models[0].parameters: model 'tiny' on the recall task: no width fits 10 parameters: even "
        f"hidden size 1 has {smallest}"
    )
    fits = text.replace("parameters: 10}", f"parameters: {smallest}}}")
    assert config.load(write(tmp_path, fits, "fits")).models[0].parameters == smallest


def test_a_budget_wider_than_a_width_may_be_is_refused(tmp_path):
    text = GOOD_TEXT.replace("cell: rnn}", "cell: rnn, parameters: 90000000}")
    _, message = refusal(tmp_path, text)
    assert message.startswith("models[0].parameters: 90000000 gives model 'rnn' hidden size ")
    assert message.endswith("on the recall task, over the 4096 a width may be")


def test_a_file_over_the_size_limit_is_refused_before_it_is_parsed(tmp_path, monkeypatch):
    from pipeline.bounds import MAX_FILE_BYTES

    monkeypatch.setattr(yaml, "load", lambda *a, **k: pytest.fail("parsed"))
    text = GOOD_TEXT + "#" * (MAX_FILE_BYTES - len(GOOD_TEXT)) + "\n"
    _, message = refusal(tmp_path, text)
    assert (
        message
        == "1.0 MiB, over the 1.0 MiB an experiment file may hold (it lists settings, never data)"
    )
    monkeypatch.undo()
    assert config.load(write(tmp_path, text[:-2] + "\n", "fits")).seeds == [0, 1]


def test_an_experiment_past_the_run_limit_is_refused_before_any_run_is_checked(
    tmp_path, monkeypatch
):
    from pipeline.bounds import MAX_RUNS

    monkeypatch.setattr(capacity, "held_out_problem", lambda *a: pytest.fail("checked"))
    seeds = list(range(MAX_RUNS // 4 + 1))  # 2 distances x 2 models
    text = GOOD_TEXT.replace("seeds: [0, 1]", f"seeds: {seeds}")
    text = text.replace(
        "{name: rnn, cell: rnn}", "{name: rnn, cell: rnn}\n  - {name: b, cell: gru}"
    )
    _, message = refusal(tmp_path, text)
    assert message == (
        f"the experiment plans {len(seeds) * 4} runs ({len(seeds) * 4} evaluation, 0 tuning), "
        f"over the {MAX_RUNS} one experiment may hold: split it into several experiment files"
    )
    grid = "{learning_rate: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], batch_size: [1, 2, 3, 4, 5, 6, 7, 8]}"
    text = GOOD_TEXT + f"tuning: {{grid: {grid}, seeds: {list(range(100, 1351))}}}\n"
    _, message = refusal(tmp_path, text)
    assert "(4 evaluation, 100080 tuning)" in message


def test_a_long_seed_list_is_checked_once_per_task_and_distance(tmp_path, monkeypatch):
    """The data's checks depend on (task, distance) only: a long list of seeds adds none, and its
    duplicates are found in one pass (pairwise, 10**5 seeds took minutes).
    """
    calls = []
    check = capacity.held_out_problem
    monkeypatch.setattr(capacity, "held_out_problem", lambda *a: calls.append(a[1]) or check(*a))
    text = GOOD_TEXT.replace("seeds: [0, 1]", f"seeds: {list(range(20_000))}")
    exp = config.load(write(tmp_path, text))
    assert len(exp.seeds) == 20_000 and sorted(calls) == [6, 8]
    _, message = refusal(tmp_path, text.replace("seeds: [0,", "seeds: [19999, 0,"))
    assert message == "seeds: duplicate seed 19999"


def cli_data_stage(tmp_path: Path, path: Path) -> tuple[subprocess.CompletedProcess, Path]:
    """``python -m pipeline data -e path`` with its outputs under a fresh root."""
    root = tmp_path / "root"
    root.mkdir()
    source = Path(pipeline.__file__).resolve().parent.parent
    env = {
        **os.environ,
        "PIPELINE_ROOT": str(root),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(source), os.environ.get("PYTHONPATH")])),
    }
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "data", "--experiment", str(path)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done, root


def test_cli_rejects_a_bad_file_with_code_2_and_writes_nothing(tmp_path):
    path = write(tmp_path, changed(lambda s: s.update(training={"learning_rate": -1.0})))
    done, root = cli_data_stage(tmp_path, path)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "training.learning_rate" in lines[0] and "-1.0" in lines[0] and str(path) in lines[0]
    assert done.stdout == ""
    assert list(root.iterdir()) == []  # no data/ folder, nothing at all


@pytest.mark.parametrize(
    ("content", "expect"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x02\x00", "not a text file"),
        (
            yaml.safe_dump(
                changed(lambda s: s.update(training={"learning_rate": math.inf}))
            ).encode(),
            "training.learning_rate: input should be a finite number (got inf)",
        ),
    ],
    ids=["binary file", "non-finite number"],
)
def test_cli_refuses_in_one_line_without_a_traceback(tmp_path, content, expect):
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    done, root = cli_data_stage(tmp_path, path)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert str(path) in lines[0] and expect in lines[0]
    assert list(root.iterdir()) == []


# --- the shipped experiments ---


SHIPPED = sorted(
    str(p.relative_to(Path(pipeline.__file__).resolve().parent.parent / "experiments"))[:-5]
    for p in (Path(pipeline.__file__).resolve().parent.parent / "experiments").rglob("*.yaml")
    if "-set-" not in p.stem  # derived by make ... SET=... (git-ignored), not shipped
)


def test_a_budget_naming_a_model_matches_that_models_count_on_each_task():
    from pipeline.config.runs import count_parameters, hidden_size

    exp = config.Experiment(
        name="matched",
        tasks=[{"task": "recall", "distances": [10]}, {"task": "adding", "distances": [10]}],
        models=[
            {"name": "lstm", "cell": "lstm", "hidden_size": 48},
            {"name": "rnn_matched", "cell": "rnn", "parameters": "lstm"},
        ],
        seeds=[0],
    )
    _, rnn = exp.models
    for task in exp.tasks:
        t = task.build()
        sizes = (t.n_inputs, t.n_outputs)
        target = count_parameters("lstm", *sizes, 48, t.tokens)
        width = hidden_size(exp, rnn, task)
        assert count_parameters("rnn", *sizes, width, t.tokens) <= target
        assert count_parameters("rnn", *sizes, width + 1, t.tokens) > target
        assert width > 1.8 * 48  # the RNN gets about twice the units


def test_every_shipped_experiment_is_tested():
    assert {"quick", "default", "full", "replications/arjovsky2016-adding"} <= set(SHIPPED)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_experiments_load(name):
    path = Path(pipeline.__file__).resolve().parent.parent / "experiments" / f"{name}.yaml"
    exp = config.load(path)
    assert exp.name == Path(name).name
    levels = sum(len(t.distances) + (exp.staircase is not None) for t in exp.tasks)
    n_cells = levels * len(exp.seeds) * len(exp.models)  # a staircase's first level, no results
    assert len(evaluation_runs(exp)) == n_cells
    assert len({r.key for r in evaluation_runs(exp)}) == n_cells


def test_an_adding_variant_is_a_task_parameter(tmp_path):
    settings = {**GOOD, "tasks": [{"task": "adding", "distances": [99], "variant": "halves"}]}
    exp = config.load(write(tmp_path, settings, "halves"))
    spec = evaluation_runs(exp)[0]
    assert spec.params()["variant"] == "halves" and spec.task.build().variant == "halves"
    fixed = config.load(
        write(tmp_path, {**settings, "tasks": [{"task": "adding", "distances": [99]}]}, "fixed")
    )
    assert evaluation_runs(fixed)[0].params()["variant"] == "fixed"
    assert evaluation_runs(fixed)[0].config_hash != spec.config_hash


def test_defaults_fill_what_the_file_leaves_out(tmp_path):
    exp = config.load(write(tmp_path, GOOD, "good"))
    assert exp.training == TrainingConfig()
    assert exp.hidden_size == 64
    assert exp.tasks[0].params() == {"n_keys": 8, "n_filler": 24}


def test_config_is_frozen(tmp_path):
    exp = config.load(write(tmp_path, GOOD, "good"))
    with pytest.raises(ValueError, match="frozen"):
        exp.training.learning_rate = 1.0


# --- one name for one thing ---


def run_of(tmp_path, settings: dict, model: str) -> RunSpec:
    exp = config.load(write(tmp_path, settings, "names"))
    return next(r for r in evaluation_runs(exp) if r.model.name == model)


def test_run_params_use_the_config_field_names(tmp_path):
    settings = changed(lambda s: s["models"][1].update(forget_bias=2.5, hidden_size=32))
    spec = run_of(tmp_path, settings, "lstm")
    params = spec.params()
    for field in ("distance", "seed", "hidden_size"):
        assert params[field] == getattr(spec, field)
    assert params["cell"] == "lstm"
    assert params["forget_bias"] == 2.5
    assert params["hidden_size"] == 32  # the model's own size wins over the experiment's
    for section in (spec.training, spec.data):
        for field, value in section.model_dump().items():
            if value is not None:
                assert params[field] == value, field
    for field, value in spec.task.params().items():
        assert params[field] == value
    for field, value in spec.probe.model_dump().items():
        assert params[f"probe_{field}"] == value
    known = (
        {"experiment", "task", "model", "distance", "seed", "hidden_size"}
        | set(ModelConfig.model_fields)
        | set(TrainingConfig.model_fields)
        | set(DataConfig.model_fields)
        | set(RecallConfig.model_fields)
        | {f"probe_{f}" for f in ProbeConfig.model_fields}
    )
    assert set(params) <= known


def test_lstm_forget_bias_defaults_to_one_and_is_absent_elsewhere(tmp_path):
    exp = config.load(write(tmp_path, GOOD, "good"))
    by_model = {r.model.name: r.params() for r in evaluation_runs(exp)}
    assert by_model["lstm"]["forget_bias"] == 1.0
    assert "forget_bias" not in by_model["rnn"]
    assert "chrono_t_max" not in by_model["lstm"]


def test_chrono_replaces_the_forget_bias(tmp_path):
    spec = run_of(tmp_path, changed(lambda s: s["models"][1].update(chrono_t_max=40)), "lstm")
    assert spec.params()["chrono_t_max"] == 40
    assert "forget_bias" not in spec.params()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("optimizer", "sgd"),
        ("learning_rate", 1e-3),
        ("batch_size", 64),
        ("max_steps", 500),
        ("grad_clip", None),
        ("eval_every", 10),
        ("solved_accuracy", 0.9),
        ("log_every", 5),
        ("diverge_loss_factor", 10.0),
        ("clip_mode", "value"),
        ("rmsprop_decay", 0.9),
    ],
)
def test_config_hash_changes_with_every_training_field(tmp_path, field, value):
    spec = evaluation_runs(config.load(write(tmp_path, GOOD, "good")))[0]
    again = evaluation_runs(config.load(write(tmp_path, GOOD, "good")))[0]
    assert again.config_hash == spec.config_hash
    other = spec.model_copy(update={"training": spec.training.model_copy(update={field: value})})
    assert other.config_hash != spec.config_hash


def test_config_hash_differs_between_runs_of_one_experiment(tmp_path):
    exp = config.load(write(tmp_path, GOOD, "good"))
    assert len({r.config_hash for r in evaluation_runs(exp)}) == len(evaluation_runs(exp))


@pytest.mark.parametrize(
    ("options", "default"),
    [
        ({"cell": "gru"}, True),
        ({"cell": "gru", "input_init": "glorot"}, False),
        ({"cell": "rnn", "recurrent_init": "orthogonal"}, False),
        ({"cell": "lstm", "forget_bias": "pytorch"}, True),
        ({"cell": "lstm"}, False),  # forget bias 1
    ],
)
def test_only_a_model_left_at_every_pytorch_init_is_a_pytorch_default(options, default):
    model = ModelConfig(name="m", **options)
    assert model.pytorch_default is default
    assert ("PyTorch default init" in model.describe_init()) is default
