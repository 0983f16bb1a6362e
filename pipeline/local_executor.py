"""The local executor: a sweep's runs in worker processes on this machine, or in this process.

``pool`` starts ``jobs`` workers forked from the server of ``workers`` (which imported the
training stack once); each takes the sweep's environment, ignores Ctrl-C (the sweep answers it and
stops them with SIGTERM) and dies with the sweep. ``run_parallel`` hands them runs, longest
first; ``run_inline`` trains them one after another here (``jobs=1``). Both report each run
through ``on_done(spec, result, None)`` or ``on_done(spec, None, "Type: message")``, as the Ray
executor does.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import signal
from collections.abc import Callable

from pipeline import workers
from pipeline.errors import SweepError
from pipeline.runner import ensure_worker, init_worker, run_one, stop_taking_runs
from pipeline.runs import RunSpec


def _init_pool_worker(sweep_pid: int, env: dict[str, str], cwd: str) -> None:
    """A pool worker: the parent alone answers Ctrl-C and stops workers with SIGTERM, and a
    worker dies with the sweep. The fork server may have started for an earlier sweep of this
    process (the tests run many), so the worker takes the sweep's environment and directory.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, stop_taking_runs)
    workers.die_with(sweep_pid)
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    from pipeline import train  # preloaded by the fork server: no import cost here

    train.set_deterministic_env()


def _pool_run(spec: RunSpec, init_args: tuple) -> dict:
    ensure_worker(init_args)  # once per worker process
    return run_one(spec)


def pool(jobs: int) -> cf.ProcessPoolExecutor:
    return workers.pool(jobs, _init_pool_worker, (os.getpid(), dict(os.environ), os.getcwd()))


def run_parallel(
    todo: list[RunSpec],
    pool: cf.ProcessPoolExecutor,
    init_args: tuple,
    on_done: Callable[[RunSpec, dict | None, str | None], None],
) -> None:
    try:
        # longest first (cost grows with distance), so no long run starts last and runs alone
        ordered = sorted(todo, key=lambda spec: -spec.distance)
        futures = {pool.submit(_pool_run, spec, init_args): spec for spec in ordered}
        for future in cf.as_completed(futures):
            spec = futures[future]
            try:
                on_done(spec, future.result(), None)
            except cf.process.BrokenProcessPool:
                raise SweepError(
                    "a worker process died (killed, or out of memory); rerun the "
                    "same command to resume"
                ) from None
            except Exception as e:
                on_done(spec, None, f"{type(e).__name__}: {e}")
    except BaseException:
        workers.stop(pool)
        raise


def run_inline(todo: list[RunSpec], init_args: tuple, on_done) -> None:
    init_worker(*init_args)
    for spec in todo:
        try:
            result = run_one(spec)
        except Exception as e:
            on_done(spec, None, f"{type(e).__name__}: {e}")
        else:
            on_done(spec, result, None)
