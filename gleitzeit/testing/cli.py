"""Run the ``gleitzeit`` command in a fresh process, as a user would, from a test::

    from gleitzeit.testing.cli import CliRunner

    @pytest.fixture
    def run_cli(tmp_path):
        return CliRunner(tmp_path / "work")

    def test_models(run_cli):
        result = run_cli("providers", "list", "--json", env={"OLLAMA_HOST": url})
        assert result.code == 0, result.err

The process sees the installed plugins, no user configuration (its XDG directories
are the runner's own) and none of the caller's ``GLEITZEIT_*`` variables; it runs in
``workdir``, where a test may write a ``gleitzeit.yaml``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["CliResult", "CliRunner"]


@dataclass
class CliResult:
    """What one run of the command left: exit code, standard output and error."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        """Standard output, parsed as JSON (for ``--json`` commands)."""
        return json.loads(self.out)


class CliRunner:
    """Runs ``python -m gleitzeit ARGS`` in ``workdir`` with a clean environment."""

    def __init__(self, workdir: Path, env: dict[str, str] | None = None) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        base = {k: v for k, v in os.environ.items() if not k.startswith("GLEITZEIT_")}
        base["XDG_CONFIG_HOME"] = str(workdir / ".xdg-config")
        base["XDG_CACHE_HOME"] = str(workdir / ".xdg-cache")
        self.env = {**base, **(env or {})}

    def __call__(
        self, *args: str, env: dict[str, str] | None = None, input: str | None = None
    ) -> CliResult:
        proc = subprocess.run(
            [sys.executable, "-m", "gleitzeit", *args],
            cwd=self.workdir,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            input=input,
            timeout=120,
        )
        return CliResult(proc.returncode, proc.stdout, proc.stderr)
