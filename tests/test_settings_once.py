"""A plugin declares its settings once, on its provider class."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

import gleitzeit
from gleitzeit.config import parse_config
from gleitzeit.host import Host
from gleitzeit.plugins import Plugins


class GreeterSettings(BaseModel):
    greeting: str = "Hello"
    times: int = 1


class Greeter(gleitzeit.Provider):
    name = "greeter"
    kind = "tool"
    Settings = GreeterSettings

    @gleitzeit.method("greet/say")
    async def say(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"result": " ".join([self.settings.greeting] * self.settings.times)}


class GreeterPlugin:
    @gleitzeit.hookimpl
    def gleitzeit_register_providers(self, register: Any) -> None:
        register(Greeter)


async def test_the_provider_classes_settings_validate_the_plugins_section():
    config = parse_config("plugins:\n  greeter:\n    greeting: Hi\n    times: 2\n")
    plugins = Plugins.load(config, installed=False, extra=[("greeter", GreeterPlugin())])
    rec = plugins.records["greeter"]
    assert rec.status == "loaded", rec.error
    assert rec.settings_schema is GreeterSettings
    async with Host(config, plugins=plugins) as host:
        assert (await host.invoke("greet/say"))["result"] == "Hi Hi"


def test_a_wrong_setting_fails_the_plugin_with_the_field_and_line():
    config = parse_config("plugins:\n  greeter:\n    times: many\n")
    plugins = Plugins.load(config, installed=False, extra=[("greeter", GreeterPlugin())])
    rec = plugins.records["greeter"]
    assert rec.status == "failed" and rec.config_error
    assert "times" in rec.error and "many" in rec.error
    assert "greeter" not in plugins.provider_types  # what it registered is removed


def test_calculator_takes_its_settings_from_its_provider_class():
    config = parse_config("plugins:\n  calculator:\n    precision: 2\n")
    plugins = Plugins.load(config)
    rec = plugins.records["calculator"]
    assert "gleitzeit_config_schema" not in rec.hooks
    assert rec.settings.precision == 2
