"""Types are part of the plugin authors' interface: mypy checks the packages, and a
plugin author's code type-checks against the *installed* package (py.typed)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = [
    "gleitzeit",
    "plugins/gleitzeit-calculator/gleitzeit_calculator",
    "plugins/gleitzeit-ollama/gleitzeit_ollama",
    "plugins/gleitzeit-openai/gleitzeit_openai",
    "plugins/gleitzeit-mcp/gleitzeit_mcp",
]

AUTHOR = """
from typing import Any

import gleitzeit
from pydantic import BaseModel


class City(BaseModel):
    city: str


class Weather(gleitzeit.Provider):
    name = "weather"
    kind = "tool"

    @gleitzeit.method("weather/today", params=City)
    async def today(self, params: City) -> dict[str, Any]:
        return {"result": params.city}


@gleitzeit.hookimpl
def gleitzeit_register_providers(register: Any, settings: Any) -> None:
    register(Weather)


async def main() -> None:
    async with gleitzeit.Host() as host:
        result = await host.invoke("weather/today", {"city": "Berlin"})
        reveal_type(host.invoke)
        reveal_type(result)
        client = gleitzeit.Client("http://127.0.0.1:8000")
        reveal_type(client.stream)
"""


def _mypy(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MYPYPATH", "PYTHONPATH")}
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--no-incremental", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_mypy_finds_no_errors_in_the_host_and_the_plugins(tmp_path):
    proc = _mypy("--cache-dir", str(tmp_path / "cache"), *PACKAGES, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Success: no issues found" in proc.stdout


def test_a_plugin_authors_module_type_checks_against_the_installed_package(tmp_path):
    # A real (non-editable) install of the host into an environment of its own, as a
    # plugin author gets from pip; the environment borrows this one's dependencies.
    env_dir = tmp_path / "env"
    venv.EnvBuilder(system_site_packages=True, with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
        + ["--no-build-isolation", "--target", str(tmp_path / "site"), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr
    assert (tmp_path / "site" / "gleitzeit" / "py.typed").exists()
    # The installed copy goes first on the environment's path.
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(site).mkdir(parents=True, exist_ok=True)
    (Path(site) / "00-gleitzeit.pth").write_text(str(tmp_path / "site") + "\n")
    author = tmp_path / "author"
    author.mkdir()
    (author / "weather_plugin.py").write_text(textwrap.dedent(AUTHOR))
    proc = _mypy(
        "--python-executable",
        str(python),
        "--cache-dir",
        str(tmp_path / "cache"),
        "weather_plugin.py",
        cwd=author,
    )
    out = proc.stdout
    assert "import-untyped" not in out and "import-not-found" not in out, out
    notes = [n.replace("builtins.", "") for n in re.findall(r'Revealed type is "(.*)"', out)]
    assert len(notes) == 3, out
    invoke, result, stream = notes
    assert invoke.startswith("def (method: str, params: dict[str, Any] | None"), invoke
    assert "capability: str | None" in invoke, invoke
    assert invoke.endswith("Coroutine[Any, Any, dict[str, Any]]"), invoke
    assert result == "dict[str, Any]", result
    assert "AsyncIterator[dict[str, Any]]" in stream, stream
    assert "error:" not in out, out
