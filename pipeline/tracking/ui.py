"""Finding the pipeline's runs in the MLflow UI: the address of each experiment's runs table,
and a saved view of its charts that opens on the learning curves that matter here rather than
on every metric in alphabetical order.
"""

from __future__ import annotations

import json
import time
from urllib.parse import urlsplit

from pipeline import paths
from pipeline.tracking.names import PARENT_RUN, RUN_NAME, STUDY, VIEW_TAG
from pipeline.tracking.store import connect, local_store_missing, retry

# the address of `make mlflow-ui`, for a store that is not a server itself
UI_ADDRESS = "http://127.0.0.1:5000"


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
    A local store that does not exist yet is left uncreated.
    """
    uri = uri or paths.tracking_uri()
    if local_store_missing(uri):
        return [f"no tracking store yet ({uri}): `make run-all` trains the default experiment"]
    c = connect(uri)
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
# (the UI shows sections in the order of their names, and a prefix the view does not list gets a
# section of its own, unfolded: every metric prefix a run logs is listed here)
SECTIONS = (
    ("probe", True),
    ("mech", True),  # the recurrent matrix's spectrum and the gates' time constants
    ("probe_curve/init", True),
    ("probe_curve/final", True),
    ("extrapolation", False),  # one point each: the model scored at other distances
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
        "orderByKey": f"tags.`{RUN_NAME}`",
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
                # the UI orders sections by name, whatever the view's order: this one first
                "name": "At a glance: learning and the gradient at the key step",
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
