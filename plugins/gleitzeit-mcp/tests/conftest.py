"""Fixtures of the MCP plugin's tests."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # the tests' own helper modules

from mcp_demo import HttpDemo  # noqa: E402


@pytest.fixture
async def http_demo() -> AsyncIterator[HttpDemo]:
    demo = HttpDemo()
    await demo.start()
    try:
        yield demo
    finally:
        await demo.kill()


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """Environment for `python -m gleitzeit` subprocesses: only the calculator and mcp
    plugins, and a config file of the test's own."""
    config = tmp_path / "gleitzeit.yaml"
    config.write_text("plugins: {}\n")
    env = dict(os.environ)
    env.update(GLEITZEIT_PLUGINS="calculator,mcp", GLEITZEIT_CONFIG=str(config))
    env.pop("GLEITZEIT_TOKEN", None)
    return env
