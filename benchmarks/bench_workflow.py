"""What users run: `gleitzeit run FILE` end to end (a process of its own, parse and
SQLite persistence included) on workflows of 1,000 and 10,000 calculator calls in three
shapes (chains, independent, for_each), against a process making the same calls with
`host.invoke` in a plain loop; plus parse and run per task timed apart, and the peak RSS
of the 10,000-task run above the loop's. Rounds interleaved (loop, CLI, phases).

    python3 benchmarks/run.py workflow
    python3 benchmarks/bench_workflow.py            # the same, printed as a dict
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench_util import Check, quick, summary, with_checks

NAME = "workflow"
TARGET = (
    "`gleitzeit run` of 10,000 independent tasks / the loop's process <= 3; run of "
    "10,000 chained tasks (parse excluded) / the loop's calls <= 1.5; parse <= 60 us "
    "per task; peak RSS of a 10,000-task run - the loop's <= 25 MiB"
)
HERE = Path(__file__).resolve().parent
ROUNDS = 3
MiB = 1024 * 1024


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GLEITZEIT_")}
    env["XDG_CONFIG_HOME"] = env["XDG_DATA_HOME"] = str(home)  # no user config or runs
    env["PYTHONPATH"] = str(HERE) + os.pathsep + env.get("PYTHONPATH", "")
    return env


#: Runs a command and writes its wall seconds and peak RSS to a file. A child's peak RSS
#: starts at its parent's RSS when it forks (Linux keeps the high-water mark across
#: exec), so the command is started from this small process, not from the benchmark.
_LAUNCH = """
import os, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(f"{time.perf_counter() - start} {usage.ru_maxrss * 1024}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def _timed(cmd: list[str], env: dict[str, str], cwd: Path) -> tuple[float, int, str]:
    """Wall seconds, peak RSS in bytes and stdout of one process."""
    report = cwd / "launch.txt"
    launch = [sys.executable, "-S", "-c", _LAUNCH, str(report), *cmd]
    done = subprocess.run(
        launch, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited with {done.returncode}")
    seconds, rss = report.read_text().split()
    return float(seconds), int(rss), done.stdout.decode()


def _measure(tmp: Path, shape: str, n: int) -> dict[str, list[float]]:
    import workflow_peers

    flow = tmp / f"{shape}-{n}.yaml"
    flow.write_text(workflow_peers.workflow_text(shape, n))
    env = _env(tmp)
    peers = str(HERE / "workflow_peers.py")
    db = tmp / "runs.sqlite"
    keys = ("loop_s", "loop_calls_s", "loop_rss", "cli_s", "cli_rss", "parse_s", "run_s")
    got: dict[str, list[float]] = {k: [] for k in keys}

    def fresh_db() -> str:
        for path in tmp.glob("runs.sqlite*"):
            path.unlink()
        return str(db)

    for _ in range(ROUNDS):  # loop, CLI, phases; loop, CLI, phases; ...
        seconds, rss, out = _timed([sys.executable, peers, "loop", shape, str(n)], env, tmp)
        got["loop_s"].append(seconds)
        got["loop_rss"].append(rss)
        got["loop_calls_s"].append(json.loads(out)["run_s"])
        cli = [sys.executable, "-m", "gleitzeit", "run", str(flow), "--db", fresh_db()]
        seconds, rss, _ = _timed(cli, env, tmp)
        got["cli_s"].append(seconds)
        got["cli_rss"].append(rss)
        phases = [sys.executable, peers, "phases", shape, str(n), str(flow), fresh_db()]
        out = json.loads(_timed(phases, env, tmp)[2])
        got["parse_s"].append(out["parse_s"])
        got["run_s"].append(out["run_s"])
    return got


def _median(values: list[float]) -> float:
    return statistics.median(values)


def run() -> dict:
    import workflow_peers

    sizes = (1_000,) if quick() else (1_000, 10_000)
    big = sizes[-1]
    out: dict = {"sizes": list(sizes)}
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            for shape in workflow_peers.SHAPES:
                got = _measure(Path(tmp), shape, n)
                key = f"{shape}_{n}"
                cli = [c / lo for c, lo in zip(got["cli_s"], got["loop_s"], strict=True)]
                run_ratio = [
                    r / lo for r, lo in zip(got["run_s"], got["loop_calls_s"], strict=True)
                ]
                rss = [
                    (c - lo) / MiB for c, lo in zip(got["cli_rss"], got["loop_rss"], strict=True)
                ]
                out[key] = {
                    "cli_s": summary(got["cli_s"]),
                    "loop_s": summary(got["loop_s"]),
                    "cli_over_loop": summary(cli),
                    "run_us_per_task": summary([s / n * 1e6 for s in got["run_s"]]),
                    "loop_us_per_call": summary([s / n * 1e6 for s in got["loop_calls_s"]]),
                    "run_over_loop": summary(run_ratio),
                    "parse_us_per_task": summary([s / n * 1e6 for s in got["parse_s"]]),
                    "rss_above_loop_mib": summary(rss),
                }
    at = f"{big:,} tasks" + (" (quick: 10,000 skipped)" if quick() else "")

    def worst(field: str) -> list[float]:
        return max((out[f"{s}_{big}"][field] for s in workflow_peers.SHAPES), key=lambda v: v[0])

    checks = [
        Check.of(
            f"gleitzeit run / loop process, {at} independent",
            out[f"independent_{big}"]["cli_over_loop"],
            "<=",
            3,
        ),
        Check.of(
            f"run (parse excluded) / loop's calls, {at} in chains",
            out[f"chains_{big}"]["run_over_loop"],
            "<=",
            1.5,
        ),
        Check.of(f"parse us per task, {at}, slowest shape", worst("parse_us_per_task"), "<=", 60),
        Check.of(
            f"peak RSS above the loop's (MiB), {at}, largest", worst("rss_above_loop_mib"), "<=", 25
        ),
    ]
    return with_checks(out, checks)


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
