"""The report stage on a small real sweep (``tiny_sweep``): the files it writes, their agreement
with MLflow, the figures, the page, the findings, and runs that are not clean (no probe data,
diverged, failed, missing), down to an experiment with no finished run at all.
"""

from __future__ import annotations

import ast
import base64
import hashlib
import importlib
import io
import json
import re
import shutil
import sqlite3
import urllib.parse
from html.parser import HTMLParser
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from pipeline import report
from pipeline.config import Experiment
from pipeline.config.runs import evaluation_runs
from pipeline.errors import ReportError
from pipeline.report import reading
from pipeline.report.results import NO_PROBE, num
from pipeline.tracking import names, store, sweep_runs


def copy_root(source: Path, target: Path) -> Path:
    """Copy a pipeline root; returns the copy, fully independent of ``source``.

    The MLflow store records absolute artifact locations, so they are pointed at the copy:
    otherwise the report's summary run would write its artifacts into the shared original.
    """
    shutil.copytree(source, target)
    old = (source.resolve() / "mlruns" / "artifacts").as_uri()
    new = (target.resolve() / "mlruns" / "artifacts").as_uri()
    with sqlite3.connect(target / "mlruns" / "mlflow.db") as db:
        db.execute(
            "UPDATE experiments SET artifact_location = replace(artifact_location, ?, ?)",
            (old, new),
        )
        db.execute("UPDATE runs SET artifact_uri = replace(artifact_uri, ?, ?)", (old, new))
    # a copy's runs keep their ids, and MLflow caches each run's artifact location by run id for
    # the process: forget the locations, or a copy's artifacts go to the copy made before it
    from mlflow.tracking._tracking_service import utils

    utils._artifact_repos_cache.clear()
    return target


def write_report(root: Path, exp: Experiment) -> Path:
    """Run the report stage against ``root``; returns the report folder."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PIPELINE_ROOT", str(root))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        page = report.run(exp, experiment_file=root / "experiments" / f"{exp.name}.yaml")
    return page.parent


def result_path(root: Path, exp: Experiment, key: str) -> Path:
    return root / "results" / exp.name / f"{key}.json"


def mlflow_client(root: Path):
    return store.client(f"sqlite:///{root / 'mlruns' / 'mlflow.db'}")


class Page(HTMLParser):
    """What a test needs from the page: image sources, links, figure captions, list items."""

    def __init__(self) -> None:
        super().__init__()
        self.images, self.links, self.captions, self.items = [], [], 0, []
        self._item: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs["src"])
        elif tag == "a":
            self.links.append(attrs["href"])
        elif tag == "figcaption":
            self.captions += 1
        elif tag == "li":
            self._item = []

    def handle_data(self, data):
        if self._item is not None:
            self._item.append(data)

    def handle_endtag(self, tag):
        if tag == "li" and self._item is not None:
            self.items.append("".join(self._item))
            self._item = None


def findings_of(folder: Path) -> str:
    """The Results section of report.md (its subsections included)."""
    text = (folder / "report.md").read_text()
    return text.split("\n## Results", 1)[1].split("\n## ", 1)[0]


def appendix_of(folder: Path) -> str:
    text = (folder / "report.md").read_text()
    return text.split("\n## Appendix", 1)[1]


# the figures of the tiny sweep (no tuning, no adding task, one task)
FIGURES = {
    "horizons", "samples", "scaling", "accuracy_vs_distance", "key_share_vs_distance",
    "probe_over_training_recall", "mechanism_over_training_recall", "extrapolation",
    "gradient_vs_k_recall", "grad_norm_training", "steps_to_solve", "learning_curves",
}  # fmt: skip


@pytest.fixture(scope="module")
def clean(tiny_sweep, tmp_path_factory):
    """(root, exp, report folder) for a copy of the tiny sweep, reported once."""
    source, exp = tiny_sweep
    root = copy_root(source, tmp_path_factory.mktemp("report") / "root")
    return root, exp, write_report(root, exp)


@pytest.fixture(scope="module")
def damaged(tiny_sweep, tmp_path_factory):
    """A copy of the tiny sweep with one run of each kind of trouble, reported; returns (root,
    exp, folder, {kind: run key}).
    """
    source, exp = tiny_sweep
    root = copy_root(source, tmp_path_factory.mktemp("damaged") / "root")
    keys = [spec.key for spec in evaluation_runs(exp)]
    kinds = {"unprobed": keys[0], "diverged": keys[1], "failed": keys[2], "missing": keys[3]}

    unprobed = result_path(root, exp, kinds["unprobed"])  # a run whose probes gave no number
    result = json.loads(unprobed.read_text())
    unprobed.write_text(json.dumps(result | {"probe_init": {}, "probe_final": {}}))

    diverged = result_path(root, exp, kinds["diverged"])
    result = json.loads(diverged.read_text())
    result |= {"status": "diverged", "solved": False, "steps_to_solve": None, "diverged_step": 7}
    diverged.write_text(json.dumps(result))

    result_path(root, exp, kinds["missing"]).unlink()
    result_path(root, exp, kinds["failed"]).unlink()
    client = mlflow_client(root)
    exp_id = client.get_experiment_by_name(names.mlflow_name(exp.name)).experiment_id
    attempt = client.create_run(exp_id, tags={names.RUN_KEY: kinds["failed"]})
    client.set_tag(attempt.info.run_id, "error", "RuntimeError('out of memory')")
    client.set_terminated(attempt.info.run_id, "FAILED")
    return root, exp, write_report(root, exp), kinds


# ---- a clean sweep ------------------------------------------------------------------------


def test_every_file_is_written(clean):
    _, _, folder = clean
    for name in ("report.html", "report.md", "results.csv", "probe.csv", "abstract.txt"):
        assert (folder / name).stat().st_size > 0, name
    pngs = sorted((folder / "figures").glob("*.png"))
    assert {p.stem for p in pngs} == FIGURES
    for png in pngs:
        with Image.open(png) as image:
            image.verify()
            assert image.format == "PNG"
    assert not list(folder.parent.glob(f".{folder.name}.*")), "staging folders left behind"


def test_results_have_one_row_per_run_and_match_mlflow(clean):
    root, exp, folder = clean
    results = pd.read_csv(folder / "results.csv")
    assert sorted(results["run_key"]) == sorted(spec.key for spec in evaluation_runs(exp))
    assert set(results["status"]) <= {"solved", "unsolved", "diverged"}
    client = mlflow_client(root)
    for row in results.itertuples(index=False):
        run = client.get_run(row.run_id)
        assert run.data.tags[names.RUN_KEY] == row.run_key
        assert run.data.tags["status"] == row.status
        assert run.data.metrics["test_accuracy"] == pytest.approx(row.test_accuracy, rel=1e-12)
        assert run.data.metrics["steps"] == row.steps
        assert run.data.metrics["probe_init_h_key_share"] == pytest.approx(
            row.probe_init_h_key_share, rel=1e-12
        )


def test_probe_csv_holds_each_runs_curves(clean):
    _, exp, folder = clean
    curves = pd.read_csv(folder / "probe.csv")
    results = pd.read_csv(folder / "results.csv")
    assert set(curves["run_id"]) == set(results["run_id"])
    assert {"init", "final"} <= set(curves["phase"])
    for run in results.itertuples(index=False):  # the key step is on every curve
        mine = curves[(curves["run_id"] == run.run_id) & (curves["phase"] == "init")]
        assert run.distance in set(mine["k"])
        assert (mine["h_median"] > 0).all()
        assert mine["c_median"].notna().all() == (run.cell == "lstm")


def test_the_readout_holds_each_runs_probe_summary_mechanism_and_extrapolation(
    tiny_sweep, monkeypatch
):
    root, exp = tiny_sweep  # read only: collect writes nothing
    monkeypatch.setenv("PIPELINE_ROOT", str(root))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with reading.quiet_artifacts():
        sweep = reading.collect(exp, store.client())
    summary, runs = sweep.probe_summary, sweep.finished
    assert set(summary["run_id"]) == set(runs["run_id"])
    for run in runs.itertuples(index=False):
        mine = summary[summary["run_id"] == run.run_id]
        assert mine["phase"].iloc[0] == "init" and mine["phase"].iloc[-1] == "final"
        block = "W" if run.cell == "rnn" else "W_f"
        result = json.loads(result_path(root, exp, run.run_key).read_text())
        assert mine[f"{block}_radius"].iloc[-1] == pytest.approx(
            result["mech_final"][f"{block}_radius"]
        )
        assert getattr(run, f"mech_final_{block}_radius") == result["mech_final"][f"{block}_radius"]
        assert mine["h_key_share"].iloc[0] == pytest.approx(result["probe_init"]["h_key_share"])
    for factor in ("0.5", "2", "4"):
        accuracy = runs[f"extrapolation_accuracy_x{factor}"]
        assert accuracy.between(0, 1).all() and len(accuracy) == len(runs)
        assert (runs[f"extrapolation_distance_x{factor}"] == runs["distance"] * float(factor)).all()


def test_the_training_and_extrapolation_figures_draw_from_a_real_sweep(tiny_sweep, monkeypatch):
    from pipeline.report import extrapolation, over_training

    root, exp = tiny_sweep  # read only
    monkeypatch.setenv("PIPELINE_ROOT", str(root))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    with reading.quiet_artifacts():
        sweep = reading.collect(exp, store.client())
    assert over_training.plot_probe_over_training(sweep, "recall") is not None
    assert over_training.plot_mechanism_over_training(sweep, "recall") is not None
    assert extrapolation.plot_extrapolation(sweep) is not None
    table = extrapolation.extrapolation_table(sweep)
    assert len(table) == len(exp.models) * len(exp.tasks[0].distances)
    assert (table["n"] == len(exp.seeds)).all()
    for factor in ("0.5", "1", "2", "4"):
        assert table[f"accuracy_x{factor}"].between(0, 1).all()
    assert (table["distance_x4"] == 4 * table["distance"]).all()


def test_page_parses_and_shows_every_figure(clean):
    _, _, folder = clean
    page = Page()
    page.feed((folder / "report.html").read_text())
    assert len(page.images) == len(list((folder / "figures").glob("*.png")))
    assert page.captions == len(page.images)
    for src in page.images:
        if src.startswith("data:image/png;base64,"):
            data = base64.b64decode(src.split(",", 1)[1])
            with Image.open(io.BytesIO(data)) as image:
                image.verify()
        else:
            assert (folder / src).is_file(), src
    ids = set(re.findall(r' id="([^"]+)"', (folder / "report.html").read_text()))
    for href in page.links:  # a file beside the page, or a section of it
        assert href[1:] in ids if href.startswith("#") else (folder / href).is_file(), href
    markdown = (folder / "report.md").read_text()
    for src in re.findall(r"!\[[^]]*\]\(([^)]+)\)", markdown):
        assert (folder / src).is_file(), src


def test_findings_quote_the_numbers_of_results_csv(clean):
    _, exp, folder = clean
    results = pd.read_csv(folder / "results.csv")
    text = appendix_of(folder)
    for model, mine in results.groupby("model"):
        solved = mine.groupby("distance")["status"].apply(lambda s: (s == "solved").sum())
        n = len(exp.seeds)
        sentence = next(line for line in text.splitlines() if line.startswith(f"{model}: memory"))
        for d, s in solved.items():
            assert f"{d}: {s}/{n}" in sentence, (d, s, sentence)
    line = next(line for line in text.splitlines() if "the key share, the ratio" in line)
    d = int(re.match(r"At distance (\d+)\b", line).group(1))
    assert d in set(results["distance"])
    for model, mine in results[results["distance"] == d].groupby("model"):
        shares = mine["probe_init_h_key_share"]
        expected = f"{num(shares.median())} (range {num(shares.min())} to {num(shares.max())}, n=2)"
        assert f"{expected} for {model}" in line


def test_the_report_opens_with_the_abstract_the_terminal_prints_and_the_answer_figure(clean):
    _, exp, folder = clean
    markdown = (folder / "report.md").read_text()
    sections = re.findall(r"^(#{2,3}) (.+)$", markdown, flags=re.M)
    assert [t for level, t in sections if level == "##"] == [
        "Abstract", "Method", "Results", "Appendix",
    ]  # fmt: skip
    abstract = markdown.split("## Abstract\n\n", 1)[1].split("\n\n", 1)[0]
    printed = (folder / "abstract.txt").read_text()
    assert " ".join(printed.split()).endswith(" ".join(abstract.split()))
    assert abstract.startswith("How long a gap") and "Design:" in abstract
    for model in (m.name for m in exp.models):
        assert f"{model} " in abstract
    after = markdown.split("## Abstract", 1)[1].split("## Method", 1)[0]
    assert "(figures/horizons.png)" in after  # the answer's figure right after it
    assert 100 <= len(abstract.split()) <= 320


def test_the_page_has_a_table_of_contents_linking_every_section(clean):
    _, _, folder = clean
    html = (folder / "report.html").read_text()
    nav = html.split('<nav id="contents">', 1)[1].split("</nav>", 1)[0]
    links = re.findall(r'href="#([^"]+)"', nav)
    ids = re.findall(r'<h[23] id="([^"]+)"', html)
    assert links == ids and len(ids) > 8
    assert "appendix" in ids and "abstract" in ids


def test_every_figure_caption_names_the_data_it_shows(clean):
    _, _, folder = clean
    markdown = (folder / "report.md").read_text()
    captions = dict(re.findall(r"!\[[^]]*\]\(figures/([^.]+)\.png\)\n\n\*(.+)\*", markdown))
    assert set(captions) == FIGURES
    assert "test split" in captions["accuracy_vs_distance"]
    assert "validation split" in captions["learning_curves"]
    assert "training batches" in captions["grad_norm_training"].lower()
    assert "validation sequences" in captions["key_share_vs_distance"]
    assert "separate test split" not in markdown  # the old claim that every number was on test


def test_provenance_names_the_experiment_file_and_runs(clean):
    root, exp, folder = clean
    provenance = (folder / "report.md").read_text().split("## Provenance", 1)[1]
    digest = hashlib.sha256((root / "experiments" / "tiny.yaml").read_bytes()).hexdigest()
    assert f"(sha256 {digest})." in provenance
    assert "before clipping" in provenance
    budget = exp.training.max_steps * exp.training.batch_size
    assert f"{budget:,} sequences" in provenance
    for run_id in pd.read_csv(folder / "results.csv")["run_id"]:
        assert run_id in provenance  # in the table of all runs, which follows


def test_report_goes_to_the_sweeps_parent_run_and_replaces_the_previous_one(clean):
    root, exp, folder = clean
    client = mlflow_client(root)
    exp_id = client.get_experiment_by_name(names.mlflow_name(exp.name)).experiment_id
    (parent,) = [r for r in store.search(client, exp_id) if sweep_runs.is_parent(r)]
    listed = {a.path for a in client.list_artifacts(parent.info.run_id, "report")}
    assert {f"report/{name}" for name in ("report.html", "report.md", "results.csv")} <= listed
    assert parent.info.run_id in (folder / "report.md").read_text()  # named in the provenance
    # what an earlier report left: a figure this one lacks
    artifacts = Path(urllib.parse.urlparse(parent.info.artifact_uri).path)
    (artifacts / "report" / "figures" / "gone.png").write_bytes(b"old")
    write_report(root, exp)
    assert not (artifacts / "report" / "figures" / "gone.png").exists()
    html = (folder / "report.html").read_text()
    assert (artifacts / "report" / "report.html").read_text() == html
    runs = store.search(client, exp_id)
    assert len(runs) == len(evaluation_runs(exp)) + 1  # the runs and their parent, no other
    assert client.get_run(parent.info.run_id).info.status == "FINISHED"


# ---- runs that are not clean ---------------------------------------------------------------


def test_troubled_runs_are_listed_with_their_status(damaged):
    _, exp, folder, kinds = damaged
    results = pd.read_csv(folder / "results.csv").set_index("run_key")
    assert len(results) == len(evaluation_runs(exp))
    assert results.loc[kinds["diverged"], "status"] == "diverged"
    assert results.loc[kinds["failed"], "status"] == "failed"
    assert "out of memory" in results.loc[kinds["failed"], "note"]
    assert results.loc[kinds["missing"], "status"] == "missing"
    assert results.loc[kinds["unprobed"], "status"] in ("solved", "unsolved")
    assert not results.loc[kinds["unprobed"], "probe_data"]
    assert results.loc[kinds["unprobed"], reading.PROBE_COLUMNS].isna().all()

    markdown = (folder / "report.md").read_text()
    problems = markdown.split("## Problem runs", 1)[1].split("\n## ", 1)[0]
    for kind, key in kinds.items():
        assert key in problems, kind
    line = next(row for row in problems.splitlines() if kinds["unprobed"] in row)
    assert NO_PROBE in line
    all_runs = markdown.split("## All runs", 1)[1]
    run_id = results.loc[kinds["unprobed"], "run_id"]
    assert NO_PROBE in next(row for row in all_runs.splitlines() if run_id in row)
    assert "1 diverged" in findings_of(folder)
    assert "1 failed, 1 missing" in findings_of(folder)


def test_troubled_report_still_draws_every_figure(damaged):
    _, _, folder, _ = damaged
    page = Page()
    page.feed((folder / "report.html").read_text())
    assert len(page.images) == len(FIGURES)
    curves = pd.read_csv(folder / "probe.csv")
    assert len(set(curves["run_key"])) == 8 - 3  # no curves: unprobed, failed, missing


def test_no_finished_runs_is_an_error(tiny_sweep, tmp_path):
    source, exp = tiny_sweep
    root = copy_root(source, tmp_path / "root")
    shutil.rmtree(root / "results")
    with pytest.raises(ReportError, match="no finished runs"):
        write_report(root, exp)
    assert not (root / "reports").exists() or not any((root / "reports").iterdir())


def test_stale_results_do_not_count_as_finished(tiny_sweep, tmp_path):
    source, exp = tiny_sweep
    root = copy_root(source, tmp_path / "root")
    for path in (root / "results").rglob("*_s*.json"):
        result = json.loads(path.read_text())
        path.write_text(json.dumps(result | {names.CONFIG_HASH: "another"}))
    with pytest.raises(ReportError, match="no finished runs"):
        write_report(root, exp)


def test_deleted_experiment_is_an_error(tiny_sweep, tmp_path):
    source, exp = tiny_sweep
    root = copy_root(source, tmp_path / "root")
    client = mlflow_client(root)
    client.delete_experiment(
        client.get_experiment_by_name(names.mlflow_name(exp.name)).experiment_id
    )
    with pytest.raises(ReportError, match="no MLflow experiment"):
        write_report(root, exp)
    assert not (root / "reports").exists()


def imports_of(module) -> set[str]:
    """Every module name ``module``'s source imports (``a.b`` and ``a.b.name`` for ``from``)."""
    imported = set()
    for node in ast.walk(ast.parse(Path(module.__file__).read_text())):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return imported


REPORT_MODULES = sorted(
    p.stem for p in Path(report.__file__).parent.glob("*.py") if p.stem != "__init__"
)


@pytest.mark.parametrize("name", ["__init__", *REPORT_MODULES])
def test_report_reads_results_never_training_code(name):
    module = importlib.import_module("pipeline.report" + ("" if name == "__init__" else f".{name}"))
    imported = imports_of(module)
    training = (
        "torch", "pipeline.train", "pipeline.models", "pipeline.probe", "pipeline.mechanism",
        "pipeline.sweep", "pipeline.data",
    )  # fmt: skip
    for found in imported:
        assert not any(found == t or found.startswith(f"{t}.") for t in training), found
    assert any(found.startswith("pipeline.") for found in imported)  # the check sees imports
