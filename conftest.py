"""Shared helpers: run the real CLI in a subprocess, and make real distributions.

A distribution here is a package directory plus a ``.dist-info`` folder with
``METADATA`` and ``entry_points.txt`` on a path entry: exactly what pip leaves behind,
so discovery goes through importlib.metadata as it does for users.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    def json(self):
        return json.loads(self.out)


class Site:
    """A directory on PYTHONPATH holding fake-installed distributions."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    def add_plugin(
        self,
        name: str,
        code: str,
        *,
        dist: str | None = None,
        version: str = "1.0",
        module: str | None = None,
    ) -> Path:
        module = module or f"gz_{name.replace('-', '_')}"
        dist = dist or f"gleitzeit-{name}"
        (self.root / f"{module}.py").write_text(textwrap.dedent(code), encoding="utf-8")
        info = self.root / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(
            f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n", encoding="utf-8"
        )
        (info / "entry_points.txt").write_text(
            f"[gleitzeit.plugins]\n{name} = {module}\n", encoding="utf-8"
        )
        (info / "RECORD").write_text("", encoding="utf-8")
        return self.root / f"{module}.py"


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return Site(tmp_path / "site")


@pytest.fixture
def cli_env(tmp_path: Path, site: Site) -> dict[str, str]:
    """An environment with no user config, its own caches, and the fake site on the path."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("GLEITZEIT_") and k not in ("PYTHONPATH",)
    }
    env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg-config")
    env["XDG_CACHE_HOME"] = str(tmp_path / "xdg-cache")
    env["PYTHONPATH"] = str(site.root)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


@pytest.fixture
def run_cli(tmp_path: Path, cli_env: dict[str, str]):
    """Run ``gleitzeit ARGS`` as a user would, in a fresh process."""
    workdir = tmp_path / "work"
    workdir.mkdir(exist_ok=True)

    def run(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> CliResult:
        proc = subprocess.run(
            [sys.executable, "-m", "gleitzeit", *args],
            cwd=workdir,
            env={**cli_env, **(env or {})},
            capture_output=True,
            text=True,
            input=input,
            timeout=120,
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr)

    run.workdir = workdir
    return run


@pytest.fixture(autouse=True)
def _isolated_python_tasks():
    """@gleitzeit.task registers globally; keep each test's registrations to itself."""
    from gleitzeit import tasks

    saved = dict(tasks.REGISTRY)
    yield
    added = {f.__module__ for name, f in tasks.REGISTRY.items() if saved.get(name) is not f}
    for module in added:  # so the next import registers them again
        sys.modules.pop(module, None)
    tasks.REGISTRY.clear()
    tasks.REGISTRY.update(saved)
