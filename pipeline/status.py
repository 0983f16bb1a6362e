"""Where each planned run of an experiment stands, from its result file and its MLflow attempts:
the one classification that ``python -m pipeline status``, the report and ``pipeline.results``
read. Nothing here trains, and nothing creates a tracking store.

A run's status:

- ``solved``, ``unsolved`` or ``diverged``: finished, its result file current (``FINISHED``);
- ``stale``: its result file is from another configuration of the run (the settings that changed
  are named where MLflow holds the run's params), or, where a code version is given, from other
  outcome code (``stages.code_version``): the sweep trains it again;
- ``failed``: no current result, and its last MLflow attempt FAILED (its error's first line);
- ``missing``: no current result though something was started or written: its last attempt
  ended otherwise (KILLED, or RUNNING still), or its result file cannot be read; also any run
  without a result file where MLflow was not read, since nothing then says whether it started;
- ``planned``: never started (no result file, no attempt), or waiting for its variant's tuning.

Without a code version (the report's reading), a result file of another code version still
counts as finished: the report shows what was trained; the sweep and ``status`` say it is stale.
"""

from __future__ import annotations

import textwrap
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from pipeline import paths
from pipeline.config import Experiment
from pipeline.config.runs import (
    RunResult,
    RunSpec,
    control_runs,
    evaluation_runs,
    result_path,
    tuning_runs,
)
from pipeline.config.tuning import select
from pipeline.tracking import names, store

FINISHED = ("solved", "unsolved", "diverged")
UNFINISHED = ("stale", "failed", "missing", "planned")
WAITING = "waits for its variant's tuning to finish"


@dataclass(frozen=True)
class Standing:
    """One planned run and where it stands: ``status`` (module docstring), why (``note``), its
    MLflow run (the current result's, else the last attempt's) and, finished, its ``result``.
    """

    spec: RunSpec
    status: str
    note: str = ""
    run_id: str | None = None
    result: RunResult | None = None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


@dataclass(frozen=True)
class Survey:
    """Every planned run of an experiment: ``tuning`` runs, ``evaluation`` runs (with the grid
    point tuning chose where it finished; a staircase's as far as the results take it), the
    ``control`` runs the brackets ask for, tuning's ``selections``, and where the MLflow attempts
    came from (``source``).
    """

    exp: Experiment
    tuning: list[Standing]
    evaluation: list[Standing]
    selections: list = field(default_factory=list)
    source: str = ""
    control: list[Standing] = field(default_factory=list)

    @property
    def runs(self) -> list[Standing]:
        return self.tuning + self.evaluation + self.control

    @property
    def choice(self) -> dict | None:
        """What tuning chose per (task, model); None without tuning."""
        if self.exp.tuning is None:
            return None
        return {(s.task, s.model): s.chosen for s in self.selections}


def recorded(spec: RunSpec, version: str | None = None) -> RunResult | None:
    """The result of ``spec`` when it is of ``spec``'s configuration and, given a ``version``,
    of that code (None: any, the report's reading: it shows what was trained).
    """
    found = RunResult.read(result_path(spec))
    return (
        found if found is not None and found.current(spec, version or found.code_version) else None
    )


def survey(
    exp: Experiment, mlflow_runs: list | None, version: str | None = None, source: str = ""
) -> Survey:
    """Where every planned run of ``exp`` stands. ``mlflow_runs``: the experiment's MLflow runs
    (``attempts``; None: not read); ``version``: the code version a current result must carry
    (None: any).
    """
    by_key = None
    if mlflow_runs is not None:
        by_key = defaultdict(list)
        for run in mlflow_runs:
            by_key[run.data.tags.get(names.RUN_KEY)].append(run)

    def standing(spec: RunSpec) -> Standing:
        return stand(spec, None if by_key is None else by_key.get(spec.key, []), version)

    def result_of(spec: RunSpec) -> RunResult | None:
        return recorded(spec, version)

    tuning = [standing(spec) for spec in tuning_runs(exp)]
    choice, selections = None, []
    if tuning:
        choice, selections, _ = select(exp, {s.spec.key: s.result for s in tuning if s.finished})
    chosen = {spec.key: spec for spec in evaluation_runs(exp, choice, result_of)}
    first = evaluation_runs(exp)  # a variant waiting for its tuning: its first level
    evaluation = [
        standing(chosen[spec.key]) if spec.key in chosen else _waiting(spec) for spec in first
    ]
    known = {spec.key for spec in first}
    evaluation += [standing(spec) for key, spec in chosen.items() if key not in known]
    control = [standing(spec) for spec in control_runs(exp, choice, result_of)]
    return Survey(exp, tuning, evaluation, selections, source, control)


def _waiting(spec: RunSpec) -> Standing:
    """An evaluation run whose settings its variant's unfinished tuning has yet to choose."""
    earlier = " (a result file of earlier settings is there)" if result_path(spec).exists() else ""
    return Standing(spec, "planned", WAITING + earlier)


def stand(spec: RunSpec, attempts: list | None, version: str | None = None) -> Standing:
    """Where ``spec`` stands, from its result file and ``attempts`` (its MLflow runs; None: not
    read); with ``version``, a result of other outcome code is stale.
    """
    path = result_path(spec)
    found = RunResult.read(path) if path.exists() else None
    if found is not None and found.current(spec, version or found.code_version):
        return Standing(spec, found.status, run_id=found.run_id, result=found)
    last = max(attempts, key=lambda r: r.info.start_time or 0) if attempts else None
    if last is not None and last.info.status == "FAILED":
        error = last.data.tags.get(names.ERROR) or "no error recorded"
        return Standing(spec, "failed", error.strip().splitlines()[0][:300], last.info.run_id)
    if found is not None:
        return Standing(spec, "stale", _why_stale(spec, found, attempts, version), found.run_id)
    if path.exists():
        return Standing(spec, "missing", "unreadable result file")
    if attempts is None:
        return Standing(spec, "missing", "no result file (MLflow not read)")
    if last is None:
        return Standing(spec, "planned", "never started")
    return Standing(
        spec, "missing", f"last attempt {last.info.status} without a result file", last.info.run_id
    )


def _why_stale(spec: RunSpec, found: RunResult, attempts: list | None, version: str | None) -> str:
    """``settings changed: max_steps 60 -> 80``; ``the outcome code changed (...)``."""
    reasons = []
    if found.config_hash != spec.config_hash:
        trained = next((r for r in attempts or () if r.info.run_id == found.run_id), None)
        changed = changed_settings(trained.data.params, spec) if trained is not None else ""
        if changed:
            reasons.append(f"settings changed: {changed}")
        else:
            if attempts is None:
                where = "MLflow not read"
            elif trained is None:
                where = "its MLflow run is gone"
            else:
                where = "its MLflow params read the same as text"
            reasons.append(
                f"configuration changed (config hash {found.config_hash} -> {spec.config_hash}; "
                f"{where}, so which setting is unknown)"
            )
    if version is not None and found.code_version != version:
        reasons.append(f"the outcome code changed (code version {found.code_version} -> {version})")
    return "; ".join(reasons)


def changed_settings(logged: dict[str, str], spec: RunSpec) -> str:
    """``max_steps 60 -> 80, eval_every 20 -> 10``: the run's settings (``RunSpec.params``) that
    differ from those its trained run logged (MLflow params, as text).
    """
    now = {k: str(v) for k, v in spec.params().items()}
    keys = [k for k in now if logged.get(k) != now[k]] + sorted(set(logged) - set(now))
    return ", ".join(f"{k} {logged.get(k, '(unset)')} -> {now.get(k, '(unset)')}" for k in keys)


# ---- reading the attempts, without creating a store -----------------------------------------


def attempts(exp: Experiment) -> tuple[list | None, str]:
    """The MLflow runs of ``exp``'s sweeps (their tags and params) and a line saying where they
    came from; None where the store cannot be read. A local store that does not exist is left
    uncreated: nothing was trained there, so there is no attempt.
    """
    uri = paths.tracking_uri()
    shown = store.redact(uri)
    if store.local_store_missing(uri):
        return [], f"no tracking store at {shown}: nothing has been trained there"
    try:
        client = store.connect(uri)
        found = store.retry(lambda: client.get_experiment_by_name(names.mlflow_name(exp.name)))
        if found is None or found.lifecycle_stage == "deleted":
            return [], f"no MLflow experiment {names.mlflow_name(exp.name)!r} in {shown}"
        runs = store.search(client, found.experiment_id)
    except Exception as e:  # unreachable (TrackingError), a server error, an older schema
        return None, f"tracking store not read ({store.first_line(e)}): failed runs show as missing"
    mine = [r for r in runs if names.RUN_KEY in r.data.tags]
    return mine, f"MLflow experiment {names.mlflow_name(exp.name)!r} in {shown}"


# ---- the status command's text -----------------------------------------------------------


def text(found: Survey, experiment_file: Path, version: str, listed: int = 5) -> str:
    """What ``python -m pipeline status`` prints: counts per status (and phase), per (task,
    model), then each unfinished run's reason, grouped (``listed`` run keys a reason at most).
    """
    runs, exp = found.runs, found.exp
    lines = [
        f"{exp.name} ({experiment_file}): {len(runs)} planned runs "
        f"({len(found.evaluation)} evaluation, {len(found.tuning)} tuning), code version "
        f"{version}",
        found.source,
        "",
    ]
    lines += _table(_by_status(found))
    lines += ["", *_table(_by_variant(found))]
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for s in runs:
        if not s.finished:
            groups[(s.status, s.note)].append(s.spec.key)
    for (status, note), keys in sorted(groups.items(), key=lambda g: UNFINISHED.index(g[0][0])):
        more = [f"... and {len(keys) - listed} more"] if len(keys) > listed else []
        shown = textwrap.wrap(", ".join(keys[:listed] + more), 96, break_on_hyphens=False)
        lines += ["", f"{status} ({len(keys)}): {note}", *("  " + line for line in shown)]
    return "\n".join(lines)


def _by_status(found: Survey) -> list[list[str]]:
    phases = [("evaluation", found.evaluation)]
    phases += [("tuning", found.tuning)] if found.tuning else []
    rows = [["status", *(p for p, _ in phases), "all"]]
    count = {p: Counter("finished" if s.finished else s.status for s in runs) for p, runs in phases}
    for status in ("finished", *UNFINISHED):
        cells = [count[p][status] for p, _ in phases]
        rows.append([status, *map(str, cells), str(sum(cells))])
    outcomes = Counter(s.status for s in found.runs if s.finished)
    if outcomes:
        rows[1].append("(" + ", ".join(f"{outcomes[o]} {o}" for o in FINISHED if outcomes[o]) + ")")
    return rows


def _by_variant(found: Survey) -> list[list[str]]:
    rows = [["task", "model", "runs", "finished", *UNFINISHED]]
    count: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for s in found.runs:
        count[(s.spec.task.task, s.spec.model.name)]["finished" if s.finished else s.status] += 1
    for t in found.exp.tasks:
        for m in found.exp.models:
            c = count[(t.task, m.name)]
            statuses = ("finished", *UNFINISHED)
            rows.append([t.task, m.name, str(c.total()), *(str(c[s]) for s in statuses)])
    return rows


def _table(rows: list[list[str]]) -> list[str]:
    """Rows as aligned columns: counts to the right, words to the left."""
    width = [max(len(r[i]) for r in rows if i < len(r)) for i in range(max(map(len, rows)))]
    aligned = [[c.rjust(w) if c.isdigit() else c.ljust(w) for c, w in zip(r, width[: len(r)],
                strict=True)] for r in rows]  # fmt: skip
    return ["  ".join(r).rstrip() for r in aligned]
