"""``python -m pipeline compare A B``: two experiments' seeds solved per distance and memory
horizons, side by side; on result files made up for the test (fast) and on two real sweeps.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import config, paths
from pipeline.config.runs import evaluation_runs, result_path
from pipeline.errors import ConfigError
from pipeline.report import side_by_side
from tests.conftest import TINY, synthetic_result, write_experiment
from tests.test_report import copy_root

OTHER = TINY | {
    "tasks": [TINY["tasks"][0] | {"distances": [6, 10]}],
    "models": [{"name": "rnn", "cell": "rnn"}, {"name": "gru", "cell": "gru"}],
    "seeds": [0],
}


def test_rows_pair_each_variant_across_the_two_and_mark_what_one_lacks(pipeline_root):
    folder = pipeline_root / "experiments"
    a = config.load(write_experiment(folder, "a", TINY))
    b = config.load(write_experiment(folder, "b", OTHER))
    solved = {("a", "rnn", 6), ("a", "rnn", 8), ("a", "lstm", 8), ("b", "rnn", 6)}
    for exp in (a, b):
        for spec in evaluation_runs(exp):
            if (exp.name, spec.model.name, spec.distance) == ("a", "lstm", 6) and spec.seed == 1:
                continue  # never trained: counts as not solved, and says so
            hit = (exp.name, spec.model.name, spec.distance) in solved
            path = result_path(spec)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(synthetic_result(spec, status="solved" if hit else "unsolved",
                                             code_version=None).model_dump_json())  # fmt: skip

    frame = side_by_side.side_by_side([a, b])
    assert list(frame.columns) == ["task", "model", "experiment", "d=6", "d=8", "d=10",
                                   "memory horizon"]  # fmt: skip
    assert frame.values.tolist() == [
        ["recall", "rnn", "a", "2/2", "2/2", "-", "≥ 8 (held at the longest distance run)"],
        ["recall", "rnn", "b", "1/1", "-", "0/1", "6"],
        ["recall", "lstm", "a", "0/2 (1 unfinished)", "2/2", "-",
         "< 6 (did not hold at the shortest distance); non-monotone: held again at 8 after "
         "failing at 6"],
        ["recall", "gru", "b", "0/1", "-", "0/1", "< 6 (did not hold at the shortest distance)"],
    ]  # fmt: skip
    text = side_by_side.compare(str(folder / "a.yaml"), str(folder / "b.yaml"))
    assert text.startswith("a and b: seeds solved of planned at each distance")
    assert "recall  rnn      a             2/2" in text


def test_one_experiment_twice_is_refused(pipeline_root):
    path = write_experiment(pipeline_root / "experiments", "a", TINY)
    copy = write_experiment(pipeline_root / "elsewhere", "a", TINY)
    with pytest.raises(ConfigError, match="are both experiment 'a': their results are one folder"):
        side_by_side.compare(str(path), str(copy))


@pytest.fixture(scope="module")
def two_sweeps(tiny_sweep, tmp_path_factory) -> tuple[Path, Path, Path]:
    """(root, file A, file B): a copy of the tiny sweep and a second real sweep beside it."""
    from pipeline import data
    from pipeline.sweep import phases

    source, _ = tiny_sweep
    root = copy_root(source, tmp_path_factory.mktemp("compare") / "root")
    saved = os.environ.get("PIPELINE_ROOT")
    os.environ["PIPELINE_ROOT"] = str(root)
    try:
        other = config.load(write_experiment(root / "experiments", "other", OTHER))
        data.run(other, log=lambda *_: None)
        phases.run(other, jobs=2, log=lambda *_: None)
    finally:
        if saved is None:
            os.environ.pop("PIPELINE_ROOT", None)
        else:
            os.environ["PIPELINE_ROOT"] = saved
    return root, root / "experiments" / "tiny.yaml", root / "experiments" / "other.yaml"


def held_horizon(solved: dict[int, int], planned: int) -> int | None:
    """The report's memory horizon, by its definition, from seeds solved per distance."""
    horizon = None
    for d in sorted(solved):
        if not (solved[d] > 0 and 2 * solved[d] >= planned):
            break
        horizon = d
    return horizon


def test_compare_prints_both_real_sweeps_counts_and_horizons(two_sweeps):
    root, first, second = two_sweeps
    env = {**os.environ, "PIPELINE_ROOT": str(root)}
    env.pop("MLFLOW_TRACKING_URI", None)
    done = subprocess.run(
        [sys.executable, "-m", "pipeline", "compare", str(first), str(second)],
        cwd=paths.SOURCE_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("task "))
    assert lines[header].split() == ["task", "model", "experiment", "d=6", "d=8", "d=10",
                                     "memory", "horizon"]  # fmt: skip
    rows = [line.split(None, 6) for line in lines[header + 2 :]]
    assert [(r[1], r[2]) for r in rows] == [
        ("rnn", "tiny"), ("rnn", "other"), ("lstm", "tiny"), ("gru", "other")
    ]  # fmt: skip
    for row in rows:
        model, name = row[1], row[2]
        settings = TINY if name == "tiny" else OTHER
        solved = {}
        for d in settings["tasks"][0]["distances"]:
            files = [root / "results" / name / "recall" / f"{model}_d{d}_s{s}.json"
                     for s in settings["seeds"]]  # fmt: skip
            solved[d] = sum(json.loads(f.read_text())["status"] == "solved" for f in files)
        cells = dict(zip(["d=6", "d=8", "d=10"], row[3:6], strict=True))
        for d, n in solved.items():
            assert cells.pop(f"d={d}") == f"{n}/{len(settings['seeds'])}"
        assert list(cells.values()) == ["-"]  # the distance the other experiment has
        horizon = held_horizon(solved, len(settings["seeds"]))
        shortest, longest = min(solved), max(solved)
        if not horizon:
            expected = f"< {shortest} (did not hold at the shortest distance)"
        elif horizon == longest:
            expected = f"≥ {horizon} (held at the longest distance run)"
        else:
            expected = str(horizon)
        assert row[6].split(";")[0] == expected
