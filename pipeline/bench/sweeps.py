"""2. Sweep scaling: ``python -m pipeline train`` on ``experiments/quick.yaml`` with 1 and 2 jobs,
each in a fresh root: the speedup, and the share of fixed costs before the first run and after
the last.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import yaml

from pipeline import paths
from pipeline.bench.stats import Plan, fixed_cost_share, paired_ratios
from pipeline.errors import SweepError
from pipeline.tracking import names, store, sweep_runs

# the quick plan's sweep: one task, two models, a few dozen steps (a smoke run, not a figure)
TINY_SWEEP = {
    "tasks": [{"task": "recall", "distances": [5]}],
    "models": [{"name": "rnn", "cell": "rnn"}, {"name": "lstm", "cell": "lstm"}],
    "seeds": [0],
    "hidden_size": 16,
    "training": {"max_steps": 40, "eval_every": 20},
    "data": {"n_train": 512, "n_val": 128, "n_test": 128},
    "probe": {"batch_size": 32, "every_evals": 1},
}


def _sweep_file(plan: Plan, folder: Path) -> Path:
    if plan.sweep == "quick":
        return paths.experiment_file("quick")
    path = folder / "bench_tiny.yaml"
    path.write_text(yaml.safe_dump(TINY_SWEEP, sort_keys=False))
    return path


def _pipeline(*args: str, root: Path) -> subprocess.CompletedProcess:
    """``python -m pipeline ...`` in a fresh interpreter with its outputs under ``root``."""
    env = {**os.environ, "PIPELINE_ROOT": str(root)}
    env.pop("MLFLOW_TRACKING_URI", None)  # the root's own SQLite store
    return subprocess.run(
        [sys.executable, "-m", "pipeline", *args],
        cwd=paths.SOURCE_ROOT,
        env=env,
        capture_output=True,
        text=True,
    )


def _check(proc: subprocess.CompletedProcess, what: str) -> None:
    if proc.returncode:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise SweepError(f"bench: {what} exited with {proc.returncode}:\n{tail}")


def sweep_once(exp_file: Path, jobs: int, data_root: Path) -> dict:
    """One sweep in a fresh root holding only a copy of the data: wall time, fixed-cost share,
    and the runs' own ``wall_time`` (from their result files).
    """
    name = exp_file.stem
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        root = Path(tmp)
        shutil.copytree(data_root / "data", root / "data")
        launched, started = time.time(), time.perf_counter()
        proc = _pipeline("train", "--experiment", str(exp_file), "--jobs", str(jobs), root=root)
        wall, exited = time.perf_counter() - started, time.time()
        _check(proc, f"train --jobs {jobs}")
        client = store.client(f"sqlite:///{root / 'mlruns' / 'mlflow.db'}")
        exp_id = client.get_experiment_by_name(names.mlflow_name(name)).experiment_id
        # the sweep's runs; its parent run spans them all
        runs = [r for r in store.search(client, exp_id) if not sweep_runs.is_parent(r)]
        starts = [r.info.start_time / 1000 for r in runs]
        ends = [r.info.end_time / 1000 for r in runs]
        results = [
            json.loads(p.read_text())
            for p in (root / "results" / name).rglob("*.json")
            if p.name != "sweep.json"
        ]
    run_walls = [r["wall_time"] for r in results]
    return {
        "jobs": jobs,
        "wall_s": wall,
        "runs": len(runs),
        "fixed_share": fixed_cost_share(launched, exited, starts, ends),
        "before_first_run_s": min(starts) - launched,
        "after_last_run_s": exited - max(ends),
        "runs_span_s": max(ends) - min(starts),  # the first run's start to the last one's end
        "run_wall_time_sum_s": sum(run_walls),
        # the share of the workers' time not inside a run's own wall_time: fixed costs, per-run
        # costs outside train_run's clock (data loading, run creation) and idle workers at the end
        "idle_share": 1 - sum(run_walls) / (jobs * wall),
    }


def measure_sweep(plan: Plan, log: Callable) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        template = Path(tmp)
        exp_file = _sweep_file(plan, template)
        started = time.perf_counter()
        _check(_pipeline("data", "--experiment", str(exp_file), root=template), "data")
        data_s = time.perf_counter() - started  # also the warm-up: imports into the page cache
        import_s = []
        for _ in range(2):  # the second is warm
            started = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-c", "import pipeline.train, pipeline.sweep, mlflow"],
                cwd=paths.SOURCE_ROOT,
                capture_output=True,
                text=True,
            )
            _check(proc, "import")
            import_s.append(time.perf_counter() - started)
        sweeps: dict[str, list[dict]] = {"1": [], "2": []}
        for rep in range(plan.sweep_reps):
            for jobs in (1, 2) if rep % 2 == 0 else (2, 1):
                sweeps[str(jobs)].append(sweep_once(exp_file, jobs, template))
            s1, s2 = sweeps["1"][-1], sweeps["2"][-1]
            log(
                f"bench: sweep {rep + 1}/{plan.sweep_reps} jobs=1 {s1['wall_s']:.1f} s, "
                f"jobs=2 {s2['wall_s']:.1f} s ({s2['fixed_share']:.0%} fixed)"
            )
    walls = {jobs: [s["wall_s"] for s in runs] for jobs, runs in sweeps.items()}
    spans = {jobs: [s["runs_span_s"] for s in runs] for jobs, runs in sweeps.items()}
    return {
        "experiment": exp_file.stem if plan.sweep == "quick" else "bench_tiny (quick plan)",
        "runs": sweeps["1"][0]["runs"],
        "speedups": paired_ratios(walls["1"], walls["2"]),
        "span_speedups": paired_ratios(spans["1"], spans["2"]),  # fixed costs left out
        "fixed_shares": {jobs: [s["fixed_share"] for s in runs] for jobs, runs in sweeps.items()},
        "sweeps": sweeps,
        "data_stage_s": data_s,
        "import_s": import_s[-1],
    }
