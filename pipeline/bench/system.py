"""5. MLflow's system-metrics monitor, as a sweep runs it on its parent run: its share of a core,
measured beside the overhead runs' training (``overhead.measure_overhead``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from pipeline.tracking import store, sweep_runs


@contextmanager
def monitor_cost(client, exp_id: str) -> Iterator[dict]:
    """Within: the monitor at the pipeline's interval (``sweep_runs.SYSTEM_INTERVAL``) on a
    RUNNING run of the store behind ``client``, beside whatever trains meanwhile. The yielded
    dict holds, once the block ends: the monitor thread's CPU seconds and the block's wall
    seconds (their ratio, ``shares``, is its share of a core), the samples it logged, and the
    seconds its start and finish took.
    """
    measured = {"interval_s": sweep_runs.SYSTEM_INTERVAL, "shares": []}
    run_id = store.retry(lambda: client.create_run(exp_id, run_name="monitor")).info.run_id
    started = time.perf_counter()
    monitor = sweep_runs.system_monitor(client, run_id)
    clock = time.pthread_getcpuclockid(monitor._process.ident)  # the monitor thread's CPU time
    start_s, opened = time.perf_counter() - started, time.perf_counter()
    try:
        yield measured
    finally:
        cpu_s, wall_s = time.clock_gettime(clock), time.perf_counter() - opened
        started = time.perf_counter()
        monitor.finish()
        finish_s = time.perf_counter() - started
        store.retry(lambda: client.set_terminated(run_id, "FINISHED"))
        samples = store.retry(
            lambda: client.get_metric_history(run_id, "system/cpu_utilization_percentage")
        )
        measured |= {
            "cpu_s": cpu_s,
            "wall_s": wall_s,
            "samples": len(samples),
            "start_finish_s": start_s + finish_s,
            "shares": [cpu_s / wall_s],
        }
