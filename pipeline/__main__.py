"""Command line: ``python -m pipeline <stage> --experiment experiments/<name>.yaml``,
``python -m pipeline replicate [--claim NAME] [--all] [--budget MINUTES] [--plan]`` for the
published claims, and
``python -m pipeline derive -e BASE --set "path=value ..." --output FILE`` for an experiment file
that changes some settings of another (what ``make run-all SET=...`` runs), and the questions
``status -e FILE`` (where each run stands), ``compare A B`` (two experiments side by side) and
``schema`` (the experiment file's JSON Schema).

Exit codes: 0 done; 1 a stage failed (bad data, failed runs, unusable tracking store);
2 a bad experiment file or bad arguments; 130 interrupted (rerun the same command to resume).
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from collections.abc import Callable
from pathlib import Path

from pipeline.errors import ConfigError, PipelineError

EXIT_FAILED, EXIT_CONFIG, EXIT_INTERRUPTED = 1, 2, 130


def _load(path: str):
    """The experiment file, validated. Imported here, not above: the config imports torch, which
    ``train`` overlaps with its workers' start.
    """
    from pipeline import config

    return config.load(path)


def _data(args) -> None:
    from pipeline import data

    data.run(_load(args.experiment))


def _train(args) -> None:
    from pipeline.sweep import forkserver  # neither torch nor MLflow: it starts at once

    early = args.executor == "local" and args.jobs > 1
    if early:  # the workers' imports overlap this process's own set-up
        forkserver.start_server()
    try:
        from pipeline.sweep import phases

        phases.run(_load(args.experiment), jobs=args.jobs, executor=args.executor)
    finally:
        if early:
            forkserver.stop_server()  # at once: its workers are done, or it forked none


def _replicate(args) -> None:
    from pipeline.sweep import forkserver  # neither torch nor MLflow: it starts at once

    # the workers' imports overlap this process's own set-up; not beside a plan's calibration,
    # which they would slow down, and which trains nothing after
    early = args.executor == "local" and args.jobs > 1 and not args.plan
    if early:
        forkserver.start_server()
    try:
        from pipeline import replication

        budget = {} if args.budget is None else {"budget": args.budget}
        replication.run(
            args.claim,
            args.all,
            jobs=args.jobs,
            executor=args.executor,
            dry_run=args.plan,
            **budget,
        )
    finally:
        if early:
            forkserver.stop_server()


def _report(args) -> None:
    from pipeline import report

    report.run(_load(args.experiment), experiment_file=args.experiment)


def _bench(args) -> None:
    from pipeline import bench

    bench.run(quick=args.quick)


def _links(args) -> None:
    from pipeline.tracking import ui

    address = args.address or ui.UI_ADDRESS
    print(f"MLflow UI at {address}")
    print("\n".join(ui.ui_links(address)))


def _derive(args) -> None:
    from pipeline.config import derive

    text = " ".join(args.set)
    derive.derive(Path(args.experiment), text, Path(args.output))
    print(f"{args.output}: {args.experiment} with {text}")


def _schema(args) -> None:
    from pipeline import schema

    print(schema.reference() if args.markdown else schema.schema_text(), end="")


def _status(args) -> None:
    from pipeline import stages, status

    exp = _load(args.experiment)
    mlflow_runs, source = status.attempts(exp)
    version = stages.code_version()
    found = status.survey(exp, mlflow_runs, version, source)
    print(status.text(found, Path(args.experiment), version))


def _compare(args) -> None:
    from pipeline.report import side_by_side

    print(side_by_side.compare(args.first, args.second))


def _check(args) -> None:
    _load(args.experiment)
    print(f"{args.experiment}: valid")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m pipeline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    stages = parser.add_subparsers(dest="stage", required=True, metavar="stage")

    def stage(name: str, fn: Callable, help: str, experiment: bool = True):
        p = stages.add_parser(name, help=help, description=help)
        if experiment:
            p.add_argument("--experiment", "-e", required=True, help="experiment YAML file")
        p.set_defaults(fn=fn)
        return p

    stage("check", _check, "validate an experiment file and exit")
    derive = stage(
        "derive",
        _derive,
        "write an experiment file: the --experiment file with the settings of --set, validated",
    )
    derive.add_argument(
        "--set",
        action="append",
        required=True,
        metavar="'PATH=VALUE ...'",
        help="settings, such as 'training.max_steps=500 seeds=[0]' (YAML values; repeatable)",
    )
    derive.add_argument("--output", "-o", required=True, help="the experiment file to write")
    stage("data", _data, "write the task data of every (task, distance, seed)")
    train = stage("train", _train, "train every run that has no result file yet")
    stage("report", _report, "write reports/<experiment>/ from MLflow and the result files")
    stage(
        "status",
        _status,
        "say where each planned run stands (finished, stale and why, failed, missing, planned) "
        "from the result files and MLflow; trains nothing, creates no tracking store",
    )
    replicate = stage(
        "replicate",
        _replicate,
        "estimate the published claims of experiments/replications/ and their parts on this "
        "machine, run those that fit the budget (data, train, report each) and write "
        "reports/replications/",
        experiment=False,
    )
    replicate.add_argument(
        "--claim",
        help="run this claim (a file name without .yaml) or part (claim.part) only, whatever its "
        "estimate",
    )
    replicate.add_argument(
        "--all", action="store_true", help="run every claim and part, whatever its estimate"
    )
    replicate.add_argument(
        "--budget",
        type=float,
        metavar="MINUTES",
        help="minutes of training for the claims, then the parts, cheapest first, each whose "
        "estimate here fits what is left (default: replication.BUDGET_MINUTES, 15)",
    )
    replicate.add_argument(
        "--plan", action="store_true", help="print the estimates and what would run; run nothing"
    )
    for p in (train, replicate):
        p.add_argument(
            "--jobs",
            "-j",
            type=int,
            default=int(os.environ.get("JOBS") or 0) or os.cpu_count() or 1,
            help="worker processes (default: JOBS or cores)",
        )
        p.add_argument(
            "--executor",
            choices=("local", "ray"),
            default=os.environ.get("EXECUTOR") or "local",
            help="where runs execute (default: EXECUTOR or local)",
        )
    links = stage(
        "links",
        _links,
        "print the MLflow UI's address of each experiment's runs (make mlflow-ui does)",
        experiment=False,
    )
    links.add_argument("--address", help="where the UI is served (default: http://127.0.0.1:5000)")
    compare = stage(
        "compare",
        _compare,
        "two experiments side by side: seeds solved per distance and memory horizon, per task "
        "and model, from their result files",
        experiment=False,
    )
    for which in ("first", "second"):
        compare.add_argument(which, help="an experiment name (quick) or file (experiments/x.yaml)")
    schema = stage(
        "schema",
        _schema,
        "print the experiment file's JSON Schema (docs/experiment.schema.json), or with "
        "--markdown its configuration reference (docs/configuration.md)",
        experiment=False,
    )
    schema.add_argument("--markdown", action="store_true", help="the reference page instead")
    bench = stage("bench", _bench, "measure the pipeline against plain PyTorch", experiment=False)
    bench.add_argument("--quick", action="store_true", help="fewer repetitions (a smoke run)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if getattr(args, "jobs", 1) < 1:
        print("error: --jobs must be at least 1", file=sys.stderr)
        return EXIT_CONFIG
    try:
        args.fn(args)
    except PipelineError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_CONFIG if isinstance(e, ConfigError) else EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted; run the same command again to resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    return 0


if __name__ == "__main__":
    code = main()
    # Everything is written and closed by now: spare the interpreter's final collection over
    # torch's and MLflow's objects (a noticeable share of a short stage's exit); atexit still runs.
    gc.freeze()
    sys.exit(code)
