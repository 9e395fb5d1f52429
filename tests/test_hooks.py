"""One test per hook (the guard at the bottom fails when a hook has no test or no doc)."""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from pydantic import BaseModel

import gleitzeit
from gleitzeit import hookspecs
from gleitzeit.config import Config, parse_config
from gleitzeit.host import Host
from gleitzeit.plugins import PluginRecord, Plugins

ROOT = Path(__file__).resolve().parents[1]


class Ping(gleitzeit.Provider):
    name = "ping"
    kind = "tool"

    @gleitzeit.method("ping/ping")
    async def ping(self, params):
        return {"result": "pong", "settings": self.settings}


def _plugin(**hooks):
    """A plugin object whose hook implementations are the given functions."""
    ns = type("Plugin", (), {})()
    for name, fn in hooks.items():
        setattr(ns, name, gleitzeit.hookimpl(fn))
    return ns


async def test_hook_gleitzeit_register_providers():
    seen = {}

    def gleitzeit_register_providers(register, settings):
        seen["settings"] = settings
        register(Ping)

    plugins = Plugins.load(
        Config(),
        installed=False,
        extra=[("p", _plugin(gleitzeit_register_providers=gleitzeit_register_providers))],
    )
    assert plugins.records["p"].providers == ["ping"]
    async with Host(Config(), plugins=plugins) as host:
        assert (await host.invoke("ping/ping"))["result"] == "pong"


def test_hook_gleitzeit_register_providers_rejects_what_is_not_a_provider():
    def gleitzeit_register_providers(register):
        register(object)

    plugins = Plugins.load(
        Config(),
        installed=False,
        extra=[("p", _plugin(gleitzeit_register_providers=gleitzeit_register_providers))],
    )
    rec = plugins.records["p"]
    assert rec.status == "failed"
    assert "expected a gleitzeit.Provider subclass" in rec.error


async def test_hook_gleitzeit_register_transports():
    events = []

    class Recording(gleitzeit.Transport):
        name = "recording"

        async def start(self):
            events.append("start")

        async def stop(self):
            events.append("stop")

    def gleitzeit_register_transports(register):
        register(Recording)

    plugins = Plugins.load(
        Config(),
        installed=False,
        extra=[("t", _plugin(gleitzeit_register_transports=gleitzeit_register_transports))],
    )
    async with Host(Config(), plugins=plugins) as host:
        assert isinstance(host.transports["recording"], Recording)
    assert events == ["start", "stop"]


async def test_hook_gleitzeit_register_routers():
    class LastRouter(gleitzeit.Router):
        name = "last"

        def pick(self, candidates, request):
            return candidates[-1]

    def gleitzeit_register_routers(register):
        register(LastRouter)

    config = parse_config("routing: {strategy: last}\n")
    plugins = Plugins.load(
        config,
        installed=False,
        extra=[("r", _plugin(gleitzeit_register_routers=gleitzeit_register_routers))],
    )
    host = Host(config, plugins=plugins, providers=[Ping(name="ping"), Ping(name="ping")])
    async with host:
        assert isinstance(host.router, LastRouter)
        await host.invoke("ping/ping")
        calls = [i.calls for i in host.registry.instances("ping")]
        assert calls == [0, 1]


async def test_hook_gleitzeit_register_health_checks():
    async def always_degraded(instance):
        return {"status": "degraded", "detail": f"{instance.name} is slow today"}

    def gleitzeit_register_health_checks(register):
        register("slow", always_degraded)

    plugins = Plugins.load(
        Config(),
        installed=False,
        extra=[("h", _plugin(gleitzeit_register_health_checks=gleitzeit_register_health_checks))],
    )
    async with Host(Config(), plugins=plugins) as host:
        (echo,) = await host.check_health("echo")
        assert echo.health.status == "degraded"
        assert "slow: echo is slow today" in echo.health.detail
        assert set(echo.health.checks) == {"provider", "slow"}


async def test_hook_gleitzeit_config_schema():
    class PingSettings(BaseModel):
        model_config = {"extra": "forbid"}
        greeting: str = "pong"

    def gleitzeit_config_schema():
        return PingSettings

    def gleitzeit_register_providers(register, settings):
        register(Ping)

    plugin = _plugin(
        gleitzeit_config_schema=gleitzeit_config_schema,
        gleitzeit_register_providers=gleitzeit_register_providers,
    )
    good = parse_config("plugins:\n  p: {greeting: hi}\n")
    plugins = Plugins.load(good, installed=False, extra=[("p", plugin)])
    async with Host(good, plugins=plugins) as host:
        assert (await host.invoke("ping/ping"))["settings"] == PingSettings(greeting="hi")

    bad = parse_config("plugins:\n  p:\n    greting: hi\n", source=Path("g.yaml"))
    plugins = Plugins.load(bad, installed=False, extra=[("p", plugin)])
    rec = plugins.records["p"]
    assert rec.status == "failed" and rec.config_error
    assert rec.config_problems == [
        "g.yaml:3: plugins.p.greting: unknown key 'greting'; did you mean 'greeting'?"
    ]
    assert "ping" not in plugins.provider_types  # a failed plugin leaves nothing registered


async def test_hook_gleitzeit_startup_and_gleitzeit_shutdown():
    events = []

    def gleitzeit_startup(host):
        async def later():
            events.append(("startup", len(host.registry)))

        return later()

    def gleitzeit_shutdown(host):
        events.append(("shutdown", len(host.registry)))

    def broken_startup(host):
        raise RuntimeError("cannot start")

    plugins = Plugins.load(
        Config(),
        installed=False,
        extra=[
            (
                "life",
                _plugin(gleitzeit_startup=gleitzeit_startup, gleitzeit_shutdown=gleitzeit_shutdown),
            ),
            ("broken", _plugin(gleitzeit_startup=broken_startup)),
        ],
    )
    host = Host(Config(), plugins=plugins)
    async with host:
        assert "cannot start" in host.plugin_errors["broken"]
        assert (await host.invoke("llm/chat", {"messages": [{"content": "up"}]}))[
            "response"
        ] == "up"
    assert events == [("startup", 1), ("shutdown", 1)]


test_hook_gleitzeit_startup = test_hook_gleitzeit_shutdown = (
    test_hook_gleitzeit_startup_and_gleitzeit_shutdown
)


def test_hook_gleitzeit_register_commands(monkeypatch):
    def gleitzeit_register_commands(cli):
        @cli.command("hello")
        @click.argument("who")
        def hello(who):
            """Say hello."""
            click.echo(f"hello {who}")

    from gleitzeit import cli as cli_module

    plugins = Plugins.load(
        Config(),
        installed=False,
        extra=[("c", _plugin(gleitzeit_register_commands=gleitzeit_register_commands))],
    )
    monkeypatch.setattr("gleitzeit.cli.state.CliState.plugins", property(lambda self: plugins))
    group = cli_module.GleitzeitGroup(name="gleitzeit", commands=dict(cli_module.cli.commands))
    group.params = cli_module.cli.params
    group.callback = cli_module.cli.callback
    result = CliRunner().invoke(group, ["hello", "world"])
    assert result.exit_code == 0, result.output
    assert result.output == "hello world\n"


# -- the guard ---------------------------------------------------------------------------


def _hook_names():
    return sorted(
        n
        for n, f in inspect.getmembers(hookspecs, inspect.isfunction)
        if n.startswith("gleitzeit_")
    )


def _test_names():
    names = set()
    for path in (ROOT / "tests").glob("test_*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                names.add(node.name)
            if isinstance(node, ast.Assign):
                names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


@pytest.mark.parametrize("hook", _hook_names())
def test_every_hook_has_a_docstring_a_doc_section_and_a_test(hook):
    spec = getattr(hookspecs, hook)
    assert inspect.getdoc(spec), f"{hook} has no docstring"
    docs = (ROOT / "docs" / "hooks.md").read_text()
    section = re.search(rf"^## {hook}\b(.*?)(?=^## |\Z)", docs, re.M | re.S)
    assert section, f"docs/hooks.md has no '## {hook}' section"
    assert "```python" in section.group(1), f"the {hook} section has no example"
    assert f"test_hook_{hook}" in _test_names(), f"no test named test_hook_{hook}"


def test_every_hook_is_known_to_pluggy():
    pm = Plugins(Config()).pm
    assert sorted(n for n in dir(pm.hook) if n.startswith("gleitzeit_")) == _hook_names()


def _marked(name, fn, **options):
    ns = type("Plugin", (), {})()
    setattr(ns, name, gleitzeit.hookimpl(**options)(fn))
    return ns


async def test_a_tryfirst_implementation_runs_before_a_plain_one():
    order = []
    plain = _marked("gleitzeit_startup", lambda host: order.append("plain"))
    first = _marked("gleitzeit_startup", lambda host: order.append("first"), tryfirst=True)
    last = _marked("gleitzeit_startup", lambda host: order.append("last"), trylast=True)
    plugins = Plugins.load(
        Config(), installed=False, extra=[("last", last), ("plain", plain), ("first", first)]
    )
    async with Host(Config(), plugins=plugins):
        pass
    assert order == ["first", "plain", "last"]


@pytest.mark.parametrize("option", ["wrapper", "hookwrapper"])
async def test_a_wrapper_implementation_is_refused_with_the_reason(option):
    ran = []

    def gleitzeit_startup(host):
        ran.append("wrapper")
        yield

    wrapper = _marked("gleitzeit_startup", gleitzeit_startup, **{option: True})
    plain = _marked("gleitzeit_startup", lambda host: ran.append("plain"))
    plugins = Plugins.load(Config(), installed=False, extra=[("w", wrapper), ("p", plain)])
    rec = plugins.records["w"]
    assert rec.status == "failed"
    assert "gleitzeit_startup" in rec.error and "not supported" in rec.error
    async with Host(Config(), plugins=plugins):
        pass
    assert ran == ["plain"]  # never 'loaded' and silently skipped, never half-run


def test_a_plugin_object_or_name_is_added_once():
    plugin = _marked("gleitzeit_startup", lambda host: None)
    other = _marked("gleitzeit_startup", lambda host: None)
    plugins = Plugins.load(
        Config(), installed=False, extra=[("one", plugin), ("two", plugin), ("echo", other)]
    )
    assert plugins.records["one"].status == "loaded"
    assert plugins.records["two"].status == "failed"
    assert "already registered under a different name" in plugins.records["two"].error
    assert plugins.records["echo"].status == "failed"
    assert "Plugin name already registered: echo" in plugins.records["echo"].error


def test_a_failed_plugin_frees_its_name():
    def gleitzeit_register_providers(register):
        raise RuntimeError("boom")

    broken = _marked("gleitzeit_register_providers", gleitzeit_register_providers)
    fine = _marked("gleitzeit_startup", lambda host: None)
    plugins = Plugins(Config())
    assert plugins.add(PluginRecord(name="p"), broken).status == "failed"
    assert plugins.add(PluginRecord(name="p"), fine).status == "loaded"
