"""`gleitzeit plugins new`: the generated plugin installs, lists, invokes and passes its
own tests unchanged; `plugins install|uninstall|info` work on it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("GLEITZEIT_") and k != "PYTHONPATH"
    }
    env.update(XDG_CONFIG_HOME=str(tmp_path / "xdg"), XDG_DATA_HOME=str(tmp_path / "data"), **extra)
    return env


def _run(python: str, *args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [python, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("kind", ["tool", "llm", "extension"])
def test_generated_plugin_passes_its_own_tests(tmp_path, kind):
    env = _env(tmp_path)
    made = _run(
        sys.executable,
        "-m",
        "gleitzeit",
        "plugins",
        "new",
        "sample",
        "--kind",
        kind,
        "--dir",
        str(tmp_path),
        cwd=tmp_path,
        env=env,
    )
    assert made.returncode == 0, made.stderr
    root = tmp_path / "gleitzeit-sample"
    assert {p.name for p in root.iterdir()} == {
        "pyproject.toml",
        "README.md",
        "gleitzeit_sample",
        "tests",
    }
    tests = _run(
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        cwd=root,
        env={**env, "PYTHONPATH": str(root)},
    )
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "passed" in tests.stdout and "failed" not in tests.stdout
    assert "Warning" not in tests.stdout, tests.stdout  # no PytestDeprecationWarning


def test_scaffold_install_list_info_invoke_test_uninstall(tmp_path):
    env = _env(tmp_path)
    assert (
        _run(
            sys.executable,
            "-m",
            "gleitzeit",
            "providers",
            "create-template",
            "--type",
            "tool",
            "--name",
            "weather",
            "--dir",
            str(tmp_path),
            cwd=tmp_path,
            env=env,
        ).returncode
        == 0
    )
    root = tmp_path / "gleitzeit-weather"
    # A throwaway environment on top of this one, so installing touches nothing else.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = str(venv / "bin" / "python")
    # It sees this environment's packages (gleitzeit, pip, setuptools), whether this one
    # is the system's or a virtualenv, while what it installs stays in it.
    child_site = subprocess.run(
        [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    parents = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
    (Path(child_site) / "_parent_env.pth").write_text(
        "".join(f"import site; site.addsitedir({p!r})\n" for p in parents)
    )

    installed = _run(
        py,
        "-m",
        "gleitzeit",
        "plugins",
        "install",
        "-e",
        ".",
        "--",
        "--no-build-isolation",
        "--no-deps",
        "--no-index",
        cwd=root,
        env=env,
    )
    assert installed.returncode == 0, installed.stderr
    assert "+ weather 0.1.0 (loaded)" in installed.stdout

    listed = {
        p["name"]: p
        for p in json.loads(
            _run(py, "-m", "gleitzeit", "plugins", "list", "--json", cwd=root, env=env).stdout
        )
    }
    assert (
        listed["weather"]["status"] == "loaded"
        and listed["weather"]["distribution"] == "gleitzeit-weather"
    )

    info = json.loads(
        _run(
            py, "-m", "gleitzeit", "plugins", "info", "weather", "--json", cwd=root, env=env
        ).stdout
    )
    assert info["hooks"] == ["gleitzeit_config_schema", "gleitzeit_register_providers"]
    greet = info["provider_details"]["weather"]["methods"]["weather/greet"]
    assert greet["params_schema"]["required"] == ["name"]
    assert info["config_schema"]["properties"]["greeting"]["default"] == "Hello"

    called = _run(
        py,
        "-m",
        "gleitzeit",
        "providers",
        "invoke",
        "weather",
        "weather/greet",
        "--args",
        '{"name": "Ada"}',
        "--json",
        cwd=root,
        env=env,
    )
    assert json.loads(called.stdout)["result"] == "Hello, Ada!", called.stderr

    (tmp_path / "xdg" / "gleitzeit").mkdir(parents=True)
    (tmp_path / "xdg" / "gleitzeit" / "gleitzeit.yaml").write_text(
        "plugins:\n  weather: {greeting: Moin}\n"
    )
    configured = _run(
        py,
        "-m",
        "gleitzeit",
        "providers",
        "invoke",
        "weather",
        "weather/greet",
        "--args",
        '{"name": "Ada"}',
        "--json",
        cwd=root,
        env=env,
    )
    assert json.loads(configured.stdout)["result"] == "Moin, Ada!"

    tests = _run(py, "-m", "pytest", "-q", "-p", "no:cacheprovider", cwd=root, env=env)
    assert tests.returncode == 0, tests.stdout

    removed = _run(py, "-m", "gleitzeit", "plugins", "uninstall", "weather", cwd=root, env=env)
    assert removed.returncode == 0, removed.stderr
    assert "- weather 0.1.0 (gleitzeit.yaml still configures it)" in removed.stdout


def test_new_refuses_bad_names_and_existing_folders(run_cli):
    bad = run_cli("plugins", "new", "Bad Name")
    assert bad.code == 2 and "lower-case" in bad.err
    assert run_cli("plugins", "new", "twice").code == 0
    again = run_cli("plugins", "new", "twice")
    assert again.code == 2 and "not empty" in again.err


def test_info_of_a_builtin_and_of_an_unknown_plugin(run_cli):
    echo = run_cli("plugins", "info", "echo", "--json").json()
    assert echo["builtin"] is True and "llm/chat" in echo["provider_details"]["echo"]["methods"]
    human = run_cli("plugins", "info", "calculator")
    assert "calc/log(x, base?)" in human.out and "precision" in human.out
    unknown = run_cli("plugins", "info", "calculater")
    assert unknown.code == 1 and "did you mean 'calculator'" in unknown.err
