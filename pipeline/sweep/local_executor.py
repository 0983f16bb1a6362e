"""The local executor: a sweep's runs in worker processes on this machine, or in this process.

``LocalExecutor(jobs)`` forks ``jobs`` workers from the fork server (``forkserver``: the training
stack imported once); each takes the sweep's environment, ignores Ctrl-C (the sweep answers it
and stops them with SIGTERM) and dies with the sweep. Runs are handed out longest first. With one
job, runs train one after another in this process.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import signal

from pipeline.config.runs import RunResult, RunSpec
from pipeline.errors import SweepError
from pipeline.sweep import forkserver
from pipeline.sweep.worker import OnDone, WorkerSetup, run_one, stop_taking_runs


def _init_pool_worker(sweep_pid: int, env: dict[str, str], cwd: str) -> None:
    """A pool worker: the parent alone answers Ctrl-C and stops workers with SIGTERM, and a
    worker dies with the sweep. The fork server may have started for an earlier sweep of this
    process (the tests run many), so the worker takes the sweep's environment and directory.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, stop_taking_runs)
    forkserver.die_with(sweep_pid)
    os.environ.clear()
    os.environ.update(env)
    os.chdir(cwd)
    from pipeline.train import run  # preloaded by the fork server: no import cost here

    run.set_deterministic_env()


class LocalExecutor:
    """``jobs`` forked worker processes (none for one job: runs train in this process)."""

    def __init__(self, jobs: int) -> None:
        self.pool = None
        if jobs > 1:
            initargs = (os.getpid(), dict(os.environ), os.getcwd())
            self.pool = forkserver.pool(jobs, _init_pool_worker, initargs)

    def run(self, specs: list[RunSpec], setup: WorkerSetup, on_done: OnDone) -> None:
        if self.pool is None:
            _run_inline(specs, setup, on_done)
            return
        try:
            # longest first (cost grows with distance), so no long run starts last and alone
            ordered = sorted(specs, key=lambda spec: -spec.distance)
            futures = {self.pool.submit(run_one, spec, setup): spec for spec in ordered}
            for future in cf.as_completed(futures):
                spec = futures[future]
                try:
                    result: RunResult = future.result()
                except cf.process.BrokenProcessPool:
                    raise SweepError(
                        "a worker process died (killed, or out of memory); rerun the "
                        "same command to resume"
                    ) from None
                except Exception as e:
                    on_done(spec, None, f"{type(e).__name__}: {e}")
                else:
                    on_done(spec, result, None)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the workers now (SIGTERM, then a kill after a grace period)."""
        if self.pool is not None:
            forkserver.stop(self.pool)

    def close(self) -> None:
        """Let the workers finish and exit."""
        if self.pool is not None:
            self.pool.shutdown(wait=True)


def _run_inline(specs: list[RunSpec], setup: WorkerSetup, on_done: OnDone) -> None:
    for spec in specs:
        try:
            result = run_one(spec, setup)
        except Exception as e:
            on_done(spec, None, f"{type(e).__name__}: {e}")
        else:
            on_done(spec, result, None)
