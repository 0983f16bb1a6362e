"""Where the pipeline puts things in MLflow, and how its users find them there.

The pipeline's experiment ``<name>`` (``experiments/<name>.yaml``) is the MLflow experiment
``long-gap/<name>`` (``mlflow_name``), tagged as a model-training experiment. Every run of a sweep
nests (MLflow's tag ``mlflow.parentRunId``) under the sweep's parent run, one per experiment and
code version (``open_parent``); a tuning phase's runs nest one level deeper, under its own parent.
``ui_url`` gives the address that opens an experiment's runs in the MLflow UI, and
``save_chart_view`` a saved view of its charts that opens on the learning curves that matter here
rather than on every metric in alphabetical order.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

from pipeline import paths
from pipeline.tracking import (
    CODE_VERSION,
    CREATION,
    RUN_KEY,
    connect,
    is_local_sqlite,
    resends,
    retry,
    search,
)

# the report's summary run of earlier versions (the report now goes to the sweep's parent run)
SUMMARY_TAG = "summary"
STUDY = "long-gap"  # the prefix of every MLflow experiment name of this pipeline
# a parent run's tag: "sweep" (every run of a sweep under it) or "tuning" (a tuning phase's runs)
ROLE, SWEEP, TUNING = "role", "sweep", "tuning"
# MLflow's own tag names (mlflow.utils.mlflow_tags), written as text: no MLflow import here
PARENT_RUN = "mlflow.parentRunId"
NOTE = "mlflow.note.content"  # a run's or experiment's description (Markdown) in the UI
EXPERIMENT_KIND, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"
# the address of `make mlflow-ui`, for a store that is not a server itself
UI_ADDRESS = "http://127.0.0.1:5000"
VIEW_TAG = "mlflow.sharedViewState."  # an experiment tag holding one saved view of the UI


def mlflow_name(experiment: str) -> str:
    """The MLflow experiment of the pipeline's experiment ``experiment``: ``long-gap/default``
    says what it is, where a plain ``default`` sat beside MLflow's own ``Default``.
    """
    return f"{STUDY}/{experiment}"


def find_experiment(c, experiment: str):
    """The MLflow experiment (entity) of ``experiment``, deleted or not, or None.

    One that an earlier version of the pipeline created under the plain name (its runs carry
    ``run_key``) is renamed to ``mlflow_name`` first: same id, runs and artifacts.
    """
    name = mlflow_name(experiment)
    found = retry(lambda: c.get_experiment_by_name(name))
    if found is not None:
        return found
    old = retry(lambda: c.get_experiment_by_name(experiment))
    if old is None or old.lifecycle_stage == "deleted":
        return None
    ours = f"tags.{RUN_KEY} LIKE '%'"
    if not retry(lambda: c.search_runs([old.experiment_id], ours, max_results=1)):
        return None  # someone else's experiment of that name: left alone
    with contextlib.suppress(Exception):  # renamed meanwhile by another process
        retry(lambda: c.rename_experiment(old.experiment_id, name))
    return retry(lambda: c.get_experiment_by_name(name))


def experiment_id(c, experiment: str) -> str:
    """The id of ``experiment``'s MLflow experiment (``find_experiment``): created if missing
    (artifacts under mlruns/ when local), restored if deleted, and tagged as a model-training
    experiment (``mlflow.experimentKind``; MLflow 3.17's UI chooses its mode by the address
    instead: ``ui_url``).
    """
    name = mlflow_name(experiment)
    found = find_experiment(c, experiment)
    if found is None:
        location = paths.artifact_root() + f"/{name}" if is_local_sqlite(c.tracking_uri) else None
        tags = {EXPERIMENT_KIND: MODEL_TRAINING, NOTE: _description(experiment)}
        try:
            return retry(lambda: c.create_experiment(name, artifact_location=location, tags=tags))
        except Exception:  # created meanwhile by another process
            found = retry(lambda: c.get_experiment_by_name(name))
    if found.lifecycle_stage == "deleted":
        retry(lambda: c.restore_experiment(found.experiment_id))
    if found.tags.get(EXPERIMENT_KIND) != MODEL_TRAINING:
        retry(lambda: c.set_experiment_tag(found.experiment_id, EXPERIMENT_KIND, MODEL_TRAINING))
    if NOTE not in found.tags:
        retry(lambda: c.set_experiment_tag(found.experiment_id, NOTE, _description(experiment)))
    return found.experiment_id


def _description(experiment: str) -> str:
    return (
        f"Long-term dependencies in recurrent networks: the runs of `experiments/{experiment}"
        ".yaml`. Each sweep is one parent run with its runs nested under it (a tuning phase "
        "under its own parent); the report is attached to the sweep's parent run."
    )


def ui_address(uri: str) -> str:
    """Where the MLflow UI of the store ``uri`` is: the tracking server's own address (without
    the credentials a tracking URI may carry: a browser asks for them), else that of ``make
    mlflow-ui``.
    """
    if not uri.startswith(("http://", "https://")):
        return UI_ADDRESS
    parts = urlsplit(uri.rstrip("/"))
    return parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1]).geturl()


def ui_url(exp_id: str, address: str, view: str | None = None) -> str:
    """The address that opens the experiment's runs table in the MLflow UI served at
    ``address`` (with ``view``: that saved view of its charts).

    MLflow 3.17's UI chooses between its GenAI and model-training pages by the address's
    ``workflowType`` (then by the browser's last choice, GenAI at first), not by the
    experiment's ``mlflow.experimentKind``: a bare ``#/experiments/<id>`` opens a GenAI overview.
    """
    query = f"viewStateShareKey={view}&compareRunsMode=CHART&" if view else ""
    return f"{address.rstrip('/')}/#/experiments/{exp_id}/runs?{query}workflowType=machine_learning"


def ui_links(address: str, uri: str | None = None) -> list[str]:
    """Lines giving the address of each of the pipeline's experiments in the store ``uri`` as the
    MLflow UI at ``address`` shows it: its runs table, and its saved chart view where it has one.
    Experiments of experiments/*.yaml still under their old plain name are renamed
    (``find_experiment``). A local store that does not exist yet is left uncreated.
    """
    uri = uri or paths.tracking_uri()
    if is_local_sqlite(uri) and not Path(uri.removeprefix("sqlite:///")).exists():
        return [f"no tracking store yet ({uri}): `make run-all` trains the default experiment"]
    c = connect(uri)
    for file in paths.experiments_dir().glob("*.yaml"):
        find_experiment(c, file.stem)
    ours = [
        e
        for e in retry(lambda: c.search_experiments(filter_string=f"name LIKE '{STUDY}/%'"))
        if e.lifecycle_stage == "active"
    ]
    if not ours:
        return [f"no experiment of this pipeline in {uri} yet: `make run-all` trains one"]
    lines = ["Open an experiment on its runs (model-training mode):"]
    width = max(len(e.name) for e in ours)
    for e in sorted(ours, key=lambda e: e.name):
        lines.append(f"  {e.name:<{width}}  {ui_url(e.experiment_id, address)}")
        views = [k.removeprefix(VIEW_TAG) for k in e.tags if k.startswith(VIEW_TAG)]
        for view in views:
            lines.append(f"  {'':<{width}}  charts: {ui_url(e.experiment_id, address, view)}")
    return lines


def open_parent(
    c, exp_id: str, role: str, name: str, tags: dict[str, str], parent: str | None = None
) -> str:
    """The id of the sweep's parent run of ``role`` (``SWEEP``, or ``TUNING`` nested under the
    sweep's run ``parent``) for the code version ``tags[CODE_VERSION]``, marked RUNNING: the one
    an earlier sweep of the same code left (finished, interrupted or failed), so a resumed or
    repeated sweep keeps its runs together, else a new one. ``tags`` (the sweep's source tags,
    its description) are written on it either way.
    """
    query = f"tags.{ROLE} = '{role}' and tags.{CODE_VERSION} = '{tags[CODE_VERSION]}'"
    found = [r for r in search(c, exp_id, query) if r.data.tags.get(PARENT_RUN) == parent]
    own = {ROLE: role, **tags, **({PARENT_RUN: parent} if parent else {})}
    if not found:
        return create_run(c, exp_id, name, own).info.run_id
    run_id = min(found, key=lambda r: r.info.start_time or 0).info.run_id
    _set_tags(c, run_id, own)
    retry(lambda: c.update_run(run_id, status="RUNNING"))
    return run_id


def create_run(c, exp_id: str, name: str, tags: dict[str, str]):
    """A new run ``name`` with ``tags`` (RUNNING) and a ``CREATION`` token; returns it. A second
    run that a retried request created is deleted (``drop_duplicates``).
    """
    token = uuid.uuid4().hex
    run = retry(lambda: c.create_run(exp_id, run_name=name, tags={**tags, CREATION: token}))
    drop_duplicates(c, exp_id, run)
    return run


def drop_duplicates(c, exp_id: str, run) -> None:
    """Delete the runs other than ``run`` that hold its ``CREATION`` token: a retried creation
    request made them, and nothing was logged to them. Each is ended KILLED and described
    before it goes (to the deleted runs, which MLflow keeps until ``mlflow gc``). A reply lost
    in time usually lands its duplicate before the retry's; a request held up past its timeout
    may land it later (``train`` asks again at a run's end). Only a server resends (``resends``).
    """
    if not resends(c):
        return
    token = run.data.tags[CREATION]
    others = [
        r
        for r in search(c, exp_id, f"tags.{CREATION} = '{token}'")
        if r.info.run_id != run.info.run_id
    ]
    note = f"a duplicate of run {run.info.run_id}: a retried request created it twice"
    for other in others:
        run_id = other.info.run_id
        retry(lambda i=run_id: c.set_tag(i, NOTE, note))
        retry(lambda i=run_id: c.set_terminated(i, "KILLED"))
        retry(lambda i=run_id: c.delete_run(i))


def close_run(c, run_id: str, status: str, tags: dict[str, str] | None = None) -> None:
    """End ``run_id`` (a parent run) with ``status``, writing ``tags`` first."""
    if tags:
        _set_tags(c, run_id, tags)
    retry(lambda: c.set_terminated(run_id, status))


def _set_tags(c, run_id: str, tags: dict[str, str]) -> None:
    from mlflow.entities import RunTag

    batch = [RunTag(k, v) for k, v in tags.items()]
    retry(lambda: c.log_batch(run_id, tags=batch))


def is_parent(run) -> bool:
    """Whether ``run`` is a sweep's parent run (``open_parent``), not a run of the sweep."""
    return ROLE in run.data.tags


def close_stale_runs(c, exp_id: str) -> list[str]:
    """Mark runs an interruption left RUNNING as KILLED, so the UI shows no phantom live runs:
    the sweep's runs and its parent runs (which the next sweep reopens: ``open_parent``).

    Call only while holding the experiment's sweep lock (no live run can then exist).
    Returns the run keys of the sweep's runs closed.
    """
    stale = search(c, exp_id, "attributes.status = 'RUNNING'")
    for run in stale:
        retry(lambda r=run: c.set_terminated(r.info.run_id, "KILLED"))
    return [r.data.tags.get(RUN_KEY, r.info.run_id) for r in stale if not is_parent(r)]


# ---- the chart view ----------------------------------------------------------------------

CHART_VIEW = "learning-curves"  # the saved view's id (the experiment tag's suffix)
# the charts it opens on, in this order: learning, then the gradient that reaches the key step
CHARTS = (
    "val_accuracy",
    "grad_norm",
    "probe/h_key_share",
    "probe/c_key_share",
    "val_loss",
    "train_loss",
    "train_accuracy",
)


# the chart view's other sections, in order, and whether each opens unfolded
SECTIONS = (
    ("probe", True),
    ("probe_curve/init", True),
    ("probe_curve/final", True),
    ("Model metrics", False),  # the final numbers, one point each
    ("System metrics", False),
)


def chart_view(parent: str) -> dict:
    """The saved view of the experiment's charts: ``CHARTS`` first, in that order (the UI adds
    every other metric after them), drawn for every run nested right under the sweep's parent
    run ``parent`` (its evaluation runs). The UI plots only the runs its table shows, the first
    10 by default, and a saved view cannot expand a parent run: so the view filters the runs,
    sorts them by name (a table sorted otherwise than by time is flat) and shows all of them.
    """
    now = int(time.time() * 1000)
    section = f"{CHART_VIEW}-section"
    charts = [
        {
            "uuid": f"{CHART_VIEW}-{i}",
            "type": "LINE",
            "runsCountToCompare": 10,
            "metricSectionId": section,
            "deleted": False,
            "isGenerated": True,
            "displayName": key,
            "metricKey": key,
            "lineSmoothness": 0,
            "xAxisScaleType": "linear",
            "scaleType": "linear",
            "range": {},
            "xAxisKey": "step",
            "selectedXAxisMetricKey": "",
            "yAxisKey": "metric",
            "yAxisExpressions": [],
            "ignoreOutliers": False,
            "useGlobalXaxisKey": True,
            "useGlobalLineSmoothing": True,
        }
        for i, key in enumerate(CHARTS)
    ]
    state = {
        "searchFilter": f"tags.`{PARENT_RUN}` = '{parent}'",
        # sorted by name, not by start time: the UI nests a table sorted by time, filter or not
        "orderByKey": "tags.`mlflow.runName`",
        "orderByAsc": True,
        "startTime": "ALL",
        "lifecycleFilter": "Active",
        "datasetsFilter": [],
        "modelVersionFilter": "All Runs",
        "runsHiddenMode": "SHOW_ALL",
        "compareRunCharts": charts,
        "compareRunSections": [
            {
                "uuid": section,
                "name": "Learning and the gradient at the key step",
                "display": True,
                "isReordered": True,  # the UI appends other metrics rather than sorting them in
                "deleted": False,
                "isGenerated": False,
            },
            # then the UI's own sections: by name prefix, the final numbers ("Model metrics",
            # a point each, folded), system metrics
            *(
                {
                    "uuid": f"{CHART_VIEW}-{name}",
                    "name": name,
                    "display": shown,
                    "isReordered": False,
                    "deleted": False,
                    "isGenerated": True,
                }  # fmt: skip
                for name, shown in SECTIONS
            ),
        ],
        "hideEmptyCharts": True,
        "useGroupedValuesInCharts": True,
        "groupBy": None,
        "groupsExpanded": {},
        "globalLineChartConfig": {"xAxisKey": "step", "lineSmoothness": 0},
    }
    return {"name": "Learning curves", "createdAt": now, "updatedAt": now,
            "state": json.dumps(state)}  # fmt: skip


def save_chart_view(client, exp_id: str, parent: str) -> None:
    """Write ``chart_view(parent)`` as the experiment's saved view ``CHART_VIEW`` (MLflow's
    experiment tag ``mlflow.sharedViewState.<id>``): listed under Views, and opened by
    ``ui_url(exp_id, view=CHART_VIEW)``.
    """
    value = json.dumps(chart_view(parent))
    key = VIEW_TAG + CHART_VIEW
    retry(lambda: client.set_experiment_tag(exp_id, key, value))
