"""Start-up from a normal install: `gleitzeit plugins list` and `gleitzeit --help` in a
venv made from wheels (host and plugins not editable), with 3 and with 1,000 installed
plugins (200 with --quick), against `python -c pass` of the same interpreter; and what
each installed plugin adds, against simonw's `llm` (`llm plugins` with 0 and with as
many plugins of its own). Every command's runs are interleaved with the others'.

The venvs are made once and cached (see startup_env.py); the first run takes a few
minutes to make them (pip installs 1,000 small wheels into each of two venvs).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import startup_env
from bench_util import Check, quick, summary, with_checks

NAME = "startup"
TARGET = (
    "`gleitzeit plugins list` (normal install, 3 plugins) / `python -c pass` <= 8; "
    "per-plugin load cost (1,000 vs 3 plugins) / llm's (1,000 vs 0) <= 1"
)
RUNS = 11
MANY = 1000  # installed plugins; 200 with --quick
_LIBRARIES = "import click, pluggy, yaml, importlib.metadata; from pydantic import BaseModel"
# The three real plugins' provider modules (pydantic settings and parameter models among
# them): what listing them imported while providers were registered as classes; with
# providers registered by reference, plugins list imports none of them.
_PLUGIN_MODULES = (
    "import gleitzeit_calculator.provider, gleitzeit_ollama.provider, gleitzeit_openai.provider"
)


def _env(home: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GLEITZEIT_", "PYTHON", "LLM_", "VIRTUAL_ENV"))
    }
    env["XDG_CONFIG_HOME"] = home  # no user config: the defaults, every plugin enabled
    env["LLM_USER_PATH"] = home
    return env


def _once(cmd: list[str], env: dict[str, str], cwd: str) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def run() -> dict:
    many = 200 if quick() else MANY
    runs = 5 if quick() else RUNS
    few_bin = startup_env.gleitzeit_venv(3)
    many_bin = startup_env.gleitzeit_venv(many)
    llm0_bin = startup_env.llm_venv(0)
    llm_many_bin = startup_env.llm_venv(many)
    commands = {
        "python_pass": [str(few_bin / "python"), "-c", "pass"],
        # The libraries the config, the plugins and the command line stand on (pydantic
        # for every model). For reference: plugins list itself imports only click and
        # pluggy of them (no config file, providers registered by reference).
        "libraries": [str(few_bin / "python"), "-c", _LIBRARIES],
        "plugin_modules": [str(few_bin / "python"), "-c", _PLUGIN_MODULES],
        "plugins_list_3": [str(few_bin / "gleitzeit"), "plugins", "list"],
        "help_3": [str(few_bin / "gleitzeit"), "--help"],
        f"plugins_list_{many}": [str(many_bin / "gleitzeit"), "plugins", "list"],
        f"help_{many}": [str(many_bin / "gleitzeit"), "--help"],
        "llm_python_pass": [str(llm0_bin / "python"), "-c", "pass"],
        "llm_plugins_0": [str(llm0_bin / "llm"), "plugins"],
        f"llm_plugins_{many}": [str(llm_many_bin / "llm"), "plugins"],
    }
    times: dict[str, list[float]] = {k: [] for k in commands}
    with tempfile.TemporaryDirectory() as home:
        env = _env(home)
        for cmd in commands.values():  # warm-up: files in the page cache, .pyc written
            _once(cmd, env, home)
        for _ in range(runs):
            for key, cmd in commands.items():
                times[key].append(_once(cmd, env, home))
    base = times["python_pass"]
    out: dict = {}
    for key, values in times.items():
        out[f"{key}_ms"] = summary([v * 1000 for v in values], 1)

    def over(key: str) -> list[float]:
        return summary([t / b for t, b in zip(times[key], base, strict=True)])

    out["libraries_over_pass"] = over("libraries")
    out["plugin_modules_over_pass"] = over("plugin_modules")
    out["plugins_list_over_pass"] = over("plugins_list_3")
    out["help_over_pass"] = over("help_3")
    out[f"plugins_list_{many}_over_pass"] = over(f"plugins_list_{many}")
    ours = [
        (m - f) / (many - 3) * 1e6
        for m, f in zip(times[f"plugins_list_{many}"], times["plugins_list_3"], strict=True)
    ]
    theirs = [
        (m - z) / many * 1e6
        for m, z in zip(times[f"llm_plugins_{many}"], times["llm_plugins_0"], strict=True)
    ]
    out["us_per_plugin"] = summary(ours, 1)
    out["llm_us_per_plugin"] = summary(theirs, 1)
    med_ours, med_theirs = statistics.median(ours), statistics.median(theirs)
    checks = [
        Check.of(
            "plugins list (3 plugins) / python -c pass", out["plugins_list_over_pass"], "<=", 8
        ),
        Check(
            f"per-plugin cost at {many} plugins / llm's at {many}",
            med_ours / med_theirs,
            "<=",
            1,
        ),
    ]
    return with_checks(out, checks)


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    print(run())
