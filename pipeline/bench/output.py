"""The benchmark's outputs: the machine it ran on, the printed table, ``bench.json``, ``bench.md``
and ``bench.png``.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
from collections.abc import Sequence
from pathlib import Path

import pytorch_lightning as pl
import torch

from pipeline.bench.stats import TARGETS, meets, summary
from pipeline.tracking.source import cpu_name


def machine(device: torch.device) -> dict:
    """What the figures were measured on, and how busy it was (1-, 5- and 15-minute load)."""
    return {
        "cpu_count": os.cpu_count(),
        "cpu": cpu_name(),
        "load_average": list(os.getloadavg()),  # other processes competing for the cores
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "lightning": pl.__version__,
        "python": platform.python_version(),
        "torch_threads": torch.get_num_threads(),
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _noise(values: Sequence[float], fmt: str) -> str:
    s = summary(values)
    if s["n"] == 1:
        return "n=1"
    return f"{s['min']:{fmt}} to {s['max']:{fmt}}, spread {s['spread']:.0%} (n={s['n']})"


def _target(key: str, value: float) -> str:
    op, threshold = TARGETS[key]
    shown = f"{threshold:.0%}" if "share" in key else f"{threshold:g}x"
    return f"{op} {shown} ({'met' if meets(key, value) else 'MISSED'})"


def _row(figure: str, setting: str, value: str, detail: str, target="", noise="n=1") -> dict:
    """One row of the table, its columns in order."""
    return {
        "figure": figure,
        "setting": setting,
        "value": value,
        "detail": detail,
        "target": target,
        "noise": noise,
    }


def table_rows(measured: dict) -> list[dict]:
    """One row per figure: what, setting, value, detail, target, noise."""
    med = statistics.median
    rows = []
    for r in measured["overhead"]:
        ratio = med(r["ratios"])
        detail = (
            f"pipeline {med(r['pipeline_steps_per_s']):.0f}, plain "
            f"{med(r['plain_steps_per_s']):.0f} steps/s; CPU-time ratio {med(r['cpu_ratios']):.2f}x"
        )
        rows.append(
            _row(
                "pipeline / plain steps/s", r["setting"], f"{ratio:.2f}x", detail,
                _target("pipeline_vs_plain", ratio), _noise(r["ratios"], ".2f"),
            )
        )  # fmt: skip
    sw = measured["sweep"]
    speedup = med(sw["speedups"])
    w1, w2 = (med(s["wall_s"] for s in sw["sweeps"][jobs]) for jobs in ("1", "2"))
    rows.append(
        _row(
            "sweep speedup, jobs=2", f"{sw['experiment']}, {sw['runs']} runs",
            f"{speedup:.2f}x", f"{w1:.1f} s -> {w2:.1f} s",
            _target("sweep_speedup_jobs2", speedup), _noise(sw["speedups"], ".2f"),
        )
    )  # fmt: skip
    rows.append(
        _row(
            "speedup of the runs alone, jobs=2", sw["experiment"],
            f"{med(sw['span_speedups']):.2f}x", "first run's start to last run's end",
            noise=_noise(sw["span_speedups"], ".2f"),
        )
    )  # fmt: skip
    for jobs in ("2", "1"):
        shares = sw["fixed_shares"][jobs]
        share = med(shares)
        before = med(s["before_first_run_s"] for s in sw["sweeps"][jobs])
        after = med(s["after_last_run_s"] for s in sw["sweeps"][jobs])
        rows.append(
            _row(
                f"sweep fixed-cost share, jobs={jobs}", sw["experiment"], f"{share:.0%}",
                f"{before:.1f} s before the first run, {after:.1f} s after the last",
                _target("sweep_fixed_cost_share", share) if jobs == "2" else "",
                _noise(shares, ".0%"),
            )
        )  # fmt: skip
    parts = {
        "a fresh SQLite store": (measured["setup"]["store_setup_s"], "MLflow's schema migrations"),
        "a fresh interpreter's imports": (
            sw["import_s"],
            "pipeline.train, pipeline.sweep, mlflow: paid once a sweep, by the workers' fork "
            "server, beside the store set-up",
        ),
    }
    for setting, (seconds, detail) in parts.items():
        rows.append(_row("part of the fixed cost", setting, f"{seconds:.1f} s", detail))
    for r in measured["probe"]:
        share = med(r["shares"])
        detail = (
            f"{r['probes']} x {med(r['probe_s']) * 1e3:.0f} ms vs "
            f"{r['steps']} x {r['step_s'] * 1e3:.1f} ms"
        )
        rows.append(
            _row(
                "probe share of a run", r["setting"], f"{share:.1%}", detail,
                _target("probe_share", share), _noise(r["shares"], ".1%"),
            )
        )  # fmt: skip
    sm = measured["system_metrics"]
    if sm["shares"]:
        share = sm["shares"][0]
        detail = (
            f"{sm['cpu_s'] * 1e3:.0f} ms of CPU in {sm['wall_s']:.0f} s (samples logged: "
            f"{sm['samples']}, one every {sm['interval_s']} s); start and finish "
            f"{sm['start_finish_s'] * 1e3:.0f} ms"
        )
        rows.append(
            _row(
                "system-metrics monitor, share of a core", "beside the overhead runs",
                f"{share:.2%}", detail, _target("system_metrics_share", share),
            )
        )  # fmt: skip
    else:
        rows.append(_row("system-metrics monitor", "", "not measured", sm.get("skipped", "")))
    for r in measured["fused"]:
        detail = (
            f"fused {med(r['fused_s']) * 1e3:.1f} ms, reference "
            f"{med(r['reference_s']) * 1e3:.1f} ms (forward + backward)"
        )
        rows.append(
            _row(
                "reference cell / fused nn.LSTM time", f"{r['setting']} (T={r['length']})",
                f"{med(r['ratios']):.1f}x", detail, "for the record", _noise(r["ratios"], ".1f"),
            )
        )  # fmt: skip
    return rows


def markdown(rows: list[dict]) -> str:
    """A Markdown table of ``rows`` (dicts with the same keys)."""
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + " --- |" * len(keys)]
    lines += ["| " + " | ".join(str(r[k]) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def plot(measured: dict, path: Path) -> None:
    """Four panels: throughput ratio, sweep wall time, probe share, fused against reference."""
    import seaborn as sns
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    sns.set_theme(style="whitegrid", context="notebook")
    fig = Figure(figsize=(12, 8), layout="constrained")
    ax = fig.subplots(2, 2)

    def points(a, rows, key, scale=1.0):
        for i, r in enumerate(rows):
            values = [v * scale for v in r[key]]
            a.scatter([i] * len(values), values, color="C0", alpha=0.5, s=18)
            a.scatter([i], [statistics.median(values)], color="C3", marker="_", s=400)
        a.set_xticks(range(len(rows)), [r["setting"] for r in rows])

    points(ax[0, 0], measured["overhead"], "ratios")
    ax[0, 0].axhline(TARGETS["pipeline_vs_plain"][1], color="k", ls="--", lw=1)
    ax[0, 0].set(title="pipeline / plain training steps/s", ylabel="ratio (1 = no overhead)")

    sw = measured["sweep"]
    for i, jobs in enumerate(("1", "2")):  # the median sweep of each
        wall = statistics.median(s["wall_s"] for s in sw["sweeps"][jobs])
        fixed = wall * statistics.median(sw["fixed_shares"][jobs])
        ax[0, 1].bar(i, fixed, color="C1", alpha=0.4, width=0.5)
        ax[0, 1].bar(i, wall - fixed, bottom=fixed, color="C0", alpha=0.4, width=0.5)
    ax[0, 1].set_xticks([0, 1], ["jobs=1", "jobs=2"])
    ax[0, 1].set(title=f"sweep wall time ({sw['experiment']})", ylabel="s")
    ax[0, 1].legend(
        handles=[
            Patch(color="C1", alpha=0.4, label="before the first run / after the last"),
            Patch(color="C0", alpha=0.4, label="first run start to last run end"),
        ]
    )

    points(ax[1, 0], measured["probe"], "shares", scale=100)
    ax[1, 0].axhline(TARGETS["probe_share"][1] * 100, color="k", ls="--", lw=1)
    ax[1, 0].set(title="probe share of a default run", ylabel="%")

    points(ax[1, 1], measured["fused"], "ratios")
    ax[1, 1].set(title="reference LSTMCell unrolled / fused nn.LSTM", ylabel="time ratio")
    ax[1, 1].set_ylim(bottom=0)
    fig.savefig(path, dpi=110)


def write_outputs(report: dict, rows: list[dict], folder: Path) -> dict[str, Path]:
    """``bench.json``, ``bench.md`` and ``bench.png`` under ``folder``; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {name: folder / f"bench.{name}" for name in ("json", "md", "png")}
    out["json"].write_text(json.dumps(report, indent=2) + "\n")
    m = report["machine"]
    out["md"].write_text(
        f"# Benchmarks ({'quick' if report['quick'] else 'full'} plan, {report['when']})\n\n"
        f"Machine: {m['cpu_count']} x {m['cpu']}, device {m['device']}, torch {m['torch']}, "
        f"Lightning {m['lightning']}, {m['torch_threads']} torch thread; load average "
        f"{m['load_average'][0]:.1f} at the start.\n\n"
        + markdown(rows)
        + "\n\nnoise: the range of the repetitions, and its spread (max - min) / median.\n"
    )
    plot(report["measurements"], out["png"])
    return out
