"""Plugins found through entry points, loaded in isolation, listed and invoked."""

from __future__ import annotations

GREETER = """
from pydantic import BaseModel
import gleitzeit

class Who(BaseModel):
    name: str

class Greeter(gleitzeit.Provider):
    name = "greeter"
    kind = "tool"
    description = "Says hello"

    @gleitzeit.method("greet/hello", params=Who)
    async def hello(self, p):
        return gleitzeit.tool_result("hello", {"name": p.name}, f"Hello, {p.name}!")

@gleitzeit.hookimpl
def gleitzeit_register_providers(register):
    register(Greeter)
"""

RAISES_ON_IMPORT = """
raise RuntimeError("boom at import")
"""

BAD_HOOK_NAME = """
import gleitzeit

@gleitzeit.hookimpl
def gleitzeit_register_provider(register):
    pass
"""

BAD_HOOK_ARG = """
import gleitzeit

@gleitzeit.hookimpl
def gleitzeit_register_providers(register, colour):
    pass
"""

MARKS_IMPORT = """
import os, pathlib
pathlib.Path(os.environ["IMPORT_MARKER"]).write_text("imported")
import gleitzeit

@gleitzeit.hookimpl
def gleitzeit_register_routers(register):
    pass
"""


def _by_name(result):
    return {p["name"]: p for p in result.json()}


def test_installed_distribution_is_discovered_listed_and_invoked(site, run_cli):
    site.add_plugin("greeter", GREETER, version="2.3.1")

    listed = run_cli("plugins", "list", "--json")
    assert listed.code == 0, listed.err
    greeter = _by_name(listed)["greeter"]
    assert greeter == {
        "name": "greeter",
        "distribution": "gleitzeit-greeter",
        "version": "2.3.1",
        "status": "loaded",
        "builtin": False,
        "hooks": ["gleitzeit_register_providers"],
        "providers": ["greeter"],
        "transports": [],
        "routers": [],
        "health_checks": [],
        "error": None,
        "warnings": [],
    }

    table = run_cli("plugins", "list")
    assert "greeter" in table.out and "2.3.1" in table.out and "loaded" in table.out

    called = run_cli(
        "providers", "invoke", "greeter", "greet/hello", "--args", '{"name": "Ada"}', "--json"
    )
    assert called.code == 0, called.err
    assert called.json() == {
        "operation": "hello",
        "inputs": {"name": "Ada"},
        "result": "Hello, Ada!",
    }


def test_broken_plugins_fail_alone_and_the_calculator_still_works(site, run_cli):
    site.add_plugin("boom", RAISES_ON_IMPORT)
    site.add_plugin("typo", BAD_HOOK_NAME)
    site.add_plugin("badarg", BAD_HOOK_ARG)

    listed = run_cli("plugins", "list", "--json")
    assert listed.code == 0, listed.err
    plugins = _by_name(listed)
    assert plugins["boom"]["status"] == "failed"
    assert "RuntimeError: boom at import" in plugins["boom"]["error"]
    assert plugins["typo"]["status"] == "failed"
    assert "gleitzeit_register_provider" in plugins["typo"]["error"]
    assert "did you mean 'gleitzeit_register_providers'" in plugins["typo"]["error"]
    assert plugins["badarg"]["status"] == "failed"
    assert "colour" in plugins["badarg"]["error"]
    assert plugins["calculator"]["status"] == "loaded"

    human = run_cli("plugins", "list")
    assert "boom: import failed: RuntimeError: boom at import" in human.out

    calc = run_cli(
        "providers", "invoke", "calculator", "calc/add", "--args", '{"a": 5, "b": 3}', "--json"
    )
    assert calc.code == 0, calc.err
    assert calc.json()["result"] == 8


def test_strict_mode_turns_a_broken_plugin_into_a_failing_run(site, run_cli):
    site.add_plugin("boom", RAISES_ON_IMPORT)
    strict = {"GLEITZEIT_STRICT_PLUGINS": "1"}

    listed = run_cli("plugins", "list", env=strict)
    assert listed.code != 0
    assert "boom" in listed.err and "strict" in listed.err
    assert "Traceback" not in listed.err

    calc = run_cli(
        "providers", "invoke", "calculator", "calc/add", "--args", '{"a": 1, "b": 2}', env=strict
    )
    assert calc.code != 0


def test_disabled_plugin_is_never_imported(site, run_cli, tmp_path):
    marker = tmp_path / "imported.txt"
    site.add_plugin("watched", MARKS_IMPORT)
    (run_cli.workdir / "gleitzeit.yaml").write_text("plugins:\n  watched: false\n")

    listed = run_cli("plugins", "list", "--json", env={"IMPORT_MARKER": str(marker)})
    assert listed.code == 0, listed.err
    assert _by_name(listed)["watched"]["status"] == "disabled"
    assert not marker.exists()

    (run_cli.workdir / "gleitzeit.yaml").write_text("plugins:\n  watched: {enabled: true}\n")
    listed = run_cli("plugins", "list", "--json", env={"IMPORT_MARKER": str(marker)})
    assert _by_name(listed)["watched"]["status"] == "loaded"
    assert marker.read_text() == "imported"


def test_gleitzeit_plugins_env_limits_loading_and_empty_loads_none(site, run_cli, tmp_path):
    marker = tmp_path / "imported.txt"
    site.add_plugin("watched", MARKS_IMPORT)
    site.add_plugin("boom", RAISES_ON_IMPORT)
    env = {"IMPORT_MARKER": str(marker), "GLEITZEIT_PLUGINS": "calculator"}

    listed = _by_name(run_cli("plugins", "list", "--json", env=env))
    assert listed["calculator"]["status"] == "loaded"
    assert listed["boom"]["status"] == "disabled"
    assert listed["watched"]["status"] == "disabled"
    assert not marker.exists()

    none = _by_name(run_cli("plugins", "list", "--json", env={**env, "GLEITZEIT_PLUGINS": ""}))
    assert {p["status"] for p in none.values()} == {"disabled"}
    # The built-in echo provider still serves with every plugin switched off.
    echo = run_cli(
        "providers",
        "invoke",
        "echo",
        "llm/chat",
        "--json",
        "--args",
        '{"messages": [{"role": "user", "content": "still here"}]}',
        env={"GLEITZEIT_PLUGINS": ""},
    )
    assert echo.code == 0, echo.err
    assert echo.json()["response"] == "still here"


def test_builtins_are_listed_with_all(run_cli):
    listed = _by_name(run_cli("plugins", "list", "--json", "--all"))
    assert listed["echo"]["builtin"] is True
    assert listed["inprocess-transport"]["transports"] == ["inprocess"]
    assert listed["default-routers"]["routers"] == ["least-in-flight", "round-robin", "latency"]
    assert "echo" not in _by_name(run_cli("plugins", "list", "--json"))


def test_configured_plugin_that_is_not_installed_is_reported(run_cli):
    (run_cli.workdir / "gleitzeit.yaml").write_text("plugins:\n  calculater: {}\n")
    listed = _by_name(run_cli("plugins", "list", "--json"))
    assert listed["calculater"]["status"] == "failed"
    assert "did you mean 'calculator'" in listed["calculater"]["error"]


def test_the_scan_finds_what_importlib_metadata_finds(tmp_path, monkeypatch):
    """The folders on sys.path are read without importlib.metadata; a zip file on the
    path is left to it. Either way: the same entry points, from the same distributions."""
    import importlib.metadata
    import zipfile

    from gleitzeit import _discovery

    archive = tmp_path / "zipped.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("zipped_plugin.py", "")
        info = "gleitzeit_zipped-1.2.dist-info"
        zf.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: gleitzeit-zipped\n")
        zf.writestr(f"{info}/entry_points.txt", "[gleitzeit.plugins]\nzipped = zipped_plugin\n")
    monkeypatch.syspath_prepend(str(archive))
    monkeypatch.setattr(_discovery, "_scanned", None)
    ours = {(p.name, p.value, p.distribution) for p in _discovery.installed_plugins()}
    theirs = {
        (ep.name, ep.value, ep.dist.metadata["Name"] if ep.dist else None)
        for ep in importlib.metadata.entry_points(group=_discovery.GROUP)
    }
    assert ("zipped", "zipped_plugin", "gleitzeit-zipped") in ours
    assert ours == theirs
