"""Experiments on long-term dependencies in recurrent networks.

Stages, one module each: ``data`` (task files), ``train`` (Lightning runs logged to MLflow,
with the gradient ``probe`` inside each run), ``report`` (figures and findings from MLflow).
For a notebook: ``runs, curves = pipeline.results("default")``.

Nothing is imported here at import time: ``import pipeline`` stays cheap, and each stage loads
what it needs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from os import PathLike

    import pandas as pd


def results(
    experiment: str | PathLike = "default", curves: bool = True
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``runs, curves``: an experiment's runs and gradient curves as pandas DataFrames, read from
    its result files and its MLflow runs (the same rows as the report's ``results.csv`` and
    ``probe.csv``, tuning runs included). Trains nothing and creates no tracking store.

    ``experiment``: a name under ``experiments/`` (``"default"``,
    ``"replications/le2015-adding"``) or the path of an experiment file; its outputs are read
    under ``PIPELINE_ROOT`` (default: the project folder) and from ``MLFLOW_TRACKING_URI``
    (default: ``mlruns/mlflow.db``). ``curves=False`` skips the curves, which are read from
    each finished run's ``probe.csv`` artifact, one read per run; where no tracking store holds
    the runs, the curves are empty and a warning says why. Raises ConfigError for a bad
    experiment file.

    ``runs``: one row per planned run, evaluation runs first, then tuning runs:

    - ``task``, ``model``, ``cell``, ``distance``, ``seed``: the run's identity, named as in the
      experiment file; ``run_key`` (``recall/lstm_d20_s1``) names its result file
      ``results/<experiment>/<run_key>.json``; ``run_id``: its MLflow run (for a run that did
      not finish, its last attempt's);
    - ``phase``: ``evaluation`` or ``tuning``; ``grid``: the tuning grid point it trains with
      (``lr0.003``; ``none`` without tuning);
    - ``hidden_size``, ``batch_size``, ``parameters``: its width, its batch and its model's
      parameter count;
    - ``status``: ``solved``, ``unsolved`` or ``diverged`` when finished; else ``stale`` (a result
      file of other settings), ``failed`` (its last MLflow attempt failed), ``missing`` (started
      but left no result) or ``planned`` (never started); ``note`` says why (``pipeline.status``).
      A result of older outcome code counts as finished here, as in the report;
      ``python -m pipeline status`` says it is stale;
    - ``test_accuracy``, ``test_loss``: on the test split after training (loss empty when not
      finite); ``best_val_accuracy``, ``best_val_loss``: the best validation scores;
      ``chance_accuracy``, ``baseline_loss``: the task's chance accuracy and the loss of the best
      model without memory, at this distance;
    - ``steps``: updates taken; ``steps_to_solve``: the update at which validation accuracy
      reached ``solved_accuracy`` (empty: never); ``solved``: whether it did;
      ``diverged_step``: the update at which it diverged (empty: never);
    - ``mean_grad_norm``: the gradient's norm before clipping, averaged over the updates;
      ``wall_time``: seconds of training; ``environment``: where it trained;
    - ``probe_data``: whether the probe gave numbers; ``probe_<phase>_<state>_<stat>``: the
      probe's summaries before (``init``) and after (``final``) training, for the hidden state
      ``h`` and an LSTM's cell ``c``: ``key_share`` (median share of the output step's gradient
      that reaches the key step) with its quartiles ``key_share_q25`` and ``key_share_q75``,
      ``rho`` (per-step decay of the gradient norm) and ``rho_r2`` (its fit's R²), ``efold``
      (e-folding length in steps, -1 / ln rho), ``jacobian_key`` (Jacobian norm at the key
      step); empty for a run that did not finish;
    - ``mech_<phase>_<measure>``: the recurrent mechanism before and after training
      (``pipeline.mechanism``): ``W_<block>_radius`` and ``W_<block>_sv`` (spectral radius,
      largest singular value of each gate block of W: ``W``; ``W_i``/``W_f``/``W_g``/``W_o``;
      ``W_r``/``W_z``/``W_n``), and the keep gate's time constants ``f_tau_median``,
      ``f_tau_max``, ``f_tau_share`` (LSTM) or ``z_tau_...`` (GRU);
    - ``extrapolation_<field>_x<factor>``: the trained model scored at 0.5, 2 and 4 times its
      distance on fresh data: ``distance``, ``n``, ``accuracy``, ``loss``, ``chance_accuracy``.

    ``curves``: one row per (finished run, probe, k): ``run_id``, ``run_key``, ``task``,
    ``model``, ``cell``, ``distance``, ``seed`` as above; ``phase`` (``init``, ``step_<n>`` or
    ``final``) and ``step`` (the update it was taken at); ``k``: steps back from the output step
    (k = distance is the key step); ``h_median``, ``h_q25``, ``h_q75``: the quartiles over probe
    samples of the gradient norm at the state k steps back; ``h_jacobian``: the Jacobian norm
    ||dh_s/dh_(s-k)|| / sqrt(H); ``c_...``: the same for an LSTM's cell state.

    docs/results.md holds the same dictionary.
    """
    from pipeline.report.reading import tables  # pandas, the config and MLflow: at first use

    return tables(experiment, curves)
