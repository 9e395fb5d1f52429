"""Each plugin as it is published: its sdist carries its tests and their pytest settings,
and they pass from the unpacked archive; its wheel carries the package and py.typed, and
no tests or fake servers.

Built offline with setuptools' PEP 517 hooks (what ``python -m build`` calls), from a
copy of each plugin's folder; the wheel is built from the unpacked sdist, as pip does,
and installed with ``pip --no-index`` ahead of the development install on the path.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = {
    "gleitzeit-calculator": "gleitzeit_calculator",
    "gleitzeit-ollama": "gleitzeit_ollama",
    "gleitzeit-openai": "gleitzeit_openai",
    "gleitzeit-mcp": "gleitzeit_mcp",
}


def _run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    """``python ARGS``; the output. A first argument naming a file runs that instead."""
    argv = list(args) if Path(args[0]).is_file() else [sys.executable, *args]
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc.stdout


def _build(kind: str, source: Path, out: Path) -> Path:
    out.mkdir()
    _run(
        "-c",
        f"from setuptools import build_meta; build_meta.build_{kind}({str(out)!r})",
        cwd=source,
    )
    (built,) = out.iterdir()
    return built


@pytest.mark.parametrize("dist", sorted(PLUGINS))
def test_the_sdist_carries_the_tests_they_pass_from_it_and_the_wheel_has_no_test_code(
    dist, tmp_path
):
    package = PLUGINS[dist]
    source = tmp_path / "source"
    shutil.copytree(
        ROOT / "plugins" / dist,
        source,
        ignore=shutil.ignore_patterns("*.egg-info", "__pycache__", "build", "dist"),
    )
    sdist = _build("sdist", source, tmp_path / "sdist")
    with tarfile.open(sdist) as archive:
        archive.extractall(tmp_path / "unpacked", filter="data")
    (unpacked,) = (tmp_path / "unpacked").iterdir()
    assert "[tool.pytest.ini_options]" in (unpacked / "pyproject.toml").read_text()
    assert list((unpacked / "tests").glob("test_*.py"))

    wheel = _build("wheel", unpacked, tmp_path / "wheel")
    names = zipfile.ZipFile(wheel).namelist()
    modules = [n for n in names if n.endswith(".py")]
    assert f"{package}/py.typed" in names
    assert all(n.startswith(f"{package}/") for n in modules), modules
    assert not [n for n in modules if "fake" in n or "test" in n.rsplit("/", 1)[-1]], modules

    site = tmp_path / "site"
    _run(
        "-m",
        "pip",
        "install",
        "--quiet",
        "--no-deps",
        "--no-index",
        "--target",
        str(site),
        str(wheel),
        cwd=tmp_path,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("GLEITZEIT_")}
    env.update(
        PYTHONPATH=str(site),
        PYTHONDONTWRITEBYTECODE="1",
        XDG_CONFIG_HOME=str(tmp_path / "xdg-config"),
        XDG_CACHE_HOME=str(tmp_path / "xdg-cache"),
    )
    where = _run("-c", f"import {package}; print({package}.__file__)", cwd=tmp_path, env=env)
    assert where.startswith(str(site)), where  # the installed wheel, not the checkout
    # Not plain `python -m pytest`, which would put the unpacked source first on the
    # path: the tests import the package the wheel installed.
    script = Path(sys.executable).parent / "pytest"
    if script.is_file():
        out = _run(str(script), "-q", cwd=unpacked, env=env)
    else:
        out = _run("-P", "-m", "pytest", "-q", cwd=unpacked, env=env)
    assert " passed" in out and "failed" not in out and "error" not in out, out[-2000:]
