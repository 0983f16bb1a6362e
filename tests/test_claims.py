"""The claim block of a replication file: validated like the rest of the file, and the verdicts
decided from result files (synthetic ones here: no training).
"""

from __future__ import annotations

import copy
import math

import pytest

from pipeline import config, paths, replication
from pipeline.config.claims import Expectation
from pipeline.config.runs import evaluation_runs
from pipeline.errors import ConfigError
from pipeline.paths import write_json
from pipeline.report.checks import judge, number
from pipeline.report.reading import planned
from tests.conftest import synthetic_result, write_experiment

CLAIMED = {
    "tasks": [{"task": "adding", "variant": "halves", "distances": [19, 39]}],
    "models": [{"name": "lstm", "cell": "lstm"}, {"name": "rnn", "cell": "rnn"}],
    "seeds": [0, 1, 2],
    "training": {"batch_size": 20},
    "claim": {
        "citation": "Someone (2016). A paper.",
        "statement": "the LSTM beats the baseline, the RNN does not",
        "setting": "theirs",
        "verified": True,
        "expect": [
            {"model": "lstm", "metric": "test_loss", "op": "<", "value": 0.01, "published": "~0"},
            {
                "model": "rnn",
                "metric": "test_loss",
                "op": ">=",
                "value": 0.15,
                "over": "all",
                "published": "never beats 0.167",
            },
        ],
        "observe": [{"model": "lstm", "metric": "sequences_to_solve", "published": "74,000"}],
    },
}


PART = {
    "settings": {"tasks[0].distances": [19], "training.max_steps": 500},
    "budget": "500 updates",
    "shows": "the claim at distance 19",
    "cannot_show": "the claim at distance 39",
}


def changed(edit) -> dict:
    settings = copy.deepcopy(CLAIMED)
    edit(settings)
    return settings


def claim(s: dict) -> dict:
    return s["claim"]


BAD = [
    ("unknown key in the claim", lambda s: claim(s).update(doi="x"), "claim.doi", "'x'"),
    ("no citation", lambda s: claim(s).pop("citation"), "claim.citation", "required but not given"),
    ("empty statement", lambda s: claim(s).update(statement=""), "claim.statement", "''"),
    ("a compute label", lambda s: claim(s).update(compute="gpu"), "claim.compute", "'gpu'"),
    (
        "a part's name that cannot end a folder's",
        lambda s: claim(s).update(parts={"T 100": PART}),
        "claim.parts.T 100.[key]",
        "should match pattern",
    ),
    (
        "a part that changes nothing",
        lambda s: claim(s).update(parts={"short": {**PART, "settings": {}}}),
        "claim.parts.short.settings",
        "at least 1",
    ),
    (
        "a part that does not say what it cannot show",
        lambda s: claim(s).update(parts={"short": {"settings": PART["settings"], "shows": "x"}}),
        "claim.parts.short.cannot_show",
        "required but not given",
    ),
    ("verified as text", lambda s: claim(s).update(verified="yes"), "claim.verified", "'yes'"),
    (
        "unverified without saying what",
        lambda s: claim(s).update(verified=False),
        "claim.unverified",
        "got []",
    ),
    ("no checks", lambda s: claim(s).update(expect=[]), "claim.expect", "at least 1"),
    (
        "unknown model",
        lambda s: claim(s)["expect"][1].update(model="gru"),
        "claim.expect[1].model",
        "no model 'gru' in this experiment (models: lstm, rnn)",
    ),
    (
        "unknown model in an observation",
        lambda s: claim(s)["observe"][0].update(model="lstmx"),
        "claim.observe[0].model",
        "'lstmx'",
    ),
    (
        "unknown metric",
        lambda s: claim(s)["expect"][0].update(metric="test_mse"),
        "claim.expect[0].metric",
        "'test_mse'",
    ),
    (
        "unknown operator",
        lambda s: claim(s)["expect"][0].update(op="=<"),
        "claim.expect[0].op",
        "'=<'",
    ),
    (
        "unknown way over the seeds",
        lambda s: claim(s)["expect"][0].update(over="mean"),
        "claim.expect[0].over",
        "'mean'",
    ),
    (
        "a threshold that is not a number",
        lambda s: claim(s)["expect"][0].update(value="small"),
        "claim.expect[0].value",
        "'small'",
    ),
    (
        "an infinite threshold",
        lambda s: claim(s)["expect"][0].update(value=math.inf),
        "claim.expect[0].value",
        "inf",
    ),
    (
        "a check without a threshold",
        lambda s: claim(s)["expect"][0].pop("value"),
        "claim.expect[0].value",
        "required but not given",
    ),
    (
        "a distance the task lacks",
        lambda s: claim(s)["expect"][0].update(distances=[19, 29]),
        "claim.expect[0].distances",
        "29 is not a distance of the claim's task (19, 39)",
    ),
    (
        "two tasks",
        lambda s: s["tasks"].append({"task": "recall", "distances": [10]}),
        "claim",
        "a replication holds one task",
    ),
]


@pytest.mark.parametrize(("edit", "field", "value"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_claim_names_file_field_and_value(tmp_path, edit, field, value):
    path = write_experiment(tmp_path, "bad", changed(edit))
    with pytest.raises(ConfigError) as caught:
        config.load(path)
    message = str(caught.value)
    assert len(message.splitlines()) == 1, message
    assert message.startswith(f"{path}: ")
    assert f"{field}:" in message
    assert value.lower() in message.split(f"{field}:", 1)[1].lower()


def test_the_claim_is_no_part_of_a_runs_identity(tmp_path):
    with_claim = config.load(write_experiment(tmp_path, "a", CLAIMED))
    without = config.load(write_experiment(tmp_path, "a", changed(lambda s: s.pop("claim"))))
    assert [r.config_hash for r in evaluation_runs(with_claim)] == [
        r.config_hash for r in evaluation_runs(without)
    ]


@pytest.mark.parametrize(
    ("op", "over", "values", "measured", "holds"),
    [
        ("<", "median", [0.5, 0.001, 0.002], 0.002, True),
        ("<", "all", [0.5, 0.001, 0.002], 0.5, False),  # the worst seed decides
        ("<", "any", [0.5, 0.001, 0.002], 0.001, True),  # the best seed decides
        (">=", "all", [0.16, 0.17, math.inf], 0.16, True),
        (">=", "any", [0.1, 0.12, 0.14], 0.14, False),
        ("<=", "all", [100, math.inf], math.inf, False),  # an unsolved seed: never within
    ],
)
def test_seeds_combine_as_the_check_says(op, over, values, measured, holds):
    check = Expectation(model="m", metric="test_loss", op=op, value=0.15, over=over, published="p")
    check = check.model_copy(update={"value": 150}) if op == "<=" else check
    assert check.combine(values) == measured
    assert check.holds(check.combine(values)) is holds


# ---- verdicts from synthetic result files ----------------------------------------------------


def write_results(exp, outcome: dict) -> None:
    """A result file per planned run: ``outcome[(model, distance)]`` lists each seed's
    ``(status, test_loss, steps_to_solve)``, or None for a run without a result file.
    """
    for spec in evaluation_runs(exp):
        found = outcome[(spec.model.name, spec.distance)][exp.seeds.index(spec.seed)]
        if found is None:
            continue
        status, loss, steps = found
        result = synthetic_result(spec, status=status, steps_to_solve=steps, test_loss=loss)
        write_json(paths.result_file(exp.name, spec.key), result.model_dump())


GOOD = ("solved", 0.004, 800)
PLATEAU = ("unsolved", 0.166, None)
REPRODUCED = {
    **{("lstm", d): [GOOD] * 3 for d in (19, 39)},
    **{("rnn", d): [PLATEAU] * 3 for d in (19, 39)},
}


def verdict_of(root, outcome: dict, **claim_changes):
    settings = changed(lambda s: claim(s).update(claim_changes))
    exp = config.load(write_experiment(root / "experiments", "claimed", settings))
    write_results(exp, outcome)
    return exp, judge(exp, planned(exp)[0])


def test_every_check_holding_is_reproduced(pipeline_root):
    _, verdict = verdict_of(pipeline_root, REPRODUCED)
    assert verdict.verdict == "reproduced" and verdict.reason == "all 4 checks hold"
    assert [c.outcome for c in verdict.checks] == ["holds"] * 4
    (first, *_) = verdict.checks
    assert (first.distance, first.seeds, first.measured) == (19, (0, 1, 2), 0.004)
    observed = verdict.observed[0]
    assert observed.outcome == "measured" and observed.measured == 800 * 20  # batch 20


def test_one_failing_check_is_not_reproduced_even_with_runs_missing(pipeline_root):
    outcome = dict(REPRODUCED)
    outcome[("rnn", 39)] = [PLATEAU, PLATEAU, ("unsolved", 0.12, None)]  # one seed beats it
    outcome[("lstm", 39)] = [GOOD, None, None]  # not every seed has run
    _, verdict = verdict_of(pipeline_root, outcome)
    assert verdict.verdict == "not reproduced"
    assert "1 of 4 checks fail" in verdict.reason and "(1 not run yet)" in verdict.reason
    assert "rnn: test loss >= 0.15 (every seed) at distance 39: 0.12" in verdict.reason


def test_missing_seeds_leave_a_check_not_run(pipeline_root):
    outcome = dict(REPRODUCED)
    outcome[("lstm", 39)] = [GOOD, GOOD, None]
    _, verdict = verdict_of(pipeline_root, outcome)
    assert verdict.verdict == "not run"
    assert verdict.reason.startswith("1 of 4 checks lack a finished run of some seed")
    cell = next(c for c in verdict.checks if c.outcome == "not run")
    assert (cell.distance, cell.seeds, cell.planned) == (39, (0, 1), 3)
    assert math.isnan(cell.measured)


def test_a_diverged_run_counts_as_the_worst_value(pipeline_root):
    outcome = dict(REPRODUCED)
    outcome[("lstm", 19)] = [GOOD, ("diverged", None, None), ("diverged", None, None)]
    _, verdict = verdict_of(pipeline_root, outcome)
    cell = verdict.checks[0]
    assert cell.values == (0.004, math.inf, math.inf) and cell.outcome == "fails"
    assert number(cell.measured, "test_loss") == "not finite"
    assert number(math.inf, "steps_to_solve") == "unsolved"


def test_stale_result_files_do_not_count(pipeline_root):
    exp, _ = verdict_of(pipeline_root, REPRODUCED)
    other = changed(lambda s: s.update(training={"batch_size": 10}))
    exp = config.load(write_experiment(pipeline_root / "experiments", "claimed", other))
    verdict = judge(exp, planned(exp)[0])  # every result file is from batch 20
    assert verdict.verdict == "not run" and all(c.seeds == () for c in verdict.checks)


def test_the_page_has_one_row_per_claim_with_its_verdict(pipeline_root):
    exp, _ = verdict_of(
        pipeline_root, REPRODUCED, verified=False, unverified=["the numbers"], budget="a tenth",
        caveats=["A longer run beat the baseline."],
    )  # fmt: skip
    folder = pipeline_root / "experiments"
    empty = write_experiment(folder, "empty", CLAIMED)
    claims = replication.load_claims([folder / "claimed.yaml", empty])
    page = replication.write_page(
        claims, {"empty": "estimated 9.6 h on this machine, over the budget"}
    )
    md = (page.parent / "report.md").read_text()
    rows = {line.split("|")[1].strip(): line for line in md.splitlines() if line.startswith("| ")}
    assert (
        "reproduced (published claim unverified) (on a smaller budget than the paper's: a tenth)"
        in rows["claimed"]
    )
    assert "lstm at 19: 0.004 (seeds 0: 0.004, 1: 0.004, 2: 0.004)" in rows["claimed"]
    assert "| none yet |" in rows["claimed"]  # no report folder for it was written
    assert "not run: estimated 9.6 h on this machine, over the budget" in rows["empty"]
    assert "smaller budget" not in rows["empty"]  # nothing ran, on any budget
    assert "known against it, outside the checks: A longer run beat" in rows["claimed"]
    assert "known against it" not in rows["empty"]
    assert "1 reproduced, 0 not reproduced, 1 not run" in md
    assert "Published claim UNVERIFIED" in md and "- the numbers" in md
    html = page.read_text()
    assert html.count("<tr>") >= 3 and "claimed: Someone (2016)" in html


# ---- parts: the claim's experiment with some settings changed -----------------------------


def parted(tmp_path, **parts):
    path = write_experiment(tmp_path, "claimed", changed(lambda s: claim(s).update(parts=parts)))
    return path, replication.load_claims([path])


def test_a_part_is_the_claims_experiment_with_its_settings_and_the_claims_checks(tmp_path):
    path, items = parted(tmp_path, short=PART)
    assert list(items) == ["claimed", "claimed.short"]  # each claim, then its parts
    whole, part = items["claimed"].exp, items["claimed.short"]
    assert part.part_of == "claimed" and part.part == whole.claim.parts["short"]
    exp = part.exp
    assert exp.tasks[0].distances == [19] and exp.training.max_steps == 500
    assert exp.models == whole.models and exp.seeds == whole.seeds
    # the claim's own checks and observations, at the part's distance; no parts of its own
    assert exp.claim.expect == whole.claim.expect and exp.claim.observe == whole.claim.observe
    assert exp.claim.parts == {} and exp.claim.budget == "500 updates"
    assert exp.claim.model_dump(exclude={"parts", "budget"}) == whole.claim.model_dump(
        exclude={"parts", "budget"}
    )
    runs = evaluation_runs(exp)
    assert {r.experiment for r in runs} == {"claimed.short"} and len(runs) == 6  # 2 models x 3
    assert paths.results_dir(exp.name) != paths.results_dir(whole.name)  # outputs of its own


def test_a_part_keeps_the_checks_of_what_it_runs_and_no_other(tmp_path):
    def edit(s):
        claim(s)["expect"][0]["distances"] = [39]  # the lstm's check: only at 39
        claim(s)["expect"][1]["distances"] = [19, 39]
        claim(s)["parts"] = {
            "rnn": {**PART, "settings": {"models": [{"name": "rnn", "cell": "rnn"}]}},
            "short": PART,
        }

    path = write_experiment(tmp_path, "claimed", changed(edit))
    items = replication.load_claims([path])
    rnn = items["claimed.rnn"].exp.claim
    assert [e.model for e in rnn.expect] == ["rnn"] and rnn.observe == []  # lstm's: gone
    short = items["claimed.short"].exp.claim
    assert [(e.model, e.distances) for e in short.expect] == [("rnn", [19])]


BAD_PARTS = [
    (
        "a setting of the claim block",
        {"claim.expect": []},
        "claim.parts.short: settings: a part keeps its claim's block",
    ),
    (
        "a path the file cannot hold",
        {"seeds[5]": 1},
        "claim.parts.short: seeds[5]=1: seeds has 3 items in the base file",
    ),
    ("a malformed path", {"tasks[0]..distances": [19]}, "claim.parts.short: tasks[0]..distances"),
    (
        "an invalid value",
        {"tasks[0].distances": [0]},
        "claim.parts.short: tasks[0].distances[0]: input should be greater than or equal to 1",
    ),
    (
        "no check left",
        {"models": [{"name": "gru", "cell": "gru"}]},
        "claim.parts.short: settings: none of the claim's checks concerns",
    ),
]


@pytest.mark.parametrize(
    ("settings", "message"), [c[1:] for c in BAD_PARTS], ids=[c[0] for c in BAD_PARTS]
)
def test_a_bad_part_is_refused_naming_the_file_and_the_part(tmp_path, settings, message):
    with pytest.raises(ConfigError) as caught:
        parted(tmp_path, short={**PART, "settings": settings})
    text = str(caught.value)
    assert text.startswith(f"{tmp_path / 'claimed.yaml'}: ") and message in text, text


def test_a_parts_row_and_section_follow_its_claims_with_a_verdict_of_its_own(pipeline_root):
    folder = pipeline_root / "experiments"
    path, items = parted(folder, short=PART)
    write_results(items["claimed"].exp, REPRODUCED)  # the whole claim ran; its part did not
    page = replication.write_page(items, {"claimed.short": "its claim claimed ran in this call"})
    md = (page.parent / "report.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("| claimed")]
    assert [row.split("|")[1].strip() for row in rows] == ["claimed", "claimed.short"]
    assert "| part of claimed |" in rows[1]
    assert "not run: its claim claimed ran in this call" in rows[1]
    assert "on a smaller budget" not in rows[1]  # nothing ran, on any budget
    assert "1 published claim(s)" in md and "1 reproduced, 0 not reproduced, 0 not run." in md
    assert "1 part(s) of them" in md and "0 reproduced, 0 not reproduced, 1 not run." in md
    assert "## claimed.short: a part of claimed" in md
    assert "What its verdict can show of the claim: the claim at distance 19" in md
    assert "What it cannot show: the claim at distance 39" in md
    assert "tasks[0].distances = [19]; training.max_steps = 500" in md
