"""The figures of what the probes and the mechanism show across training, drawn from a constructed
sweep whose every number is known (no training): the right lines, styled by how each run ended,
and each training distance marked where time constants are drawn.
"""

from __future__ import annotations

import matplotlib.colors as mcolors
import numpy as np
import pandas as pd
import pytest

from pipeline import config
from pipeline.config.runs import evaluation_runs
from pipeline.report import over_training
from pipeline.report.reading import RESULT_COLUMNS
from pipeline.report.results import Readout

DISTANCES = [10, 20]
STEPS = [0, 100, 200, 200]  # init, two validations, final (the last two share a step)
PHASES = ["init", "step_100", "step_200", "final"]


def status_of(model: str, distance: int, seed: int) -> str:
    """The LSTM solves at 10 and, for seed 0, at 20; the GRU solves at 10; the RNN never."""
    if model == "lstm":
        return "solved" if distance == 10 or seed == 0 else "unsolved"
    return "solved" if model == "gru" and distance == 10 else "unsolved"


def probe_rows(spec, status: str) -> list[dict]:
    """Four probes: the key share falls for an unsolved run and rises for a solved one."""
    rows = []
    for i, (phase, step) in enumerate(zip(PHASES, STEPS, strict=True)):
        share = 10.0 ** (-spec.distance / 10 + (i if status == "solved" else -i))
        row = {"phase": phase, "step": step, "h_key_share": share, "h_jacobian_key": 2 * share}
        row |= {"W_radius": 0.9 + 0.01 * i, "W_sv": 1.2 + 0.01 * i}
        if spec.model.cell == "lstm":
            row |= {f"W_{g}_{s}": 0.5 + 0.1 * i for g in "ifgo" for s in ("radius", "sv")}
            row |= {"f_tau_median": 2.0 * (i + 1), "f_tau_max": 50.0, "f_tau_share": 0.1 * i}
        if spec.model.cell == "gru":
            row |= {f"W_{g}_{s}": 0.4 + 0.1 * i for g in "rzn" for s in ("radius", "sv")}
            row |= {"z_tau_median": 3.0 * (i + 1), "z_tau_max": 80.0, "z_tau_share": 0.2}
        if spec.model.cell != "rnn":
            del row["W_radius"], row["W_sv"]
        rows.append(row)
    if spec.model.cell == "rnn" and spec.seed == 1:
        rows[1]["h_key_share"] = 0.0  # no path left: not drawable on a log axis
    return rows


def sweep_of() -> Readout:
    exp = config.Experiment(
        name="over-training",
        tasks=[{"task": "recall", "distances": DISTANCES}],
        models=[{"name": n, "cell": n} for n in ("rnn", "gru", "lstm")],
        seeds=[0, 1],
    )
    runs, summary = [], []
    for spec in evaluation_runs(exp):
        status = status_of(spec.model.name, spec.distance, spec.seed)
        identity = {k: v for k, v in spec.identity().items() if k in RESULT_COLUMNS}
        runs.append({**identity, "status": status, "solved": status == "solved",
                     "run_id": spec.key, "probe_data": True})  # fmt: skip
        for row in probe_rows(spec, status):
            summary.append({"run_id": spec.key, "run_key": spec.key, "task": "recall",
                            "model": spec.model.name, "cell": spec.model.cell,
                            "distance": spec.distance, "seed": spec.seed, **row})  # fmt: skip
    frame = pd.DataFrame(runs, columns=RESULT_COLUMNS).copy()
    empty = pd.DataFrame()
    summary = pd.DataFrame(summary).drop(columns="cell")  # as reading leaves it: identity only
    return Readout(exp, "1", "sqlite:///none", frame, empty, empty, probe_summary=summary)


def runs_drawn(ax) -> list:
    """The lines of one run each (markers on), not the reference lines."""
    return [line for line in ax.get_lines() if line.get_marker() == "."]


def test_trajectories_keep_each_runs_probes_in_order_with_how_it_ended():
    sweep = sweep_of()
    rows = over_training.trajectories(sweep, "recall")
    assert len(rows) == len(sweep.finished) * 3
    for _, run in rows.groupby("run_id"):  # the final probe stands for the last validation's
        assert run["phase"].tolist() == ["init", "step_100", "final"]
        assert run["step"].tolist() == [0, 100, 200]
    lstm = rows[(rows["model"] == "lstm") & (rows["distance"] == 20)]
    assert lstm.groupby("seed")["status"].first().to_dict() == {0: "solved", 1: "unsolved"}
    assert set(rows["cell"]) == {"rnn", "gru", "lstm"}


def test_a_run_that_did_not_finish_is_not_drawn():
    sweep = sweep_of()
    gone = sweep.runs["model"].eq("lstm") & sweep.runs["distance"].eq(20) & sweep.runs["seed"].eq(1)
    sweep.runs.loc[gone, "status"] = "failed"
    rows = over_training.trajectories(sweep, "recall")
    assert not ((rows["model"] == "lstm") & (rows["distance"] == 20) & (rows["seed"] == 1)).any()


def test_probe_figure_draws_a_line_per_run_solid_where_it_solved_dashed_where_not():
    sweep = sweep_of()
    fig = over_training.plot_probe_over_training(sweep, "recall")
    axes = np.array(fig.axes[: 3 * 2]).reshape(3, 2)  # models x (key share, Jacobian norm)
    assert [ax.get_title() for ax in axes[:, 0]][2].startswith("lstm: gradient share")
    lstm_share = axes[2][0]
    lines = runs_drawn(lstm_share)
    assert len(lines) == 4  # 2 distances x 2 seeds
    styles = sorted(line.get_linestyle() for line in lines)
    assert styles == ["-", "-", "-", "--"]  # one LSTM run unsolved (d=20, seed 1)
    solved = next(line for line in lines if line.get_linestyle() == "-")
    assert np.all(np.diff(solved.get_ydata()) > 0)  # the constructed rise is what is drawn
    assert lstm_share.get_yscale() == "log"
    rnn_share = axes[0][0]
    zeroed = [line.get_ydata() for line in runs_drawn(rnn_share)]
    assert sum(int(np.isnan(y).sum()) for y in zeroed) == 2  # seed 1's 0 share, at d=10 and 20
    assert all(len(y) == 3 for y in zeroed)
    colours = {mcolors.to_hex(line.get_color()) for line in lines}
    assert len(colours) == 2  # one colour per distance


def test_mechanism_figure_marks_each_distance_on_the_time_constant_panel():
    sweep = sweep_of()
    fig = over_training.plot_mechanism_over_training(sweep, "recall")
    axes = np.array(fig.axes[: 3 * 3]).reshape(3, 3)  # models x (radius, norm, time constant)
    gru_tau, lstm_tau, rnn_tau = axes[1][2], axes[2][2], axes[0][2]
    for ax, gate in ((gru_tau, "z"), (lstm_tau, "f")):
        marks = [line.get_ydata()[0] for line in ax.get_lines() if line.get_marker() != "."]
        assert sorted(marks) == DISTANCES, gate
        assert f"{gate}'s time constant" in ax.get_title()
        assert ax.get_ylim()[1] >= max(DISTANCES)  # the longest distance's line is inside
    assert "no keep gate" in [t.get_text() for t in rnn_tau.texts]
    assert runs_drawn(rnn_tau) == []
    lstm_radius = axes[2][0]
    assert "W_g" in lstm_radius.get_title()  # the candidate's block, the Elman W's part
    drawn = runs_drawn(lstm_radius)[0].get_ydata()
    assert list(drawn) == pytest.approx([0.5, 0.6, 0.8])  # init, step 100, final
    threshold = [line for line in lstm_radius.get_lines() if line.get_marker() != "."]
    assert [line.get_ydata()[0] for line in threshold] == [1.0]
    taus = runs_drawn(lstm_tau)[0].get_ydata()
    assert list(taus) == pytest.approx([2.0, 4.0, 8.0])  # the median, by default


def test_without_probe_summaries_there_is_no_figure():
    sweep = sweep_of()
    sweep.probe_summary = pd.DataFrame()
    assert over_training.plot_probe_over_training(sweep, "recall") is None
    assert over_training.plot_mechanism_over_training(sweep, "recall") is None


def with_result_columns(sweep: Readout) -> Readout:
    """The result-file columns the sentences read, from each run's first and last probe."""
    rows = over_training.trajectories(sweep, "recall")
    first = rows.groupby("run_id").first()
    last = rows.groupby("run_id").last()
    runs = sweep.runs.set_index("run_id")
    for phase, probe in (("init", first), ("final", last)):
        runs[f"probe_{phase}_h_key_share"] = probe["h_key_share"]
        runs[f"probe_{phase}_h_jacobian_key"] = probe["h_jacobian_key"]
        for column in ("W_radius", "W_g_radius", "W_n_radius", "f_tau_max", "z_tau_max"):
            runs[f"mech_{phase}_{column}"] = probe[column]
    sweep.runs = runs.reset_index()
    return sweep


def test_the_mechanism_sentences_and_table_tell_solved_from_unsolved_runs_with_their_n():
    sweep = with_result_columns(sweep_of())
    changes = over_training.share_changes(sweep, "recall")
    # solved runs: the share rises tenfold per probe, three probes: 1000-fold; unsolved: falls
    assert changes["solved"].runs == 5 and changes["solved"].ratio == pytest.approx(1000)
    assert changes["unsolved"].runs == 7 and changes["unsolved"].ratio == pytest.approx(1e-3)
    said = " ".join(over_training.mechanism_sentences(sweep, "recall"))
    assert "in the 5 solved runs" in said and "1,000-fold rise" in said
    assert "in the 7 unsolved runs" in said and "changed" in said  # not "rose": one fell
    # the keep gate's longest time constant: 50 (LSTM) and 80 (GRU), above every distance
    reach = over_training.gate_reach(sweep, "recall")
    assert reach["solved"][:2] == (5, 5) and reach["unsolved"][:2] == (3, 3)
    table = over_training.mechanism_table(sweep, "recall").set_index(["model", "outcome"])
    assert table.loc[("lstm", "solved"), "runs"] == 3
    assert table.loc[("rnn", "not solved"), "keep gate: longest time constant (steps)"] == (
        "no keep gate"
    )
    assert table.loc[("lstm", "solved"), "spectral radius (block in W's place)"].startswith("W_g: ")
