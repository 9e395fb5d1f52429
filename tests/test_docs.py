"""The plugin tutorial's code, as written in docs/writing-plugins.md, works."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _blocks(lang: str) -> list[str]:
    text = (ROOT / "docs" / "writing-plugins.md").read_text()
    return re.findall(rf"```{lang}\n(.*?)```", text, re.S)


def test_tutorial_plugin_loads_invokes_and_passes_the_conformance_suite(tmp_path):
    python = _blocks("python")
    provider = next(b for b in python if "class WeatherProvider" in b)
    plugin = next(
        b for b in python if "def gleitzeit_register_providers" in b and "WeatherProvider" in b
    )
    tests = [b for b in python if "TestWeatherConformance" in b or "async def test_today" in b]
    toml = next(b for b in _blocks("toml") if "gleitzeit-weather" in b)

    pkg = tmp_path / "gleitzeit_weather"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "provider.py").write_text(provider)
    (pkg / "plugin.py").write_text(plugin)
    (tmp_path / "tests").mkdir()
    for i, body in enumerate(tests):
        (tmp_path / "tests" / f"test_doc_{i}.py").write_text(body)
    # Installed as pip would leave it: the entry point from the doc's pyproject.toml.
    entry = re.search(r'weather = "([^"]+)"', toml).group(1)
    info = tmp_path / "gleitzeit_weather-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: gleitzeit-weather\nVersion: 0.1.0\n"
    )
    (info / "entry_points.txt").write_text(f"[gleitzeit.plugins]\nweather = {entry}\n")
    # The doc's pyproject.toml, as written: its pytest settings are the only ones (the
    # plugin lives outside this repository, so the repository's settings cannot help).
    (tmp_path / "pyproject.toml").write_text(toml)
    assert ROOT not in tmp_path.parents

    env = {k: v for k, v in os.environ.items() if not k.startswith("GLEITZEIT_")}
    env.update(PYTHONPATH=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path / "xdg"))

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, *args], cwd=tmp_path, env=env, capture_output=True, text=True
        )

    called = run(
        "-m",
        "gleitzeit",
        "providers",
        "invoke",
        "weather",
        "weather/today",
        "--args",
        '{"city": "Berlin"}',
        "--json",
    )
    assert called.returncode == 0, called.stderr
    assert '"result": "sunny, 21' in called.stdout
    tested = run("-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error::DeprecationWarning")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "warning" not in tested.stdout.lower(), tested.stdout
