"""The local executor's worker processes, forked from a server that imports the training stack once.

A fresh interpreter spends seconds importing torch, Lightning and MLflow (``make bench`` records
how long). ``start_server()`` starts multiprocessing's fork server, which imports them
(``preload``) on a core of its own while the parent loads the experiment and sets up
the tracking store; ``pool()``'s workers are then forked from it in milliseconds, each paying
nothing for the imports, and exit without tearing their interpreter down. The server has
imported but never run anything: no torch thread, SQLite connection or open file crosses a fork.

This module imports neither torch nor MLflow, so ``python -m pipeline train`` can start the
server before it loads anything itself.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import multiprocessing
import os
import select
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing import forkserver

PRELOAD = "pipeline.sweep.preload"


def start_server() -> None:
    """Start the fork server now; it imports in the background and this returns at once."""
    multiprocessing.get_context("forkserver").set_forkserver_preload([PRELOAD])
    forkserver.ensure_running()


def stop_server() -> None:
    """Stop the fork server, at once, even mid-import (when it forked no worker after all)."""
    server = forkserver._forkserver  # multiprocessing has no public call for this
    pid = getattr(server, "_forkserver_pid", None)
    if pid is None:
        return
    with contextlib.suppress(ProcessLookupError):  # it holds nothing worth waiting for
        os.kill(pid, signal.SIGKILL)
    server._stop()  # reaps it and removes its socket


def pool(jobs: int, initializer: Callable, initargs: tuple) -> cf.ProcessPoolExecutor:
    """``jobs`` workers forked from the fork server (started now if it is not yet running).
    The workers start when the first tasks are submitted.
    """
    start_server()
    return cf.ProcessPoolExecutor(
        max_workers=jobs,
        mp_context=multiprocessing.get_context("forkserver"),
        initializer=initializer,
        initargs=initargs,
    )


def stop(executor: cf.ProcessPoolExecutor, grace: float = 5.0) -> None:
    """SIGTERM every worker, give them ``grace`` seconds to close their runs, then kill."""
    processes = list((getattr(executor, "_processes", None) or {}).values())
    for p in processes:
        if p.is_alive():
            os.kill(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for p in processes:
        p.join(max(0.0, deadline - time.monotonic()))
        if p.is_alive():
            p.kill()
    executor.shutdown(wait=False, cancel_futures=True)


def die_with(pid: int) -> None:
    """End this process as soon as process ``pid`` (the sweep) ends, however it ends.

    A worker's parent is the fork server, which outlives a SIGKILLed sweep while any worker
    holds its connection, so the worker watches the sweep itself: an orphan would finish a run
    that the resumed sweep then trains again.
    """
    try:
        fd = os.pidfd_open(pid)  # Linux 5.3+: readable once the process has ended
    except (AttributeError, OSError):
        fd = None

    def watch() -> None:
        if fd is not None:
            select.select([fd], [], [])
        else:
            while _alive(pid):
                time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="die-with-sweep", daemon=True).start()
    if not _alive(pid):  # ended before the watch began
        os._exit(1)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, under another user
        pass
    return True
