"""The replication runner end to end on a tiny claim (plumbing, not the science), and which claims
it runs where.
"""

from __future__ import annotations

import json

import pytest

from pipeline import config, paths, replication
from pipeline.errors import ConfigError
from tests.conftest import write_experiment

TINY_CLAIM = {
    "tasks": [{"task": "adding", "variant": "halves", "distances": [9], "tolerance": 0.2}],
    "models": [{"name": "lstm", "cell": "lstm"}, {"name": "rnn", "cell": "rnn"}],
    "seeds": [0],
    "hidden_size": 8,
    "training": {"max_steps": 20, "eval_every": 10, "log_every": 10, "batch_size": 16},
    "data": {"n_train": 256, "n_val": 64, "n_test": 64},
    "probe": {"batch_size": 16, "every_evals": 0},
    "claim": {
        "citation": "Somebody (2024). A tiny claim.",
        "statement": "an LSTM beats nothing at all",
        "setting": "tiny",
        "verified": False,
        "unverified": ["everything"],
        "compute": "cpu",
        "expect": [
            # any finite loss holds; no run can have a negative one
            {"model": "lstm", "metric": "test_loss", "op": "<", "value": 1e6, "published": "x"},
            {"model": "rnn", "metric": "test_loss", "op": "<", "value": 0, "published": "y"},
        ],
        "observe": [{"model": "lstm", "metric": "steps_to_solve", "published": "z"}],
    },
}


def claim_file(folder, name: str, **changes):
    return write_experiment(folder, name, {**TINY_CLAIM, **changes})


@pytest.mark.slow
def test_a_claim_runs_end_to_end_and_gets_its_row(pipeline_root):
    folder = pipeline_root / "experiments" / "replications"
    tiny = claim_file(folder, "tiny")
    gpu = claim_file(folder, "big", claim={**TINY_CLAIM["claim"], "compute": "gpu"})
    page = replication.run(jobs=1, log=lambda *_: None, files=[gpu, tiny])
    assert page == paths.reports_dir("replications") / "report.html"
    assert (paths.reports_dir("tiny") / "report.html").exists()  # the claim's own report
    assert not paths.reports_dir("big").exists() or replication.gpu_here()
    md = (page.parent / "report.md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| tiny "))
    # the rnn's check cannot hold (a loss below 0): not reproduced, and unverified says so
    assert "not reproduced (published claim unverified)" in row
    assert "[report](../tiny/report.md)" in row
    assert "rnn at 9:" in row and "(seeds 0: " in row
    big = next(line for line in md.splitlines() if line.startswith("| big "))
    if not replication.gpu_here():
        assert "not run (published claim unverified): sized for a GPU (compute: gpu)" in big
        assert "none yet" in big
    html = page.read_text()
    assert '<a href="../tiny/report.html">report</a>' in html
    assert "1 of 2 checks fail: rnn: test loss &lt; 0" in html
    results = json.loads((paths.results_dir("tiny") / "sweep.json").read_text())
    assert len(results["runs"]) == 2


def test_which_claims_run_where(tmp_path):
    folder = tmp_path / "replications"
    cpu = claim_file(folder, "small")
    gpu = claim_file(folder, "large", claim={**TINY_CLAIM["claim"], "compute": "gpu"})
    claims = replication.load_claims([cpu, gpu])
    run, skipped = replication.plan(claims, None, everything=False, gpu=False)
    assert run == ["small"] and "sized for a GPU" in skipped["large"]
    assert replication.plan(claims, None, everything=False, gpu=True) == (["small", "large"], {})
    assert replication.plan(claims, None, everything=True, gpu=False)[0] == ["small", "large"]
    run, skipped = replication.plan(claims, "large", everything=False, gpu=False)
    assert run == ["large"] and "this call ran large only" in skipped["small"]
    run, skipped = replication.plan(claims, "small", everything=False, gpu=False)
    assert run == ["small"] and "sized for a GPU" in skipped["large"]
    with pytest.raises(ConfigError, match="no claim 'huge' in .*claims: small, large"):
        replication.plan(claims, "huge", everything=False, gpu=False)


def test_a_replication_file_needs_a_claim(tmp_path):
    plain = write_experiment(
        tmp_path, "plain", {k: v for k, v in TINY_CLAIM.items() if k != "claim"}
    )
    with pytest.raises(ConfigError, match=r"plain.yaml: claim: missing"):
        replication.load_claims([plain])


def test_shipped_claims_load_with_distinct_names():
    files = replication.claim_files()
    claims = replication.load_claims(files)
    assert len(claims) == len(files) >= 5
    assert {"arjovsky2016-adding", "hochreiter1997-adding"} <= set(claims)
    cpu = {name for name, (_, exp) in claims.items() if exp.claim.compute == "cpu"}
    assert cpu == {"arjovsky2016-adding", "hochreiter1997-adding"}  # minutes on 2 cores
    assert config.load(files[0]).claim == claims[files[0].stem][1].claim
