"""Fixtures of the plugin's tests: they run from the repository and from the unpacked
sdist alike, so nothing here comes from the repository's own conftest."""

from __future__ import annotations

from pathlib import Path

import pytest

from gleitzeit.testing.cli import CliRunner


@pytest.fixture
def run_cli(tmp_path: Path) -> CliRunner:
    """``gleitzeit ARGS`` in a fresh process, as a user would run it."""
    return CliRunner(tmp_path / "work")
