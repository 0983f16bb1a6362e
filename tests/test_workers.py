"""Worker processes end with the sweep that started them, however the sweep ends."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from pipeline import paths


def test_a_worker_ends_when_the_sweep_is_killed():
    sweep = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    worker = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                f"""
                import time
                from pipeline.sweep import forkserver
                forkserver.die_with({sweep.pid})
                print("watching", flush=True)
                time.sleep(120)
                """
            ),
        ],
        cwd=paths.SOURCE_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stdout.readline().strip() == "watching"
        assert worker.poll() is None  # alive while the sweep is
        sweep.kill()
        sweep.wait()
        # a hang detector, not a speed claim: an orphan would sleep its 120 s out
        assert worker.wait(timeout=30) == 1
    finally:
        for p in (sweep, worker):
            p.kill()
            p.wait()


def test_a_worker_started_after_the_sweep_ended_ends_at_once():
    sweep = subprocess.Popen([sys.executable, "-c", "pass"])
    sweep.wait()
    worker = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import time; from pipeline import workers; forkserver.die_with({sweep.pid}); "
            "time.sleep(120)",
        ],
        cwd=paths.SOURCE_ROOT,
        timeout=60,
    )
    assert worker.returncode == 1
