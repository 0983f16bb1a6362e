"""The MLflow UI as a user sees it, in a real browser: ``make mlflow-ui`` on a free loopback port
serves a reported copy of the tiny sweep, and headless Chromium (Debian's ``chromium`` package,
driven by Playwright; no browser is downloaded) opens the address the pipeline prints.

One server and one browser for the module (about half a minute on 2 cores). Skipped, saying
why, where Chromium or Playwright is missing; ``.ci/run`` installs Chromium, so CI runs it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline import paths
from pipeline.tracking import names, store, sweep_runs, ui
from tests.team import command_lines, free_port, stop, wait_healthy
from tests.test_report import copy_root, mlflow_client, write_report

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
if not Path(CHROMIUM).is_file():
    pytest.skip(
        f"no Chromium at {CHROMIUM}: install Debian's package (apt-get install chromium; .ci/run "
        "does) or set CHROMIUM to its path",
        allow_module_level=True,
    )
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright is missing: install the dev extra"
)

pytestmark = pytest.mark.slow
# Chromium in a container: no sandbox (no user namespaces), no GPU, no small /dev/shm
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
# MLflow's assistant panel opens itself on a first visit and covers the page
ASSISTANT_SHUT = """
localStorage.setItem('mlflow.assistant.panelOpen_v1', 'false');
localStorage.setItem('mlflow.assistant.fab.autoOpenedOnFirstLoad_v1', 'true');
"""
RUN_NAME = '.ag-row [col-id="attributes.`Run Name`"]'  # a run's name in the runs table
WAIT_MS = 60_000  # a hang detector on 2 busy cores, not a speed claim


@pytest.fixture(scope="module")
def site(tiny_sweep, tmp_path_factory):
    """``make mlflow-ui`` serving a reported copy of the tiny sweep; yields (address, experiment
    id, report folder, what make printed, root).
    """
    source, exp = tiny_sweep
    root = copy_root(source, tmp_path_factory.mktemp("browser") / "root")
    folder = write_report(root, exp)
    port = free_port()
    log = root / "mlflow-ui.log"
    venv = Path(sys.prefix)  # the environment running the tests, never reinstalled here
    env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlruns' / 'mlflow.db'}"}
    with open(log, "w") as out:
        proc = subprocess.Popen(
            ["make", "--no-print-directory", "-o", str(venv / ".installed"), "mlflow-ui",
             f"VENV={venv}", "HOST=127.0.0.1", f"PORT={port}"],
            cwd=paths.SOURCE_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
    address = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(address, proc, log)
        store = env["MLFLOW_TRACKING_URI"]
        on_a_command_line = [line for line in command_lines().values() if store in line]
        exp_id = mlflow_client(root).get_experiment_by_name("long-gap/tiny").experiment_id
        yield address, exp_id, folder, log.read_text(), root, on_a_command_line
    finally:
        stop(proc, grace=10)


@pytest.fixture(scope="module")
def page(site):
    """One headless Chromium page for the module."""
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            context = browser.new_context(viewport={"width": 1600, "height": 1000})
            context.add_init_script(ASSISTANT_SHUT)
            context.set_default_timeout(WAIT_MS)
            yield context.new_page()
        finally:
            browser.close()


def _runs(root: Path) -> tuple:
    """(the sweep's parent run, its runs) in the served store."""
    client = mlflow_client(root)
    exp_id = client.get_experiment_by_name("long-gap/tiny").experiment_id
    everything = store.search(client, exp_id)
    (parent,) = [r for r in everything if sweep_runs.is_parent(r)]
    return parent, [r for r in everything if not sweep_runs.is_parent(r)]


def test_the_store_reaches_the_ui_through_its_environment_not_a_command_line(site):
    """A password in MLFLOW_TRACKING_URI would show in ``ps`` if the URI were an argument."""
    *_, on_a_command_line = site
    assert on_a_command_line == []


def test_make_mlflow_ui_prints_the_address_that_opens_the_runs_table(site, page):
    address, exp_id, _, printed, root, _ = site
    link = ui.ui_url(exp_id, address)
    assert f"long-gap/tiny  {link}" in printed
    parent, _ = _runs(root)
    page.goto(link)
    page.locator(RUN_NAME, has_text=parent.info.run_name).first.wait_for()
    assert "workflowType=machine_learning" in page.url
    assert page.get_by_role("heading", name="Runs").is_visible()  # not the GenAI overview


def test_the_sweeps_parent_run_expands_into_its_runs(site, page):
    address, exp_id, _, _, root, _ = site
    parent, runs = _runs(root)
    page.goto(ui.ui_url(exp_id, address))
    row = page.locator(RUN_NAME, has_text=parent.info.run_name).first
    row.locator("button").first.click()  # the expander of a parent run
    for run in runs:
        page.locator(RUN_NAME, has_text=run.info.run_name).first.wait_for()
    assert page.locator(RUN_NAME).count() == len(runs) + 1


def test_a_runs_page_shows_its_source_commit_datasets_description_and_model(site, page):
    address, exp_id, _, _, root, _ = site
    _, runs = _runs(root)
    run = runs[0]
    page.goto(
        f"{address}/#/experiments/{exp_id}/runs/{run.info.run_id}?workflowType=machine_learning"
    )
    source = page.locator('[data-testid="key-value-Source"]').first
    source.wait_for()
    assert run.data.tags[names.GIT_COMMIT][:7] in source.inner_text()
    note = page.locator('[data-testid="note-editor-preview-content"]').first
    assert note.inner_text().strip() == run.data.tags[names.NOTE]
    digest = next(i.dataset.digest for i in run.inputs.dataset_inputs)
    page.get_by_text(f"({digest})").first.wait_for()  # "recall/d6_s0 (digest) Training"
    page.get_by_text("Logged models (1)").first.wait_for()
    assert page.get_by_text(run.data.tags[names.USER], exact=True).first.is_visible()


def test_the_chart_view_opens_on_the_learning_curves(site, page):
    address, exp_id, _, _, root, _ = site
    _, runs = _runs(root)
    page.goto(ui.ui_url(exp_id, address, ui.CHART_VIEW))
    page.get_by_text(f"{len(runs)} matching runs").first.wait_for()  # the sweep's runs, flat
    charts = page.locator('[data-testid="experiment-view-compare-runs-chart-area"]').first
    charts.get_by_text("val_accuracy", exact=True).first.wait_for()
    text = charts.inner_text()
    assert text.index("val_accuracy") < text.index("grad_norm") < text.index("train_loss")


def test_the_report_opened_from_disk_shows_every_figure(site, page):
    _, _, folder, _, _, _ = site
    page.goto((folder / "report.html").as_uri())
    images = page.locator("img")
    images.first.wait_for()
    drawn = page.evaluate(
        "() => [...document.images].map(i => i.complete && i.naturalWidth * i.naturalHeight > 0)"
    )
    assert drawn and all(drawn), drawn  # a broken image has no natural size
    assert len(drawn) == len(list((folder / "figures").glob("*.png")))
