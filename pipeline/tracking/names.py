"""Every name the pipeline writes to MLflow or reads back from it: tags, metric prefixes,
artifact files, the experiment's name. MLflow's own tag names are written as text here, so that
nothing needs MLflow to know them.

A run's params are its settings under their config field names (``RunSpec.params``): the field
``distance`` is the param ``distance``, the result column ``distance`` and the plot label.
"""

from __future__ import annotations

# ---- the pipeline's own tags -------------------------------------------------------------
RUN_KEY = "run_key"  # recall/lstm_d20_s1: a run's identity within its experiment
CONFIG_HASH = "config_hash"  # the hash of every setting that decides the run's outcome
CODE_VERSION = "code_version"  # the hash of the code that decides it (stages.code_version)
CODE_COMMIT = "code_commit"  # the git commit, "+dirty" for local edits of pipeline/
STATUS = "status"  # solved, unsolved or diverged
ERROR = "error"  # a failed run's error
# a token per creation of a run or logged model: MLflow's client sends a request again when its
# reply was lost (a server that died after it wrote), and the second arrival creates a second
# one; every other holder of the token is such a duplicate
CREATION = "creation"
# a parent run's tag: "sweep" (every run of a sweep under it) or "tuning" (a tuning phase's runs)
ROLE, SWEEP, TUNING = "role", "sweep", "tuning"
EXPERIMENT = "experiment"  # the experiment file's name, on parent runs
ENV = "env."  # where a run trained: env.cpu, env.device, env.torch, ...

# ---- MLflow's own tags (mlflow.utils.mlflow_tags) ---------------------------------------
PARENT_RUN = "mlflow.parentRunId"
NOTE = "mlflow.note.content"  # a run's or experiment's description (Markdown) in the UI
RUN_NAME = "mlflow.runName"
USER = "mlflow.user"
SOURCE_NAME, SOURCE_TYPE = "mlflow.source.name", "mlflow.source.type"
GIT_COMMIT = "mlflow.source.git.commit"
GIT_BRANCH = "mlflow.source.git.branch"
GIT_REPO = "mlflow.source.git.repoURL"
DATASET_CONTEXT = "mlflow.data.context"
EXPERIMENT_KIND, MODEL_TRAINING = "mlflow.experimentKind", "custom_model_development"
VIEW_TAG = "mlflow.sharedViewState."  # an experiment tag holding one saved view of the UI

# ---- metrics and artifacts ---------------------------------------------------------------
PROBE = "probe/"  # probe summaries during training, e.g. probe/h_key_share
PROBE_CURVE = "probe_curve/"  # probe_curve/<phase>/<state>: a profile against k as a history
# the trained model at other distances: extrapolation/accuracy_x2, extrapolation/loss_x0.5
EXTRAPOLATION = "extrapolation/"
TEST_SCORES = ("test_accuracy", "test_loss")  # the final metrics measured on the test split
RESULT_ARTIFACT = "result.json"
PROBE_SUMMARY_ARTIFACT = "probe_summary.csv"  # one row per probe: summaries and mechanism
# each finished run's
ARTIFACTS = ("config.yaml", "model.pt", "probe.csv", PROBE_SUMMARY_ARTIFACT, RESULT_ARTIFACT)
REPORT_FOLDER = "report"  # the report's artifact folder on the sweep's parent run

# ---- the experiment ----------------------------------------------------------------------
STUDY = "long-gap"  # the prefix of every MLflow experiment name of this pipeline


def mlflow_name(experiment: str) -> str:
    """The MLflow experiment of the pipeline's experiment ``experiment``: ``long-gap/default``
    says what it is, where a plain ``default`` sat beside MLflow's own ``Default``.
    """
    return f"{STUDY}/{experiment}"
