"""The benchmark's arithmetic, its report files, and its measurements on tiny settings.

No test asserts a time: the arithmetic on made-up measurements, the files, and that the timed
paths do the work they claim to.
"""

from __future__ import annotations

import json
import time

import pytest
import torch

from pipeline import config
from pipeline.bench import output, overhead, stats
from pipeline.config.training import n_probes
from pipeline.tracking import store
from pipeline.tracking.run_log import MemoryRuns
from pipeline.train import run as train
from pipeline.train.saved import build_model


def _measured() -> dict:
    """Raw measurements shaped as ``bench.run`` collects them (values made up)."""
    overhead = [
        {
            "setting": f"{cell} d={d}",
            "cell": cell,
            "distance": d,
            "steps": 101,
            "pipeline_steps_per_s": [90.0 * k, 80.0 * k],
            "plain_steps_per_s": [100.0 * k, 100.0 * k],
            "ratios": [0.9, 0.8 + 0.1 * (k == 2)],
            "pipeline_cpu_steps_per_s": [95.0 * k, 85.0 * k],
            "plain_cpu_steps_per_s": [100.0 * k, 100.0 * k],
            "cpu_ratios": [0.95, 0.85],
        }
        for k, (cell, d) in enumerate([("rnn", 20), ("lstm", 80)], start=1)
    ]
    sweep = {
        "jobs": None,
        "wall_s": 20.0,
        "fixed_share": 0.4,
        "before_first_run_s": 6.0,
        "after_last_run_s": 2.0,
        "runs": 8,
    }
    return {
        "overhead": overhead,
        "system_metrics": {
            "interval_s": 10,
            "cpu_s": 0.09,
            "wall_s": 60.0,
            "samples": 6,
            "start_finish_s": 0.02,
            "shares": [0.0015],
        },
        "setup": {"store_setup_s": 5.0},
        "sweep": {
            "experiment": "quick",
            "runs": 8,
            "speedups": [1.5, 1.6, 1.4],
            "span_speedups": [1.8, 1.9, 1.7],
            "fixed_shares": {"1": [0.3, 0.3, 0.3], "2": [0.4, 0.5, 0.45]},
            "sweeps": {"1": [sweep] * 3, "2": [sweep] * 3},
            "data_stage_s": 3.0,
            "import_s": 4.0,
        },
        "probe": [
            {
                "setting": "rnn d=20",
                "probe_s": [0.01, 0.012],
                "step_s": 0.005,
                "probes": 6,
                "steps": 2000,
                "shares": [0.006, 0.007],
            },
            {
                "setting": "lstm d=80",
                "probe_s": [0.05, 0.06],
                "step_s": 0.03,
                "probes": 6,
                "steps": 2000,
                "shares": [0.005, 0.02],
            },
        ],
        "fused": [
            {
                "setting": "lstm d=20",
                "length": 25,
                "fused_s": [0.01, 0.01],
                "reference_s": [0.03, 0.02],
                "ratios": [3.0, 2.0],
            }
        ],
    }


# ---- arithmetic -------------------------------------------------------------------------------


def test_summary_reports_median_range_and_relative_spread():
    s = stats.summary([2.0, 1.0, 4.0])
    assert (s["median"], s["min"], s["max"], s["n"]) == (2.0, 1.0, 4.0, 3)
    assert s["spread"] == pytest.approx(1.5)  # (4 - 1) / 2
    assert stats.summary([3.0])["spread"] == 0.0
    with pytest.raises(ValueError):
        stats.summary([])


def test_paired_ratios_divide_repetition_by_repetition():
    assert stats.paired_ratios([1.0, 3.0], [2.0, 4.0]) == [0.5, 0.75]
    with pytest.raises(ValueError, match="unpaired"):
        stats.paired_ratios([1.0], [1.0, 2.0])


def test_n_probes_counts_init_final_and_every_few_validations():
    # the default experiment: 2000 steps, a validation every 100, a probe every 5 validations
    assert n_probes(2000, 100, 5) == 6
    assert n_probes(2000, 100, 0) == 2  # 0: no probes between init and final
    assert n_probes(450, 100, 5) == 2  # no fifth validation yet


def test_probe_share_is_the_probes_fraction_of_the_run():
    assert stats.probe_share(1.0, 0.01, 100, 1) == pytest.approx(0.5)
    assert stats.probe_share(0.05, 0.005, 2000, 6) == pytest.approx(0.3 / (0.3 + 10.0))
    assert stats.probe_share(0.0, 0.01, 100, 6) == 0.0


def test_fixed_cost_share_counts_time_before_the_first_and_after_the_last_run():
    # launched at 100 s, runs from 103 to 117 (overlapping), exited at 120
    share = stats.fixed_cost_share(100.0, 120.0, [103.0, 104.0, 110.0], [109.0, 112.0, 117.0])
    assert share == pytest.approx((3.0 + 3.0) / 20.0)


@pytest.mark.parametrize(
    ("key", "good", "bad"),
    [
        ("pipeline_vs_plain", 0.9, 0.89),
        ("sweep_speedup_jobs2", 1.7, 1.69),
        ("sweep_fixed_cost_share", 0.099, 0.1),
        ("probe_share", 0.05, 0.051),
        ("system_metrics_share", 0.0099, 0.01),
    ],
)
def test_targets_compare_the_right_way(key, good, bad):
    assert stats.meets(key, good)
    assert not stats.meets(key, bad)


def test_headline_takes_the_worst_configuration_and_reports_noise():
    h = stats.headline(_measured())
    assert h["pipeline_vs_plain"] == pytest.approx(0.85)  # rnn d=20: median of 0.9 and 0.8
    assert h["worst_setting"]["pipeline_vs_plain"] == "rnn d=20"
    assert h["sweep_speedup_jobs2"] == pytest.approx(1.5)
    assert h["sweep_fixed_cost_share"] == pytest.approx(0.45)  # jobs=2
    assert h["probe_share"] == pytest.approx(0.0125)  # lstm d=80, the larger median
    assert h["worst_setting"]["probe_share"] == "lstm d=80"
    assert h["met"] == {
        "pipeline_vs_plain": False,
        "sweep_speedup_jobs2": False,
        "sweep_fixed_cost_share": False,
        "probe_share": True,
        "system_metrics_share": True,
    }
    assert h["noise"]["pipeline_vs_plain"] == pytest.approx(0.1 / 0.85)
    assert set(h["noise"]) == set(stats.TARGETS)
    without = _measured() | {"system_metrics": {"interval_s": 10, "shares": [], "skipped": "x"}}
    assert "system_metrics_share" not in stats.headline(without)["met"]  # not measured: no figure


# ---- the report files -------------------------------------------------------------------------


def test_outputs_hold_the_stable_keys_the_table_and_the_plot(tmp_path):
    measured = _measured()
    report = {
        **stats.headline(measured),
        "quick": True,
        "when": "2026-01-01T00:00:00+00:00",
        "seconds": 1.0,
        "machine": output.machine(torch.device("cpu")),
        "measurements": measured,
    }
    rows = output.table_rows(measured)
    files = output.write_outputs(report, rows, tmp_path / "bench")

    saved = json.loads(files["json"].read_text())
    for key in ("pipeline_vs_plain", "sweep_speedup_jobs2", "sweep_fixed_cost_share"):
        assert isinstance(saved[key], float)
    assert saved["probe_share"] == pytest.approx(0.0125)
    for key in ("cpu_count", "torch", "device"):
        assert key in saved["machine"]
    assert saved["measurements"]["overhead"][0]["ratios"] == [0.9, 0.8]

    table = files["md"].read_text()
    assert "| rnn d=20 | 0.85x |" in table
    assert "MISSED" in table and "(met)" in table
    assert files["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| system-metrics monitor, share of a core | beside the overhead runs | 0.15% |" in table
    # overhead, speedups, shares, parts, probe, system metrics, fused
    assert len(rows) == 2 + 2 + 2 + 2 + 2 + 1 + 1


# ---- measurements on tiny settings --------------------------------------------------------------


def _tiny_spec(cell: str = "lstm", steps: int = 7):
    base = config.Experiment(
        name="tiny",
        tasks=[{"task": "recall", "distances": [5], "n_keys": 4, "n_filler": 8}],
        models=[{"name": cell, "cell": cell}],
        seeds=[0],
        hidden_size=8,
        training={"batch_size": 16, "eval_every": 3, "log_every": 2},
        data={"n_train": 64, "n_val": 32, "n_test": 32},
        probe={"batch_size": 16},
    )
    return overhead.overhead_spec(cell, 5, steps, base)


def test_overhead_spec_cannot_stop_early_and_takes_no_periodic_probe():
    spec = _tiny_spec(steps=7)
    assert spec.training.max_steps == 7
    assert spec.training.solved_accuracy > 1
    assert spec.probe.every_evals == 0
    assert spec.training.eval_every == 3  # the base experiment's cadence is kept
    splits = overhead.run_splits(spec)
    assert len(splits["train"].y) == 64 and len(splits["val"].y) == 32


@pytest.mark.slow
def test_plain_loop_trains_the_model_the_pipeline_trains():
    """The two timed paths do the same work: after the same steps, the same weights."""
    spec = _tiny_spec(steps=7)
    splits = overhead.run_splits(spec)
    *_, plain = overhead.plain_rate(spec, splits, torch.device("cpu"))
    run_log = MemoryRuns().open(spec.title, {})
    lit, trainer = train.fit(spec, splits, run_log)
    assert trainer.global_step == 7
    assert len(run_log.values("val_accuracy")) == 2  # validations at steps 3 and 6
    pipeline = lit.model.state_dict()
    for name, weights in plain.state_dict().items():
        assert torch.allclose(weights, pipeline[name], atol=1e-6), name
    untrained = build_model(spec).state_dict()  # the comparison can fail: training moved
    assert any(not torch.equal(untrained[k], v) for k, v in pipeline.items())


@pytest.mark.slow
def test_pipeline_rate_trains_through_a_real_store(tmp_path, monkeypatch):
    spec = _tiny_spec(steps=7)  # validations at steps 3 and 6 fall inside the timed window
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    # MLflow sets this variable when a client picks a store; undone after the test
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    client = store.connect(uri)
    exp_id = client.create_experiment("bench", artifact_location=tmp_path.as_uri())
    wall, cpu = overhead.pipeline_rate(spec, overhead.run_splits(spec), client, exp_id)
    assert wall > 0 and cpu > 0
    (run,) = client.search_runs([exp_id])
    assert run.info.status == "FINISHED"
    # the run's log wrote at the default cadence: val every 3 steps, train every 2
    assert len(client.get_metric_history(run.info.run_id, "val_accuracy")) == 2
    assert len(client.get_metric_history(run.info.run_id, "train_loss")) == 3


@pytest.mark.slow
def test_the_system_metrics_monitor_is_timed_on_a_real_store(tmp_path, monkeypatch):
    from pipeline.bench.system import monitor_cost

    monkeypatch.setenv("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "1")  # MLflow's own setting
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)  # as the test above: MLflow may set it
    client = store.connect(uri)
    exp_id = client.create_experiment("bench", artifact_location=tmp_path.as_uri())
    with monitor_cost(client, exp_id) as measured:
        overhead.pipeline_rate(_tiny_spec(steps=7), overhead.run_splits(_tiny_spec()), client,
                               exp_id)  # fmt: skip
        time.sleep(2.5)
    assert measured["samples"] >= 1 and measured["wall_s"] >= 2.5
    assert 0 < measured["cpu_s"] < measured["wall_s"]
    assert measured["shares"] == [measured["cpu_s"] / measured["wall_s"]]
