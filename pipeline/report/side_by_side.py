"""Two experiments side by side (``python -m pipeline compare A B``): per task and model, the
seeds solved of planned at each distance and the memory horizon, as the report counts and
defines them (``stats.success_counts``, ``stats.horizons``), one row per experiment, the two
experiments' rows together. Read from the result files only: no MLflow, nothing trained.
"""

from __future__ import annotations

import textwrap

import pandas as pd
from tabulate import tabulate

from pipeline import config, paths
from pipeline.config import Experiment
from pipeline.errors import ConfigError
from pipeline.report.reading import planned
from pipeline.report.stats import horizons, success_counts
from pipeline.report.tables import count_text, horizon_text

HORIZON = "memory horizon"


def compare(a: str, b: str) -> str:
    """The text ``python -m pipeline compare a b`` prints; ``a`` and ``b`` are experiment names
    or files. Raises ConfigError for a bad file, or two files of one name (their results share
    one folder).
    """
    first, second = (config.load(paths.experiment_path(x)) for x in (a, b))
    if first.name == second.name:
        raise ConfigError(
            f"{a} and {b} are both experiment {first.name!r}: their results are one folder, "
            f"{paths.results_dir(first.name)}; compare two experiments of different names"
        )
    frame = side_by_side([first, second])
    heading = (
        f"{first.name} and {second.name}: seeds solved of planned at each distance, and the "
        "memory horizon (the longest distance held, by at least half the planned seeds, at it and "
        "at every shorter one); an unfinished run counts as not solved."
    )
    table = tabulate(frame, headers="keys", tablefmt="simple", showindex=False,
                     disable_numparse=True)  # fmt: skip
    return "\n".join([*textwrap.wrap(heading, 100), "", table])


def side_by_side(experiments: list[Experiment]) -> pd.DataFrame:
    """One row per (task, model, experiment), tasks and models in the order the experiments
    list them: ``task``, ``model``, ``experiment``, ``d=<distance>`` (``2/3``, ``-`` where that
    experiment has no such distance) for every distance of either, and ``memory horizon``.
    """
    rows = []
    for exp in experiments:
        counts = success_counts(planned(exp)[0])
        held = horizons(counts)
        for (task, model), group in counts.groupby(["task", "model"], sort=False):
            row = {"task": task, "model": model, "experiment": exp.name}
            row |= {f"d={c.distance}": count_text(c._asdict()) for c in group.itertuples()}
            rows.append(row | {HORIZON: horizon_text(held[(task, model)])})
    frame = pd.DataFrame(rows)
    pairs = list(zip(frame["task"], frame["model"], strict=True))
    first_seen = {pair: i for i, pair in enumerate(dict.fromkeys(pairs))}
    frame = frame.iloc[sorted(range(len(pairs)), key=lambda i: first_seen[pairs[i]])]
    distances = sorted({c for c in frame.columns if c.startswith("d=")}, key=lambda c: int(c[2:]))
    return frame[["task", "model", "experiment", *distances, HORIZON]].fillna("-")
