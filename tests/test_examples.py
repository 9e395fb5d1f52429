"""Every example runs offline, as the README promises."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gleitzeit.config import Config
from gleitzeit.host import Host
from gleitzeit.plugins import Plugins
from gleitzeit.workflows import Engine, load_workflow
from gleitzeit.workflows.runner import check_methods, import_task_modules

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
async def test_example_workflow_completes(path, monkeypatch):
    monkeypatch.chdir(ROOT)
    flow = load_workflow(path)
    import_task_modules(flow)
    config = Config()
    async with Host(config, plugins=Plugins.load(config), lazy=True) as host:
        await check_methods(flow, host)
        result = await Engine(host).run(flow)
    assert result.status == "completed", {t: s.error for t, s in result.tasks.items()}


def test_examples_cover_calculator_echo_python_tasks_and_fan_out():
    text = "\n".join(p.read_text() for p in EXAMPLES)
    for needle in ("calc/", "llm/chat", "python/", "for_each", "glob"):
        assert needle in text


def test_demo_script_runs():
    out = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    assert "(5 + 3) * 2 = 16" in out.stdout
