"""Providers registered by reference ("module:Class"): imported when first needed, and
what the host says when a reference is wrong. And what listing plugins leaves alone."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

import gleitzeit
from gleitzeit.cli import cli
from gleitzeit.config import Config, parse_config
from gleitzeit.host import Host
from gleitzeit.plugins import Plugins
from gleitzeit.testing import registered_plugin

PROVIDER = """
import gleitzeit
from pydantic import BaseModel


class Settings(BaseModel):
    greeting: str = "hi"


class Greeter(gleitzeit.Provider):
    name = "greeter"
    kind = "tool"
    Settings = Settings

    @gleitzeit.method("greet/say")
    async def say(self, params: dict) -> dict:
        return {"result": self.settings.greeting}
"""


@pytest.fixture
def module(tmp_path, monkeypatch):
    """Write a module (a fresh name per test) on sys.path; returns a function that writes
    ``source`` into it and returns its name."""
    monkeypatch.syspath_prepend(str(tmp_path))
    written: list[str] = []

    def write(source: str = PROVIDER) -> str:
        name = f"refprov_{os.urandom(4).hex()}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        written.append(name)
        return name

    yield write
    for name in written:
        sys.modules.pop(name, None)


def _plugin(ref: str, **kwargs: object) -> object:
    class Plugin:
        @gleitzeit.hookimpl
        def gleitzeit_register_providers(self, register):
            register(ref, **kwargs)

    return Plugin()


def _load(plugin: object, config: Config | None = None, *, lazy: bool = True) -> Plugins:
    return Plugins.load(config or Config(), installed=False, extra=[("p", plugin)], lazy=lazy)


def test_a_reference_is_listed_by_its_name_and_imported_only_when_needed(module):
    name = module()
    plugins = _load(_plugin(f"{name}:Greeter", name="greeter"))
    rec = plugins.records["p"]
    assert rec.status == "loaded" and rec.providers == ["greeter"]
    assert name not in sys.modules
    assert not plugins.provider_types["greeter"].imported
    plugins.settle()
    cls = plugins.provider_types["greeter"].cls
    assert cls is sys.modules[name].Greeter
    assert rec.status == "loaded" and rec.settings_schema is sys.modules[name].Settings


def test_loading_without_lazy_imports_the_class_at_once(module):
    name = module()
    plugins = _load(_plugin(f"{name}:Greeter", name="greeter"), lazy=False)
    assert plugins.provider_types["greeter"].imported
    assert plugins.records["p"].settings.greeting == "hi"


async def test_the_host_builds_a_provider_registered_by_reference(module):
    name = module()
    config = parse_config("plugins:\n  p:\n    greeting: hello\n")
    plugins = _load(_plugin(f"{name}:Greeter", name="greeter"), config)
    async with Host(config, plugins=plugins) as host:
        assert (await host.invoke("greet/say"))["result"] == "hello"


def test_a_reference_to_a_missing_module_fails_the_plugin_when_it_loads():
    plugins = _load(_plugin("no_such_module_here:Greeter", name="greeter"))
    rec = plugins.records["p"]
    assert rec.status == "failed"
    assert "no module named 'no_such_module_here'" in rec.error
    assert "greeter" not in plugins.provider_types


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("not a reference",), "expected a provider class or 'module:Class'"),
        (("os:path",), "needs the provider's name"),
    ],
)
def test_a_malformed_registration_fails_the_plugin(args, message):
    class Plugin:
        @gleitzeit.hookimpl
        def gleitzeit_register_providers(self, register):
            register(*args)

    rec = _load(Plugin()).records["p"]
    assert rec.status == "failed" and message in rec.error


async def test_a_module_that_fails_to_import_fails_the_plugin_when_needed(module):
    name = module("raise ZeroDivisionError('boom')\n")
    plugins = _load(_plugin(f"{name}:Greeter", name="greeter"))
    assert plugins.records["p"].status == "loaded"  # listing does not import it
    async with Host(Config(), plugins=plugins):
        pass
    rec = plugins.records["p"]
    assert rec.status == "failed"
    assert f"provider 'greeter': cannot import {name}:Greeter: ZeroDivisionError: boom" in (
        rec.error
    )
    assert "greeter" not in plugins.provider_types


async def test_a_call_for_a_provider_whose_plugin_failed_says_why(module):
    name = module()
    plugins = _load(_plugin(f"{name}:Nope", name="greeter"))
    async with Host(Config(), plugins=plugins) as host:
        with pytest.raises(gleitzeit.RoutingError, match="No provider named 'greeter'") as by_name:
            await host.invoke("greet/say", {}, provider="greeter")
        with pytest.raises(gleitzeit.MethodNotFoundError) as by_method:
            await host.invoke("greet/say", {})
    for failed in (by_name.value, by_method.value):
        assert f"plugin p failed: provider 'greeter': cannot import {name}:Nope" in str(failed.hint)


def test_a_class_whose_name_differs_from_the_declared_one_fails_the_plugin(module):
    name = module()
    plugins = _load(_plugin(f"{name}:Greeter", name="welcomer"))
    plugins.settle()
    rec = plugins.records["p"]
    assert rec.status == "failed"
    assert f"provider 'welcomer' was registered as {name}:Greeter, whose name is 'greeter'" in (
        rec.error
    )


def test_a_missing_class_fails_the_plugin_with_the_attribute_error(module):
    name = module()
    plugins = _load(_plugin(f"{name}:Nope", name="greeter"))
    plugins.settle()
    rec = plugins.records["p"]
    assert rec.status == "failed" and "AttributeError" in rec.error
    assert rec.error.endswith("; its provider classes: Greeter")


@pytest.mark.parametrize(
    ("wrong", "said"),
    [
        ("Greter", "; did you mean 'Greeter'?"),
        ("greeter", "; did you mean 'Greeter'?"),
        ("Settings.Nope", "; Settings has no provider class"),
    ],
)
def test_a_misspelt_class_is_named_with_what_the_module_has(module, wrong, said):
    name = module()
    plugins = _load(_plugin(f"{name}:{wrong}", name="greeter"))
    plugins.settle()
    rec = plugins.records["p"]
    assert rec.status == "failed"
    assert f"cannot import {name}:{wrong}: AttributeError" in rec.error
    assert rec.error.endswith(said)


def test_strict_mode_imports_every_reference_at_load(module):
    name = module("raise ZeroDivisionError('boom')\n")
    with pytest.raises(gleitzeit.PluginError, match="ZeroDivisionError"):
        Plugins.load(
            Config(), installed=False, extra=[("p", _plugin(f"{name}:G", name="g"))], strict=True
        )


def test_plugins_list_shows_a_bad_reference_as_failed_and_a_late_one_as_loaded(
    module, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    broken = module("raise ZeroDivisionError('boom')\n")
    with (
        registered_plugin(_plugin("no_such_module_here:Greeter", name="missing"), "missing"),
        registered_plugin(_plugin(f"{broken}:Greeter", name="broken"), "broken"),
    ):
        result = CliRunner().invoke(cli, ["plugins", "list"])
        info = CliRunner().invoke(cli, ["plugins", "info", "broken"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert any(line.split()[:3] == ["missing", "-", "failed"] for line in lines), result.output
    assert any(line.split()[:4] == ["broken", "-", "loaded", "broken"] for line in lines)
    assert "register('no_such_module_here:Greeter'): no module named" in result.output
    # plugins info needs the class: the failure shows there, with the import error
    assert "failed" in info.output and "ZeroDivisionError: boom" in info.output


def test_listing_calls_no_settings_hook_without_a_section_to_validate(module):
    name = module()
    calls = []

    class Plugin:
        @gleitzeit.hookimpl
        def gleitzeit_config_schema(self):
            calls.append("schema")
            from pydantic import BaseModel

            class S(BaseModel):
                level: int = 1

            return S

        @gleitzeit.hookimpl
        def gleitzeit_register_providers(self, register):
            register(f"{name}:Greeter", name="greeter")

    lazily = _load(Plugin())
    assert lazily.records["p"].status == "loaded" and calls == []
    assert lazily.records["p"].settings.level == 1 and calls == ["schema"]
    _load(Plugin(), parse_config("plugins:\n  p:\n    level: 2\n"))
    assert calls == ["schema", "schema"]  # a section to validate: validated at load


def test_a_register_hook_that_takes_the_settings_gets_them_when_loading_lazily():
    seen = []

    class Plugin:
        @gleitzeit.hookimpl
        def gleitzeit_config_schema(self):
            from pydantic import BaseModel

            class S(BaseModel):
                level: int = 1

            return S

        @gleitzeit.hookimpl
        def gleitzeit_register_providers(self, register, settings):
            seen.append(settings.level)

    assert _load(Plugin()).records["p"].status == "loaded"
    assert seen == [1]


def _run(code: str, tmp_path: Path) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GLEITZEIT_")}
    env.update(XDG_CONFIG_HOME=str(tmp_path), GLEITZEIT_PLUGINS="calculator,ollama,openai")
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_import_gleitzeit_imports_no_pydantic(tmp_path):
    out = _run("import sys, gleitzeit; print('pydantic' in sys.modules)", tmp_path)
    assert out.strip() == "False"


def test_plugins_list_imports_no_pydantic_nor_provider_modules(tmp_path):
    code = (
        "import sys\n"
        "from gleitzeit.cli import main\n"
        "try:\n    main(['plugins', 'list'])\n"
        "except SystemExit:\n    pass\n"
        "print(sorted(m for m in sys.modules if m == 'pydantic' or m.endswith('.provider')))\n"
    )
    out = _run(code, tmp_path)
    rows = [line.split() for line in out.splitlines()]
    assert ["calculator", "0.1.0", "loaded", "calculator"] in rows, out
    assert out.strip().splitlines()[-1] == "[]"


def test_an_attribute_error_while_importing_the_module_is_reported_as_it_is(module):
    name = module("raise AttributeError('inside the module')\n")
    plugins = _load(_plugin(f"{name}:Greeter", name="greeter"))
    plugins.settle()
    rec = plugins.records["p"]
    assert rec.status == "failed"
    assert rec.error.endswith(f"cannot import {name}:Greeter: AttributeError: inside the module")
