"""`gleitzeit plugins list` start-up time against a bare `python -c pass`."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time

NAME = "startup"
TARGET = "median `gleitzeit plugins list` / median `python -c pass` <= 12"
RUNS = 15


def _median_seconds(cmd: list[str], env: dict[str, str], cwd: str) -> float:
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        subprocess.run(cmd, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run() -> dict:
    with tempfile.TemporaryDirectory() as cwd:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GLEITZEIT_")}
        env["XDG_CONFIG_HOME"] = cwd  # no user config: the defaults, every plugin enabled
        # One warm-up each, so both sides read files from the page cache.
        subprocess.run(
            [sys.executable, "-m", "gleitzeit", "plugins", "list"],
            env=env,
            cwd=cwd,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        baseline = _median_seconds([sys.executable, "-c", "pass"], env, cwd)
        listing = _median_seconds([sys.executable, "-m", "gleitzeit", "plugins", "list"], env, cwd)
    ratio = listing / baseline
    return {
        "python_pass_ms": baseline * 1000,
        "plugins_list_ms": listing * 1000,
        "ratio": ratio,
        "target_ok": ratio <= 12,
    }
