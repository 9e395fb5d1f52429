"""Plugin switches from substitution or quoting, and unset variables in a plugin's
settings (the defects found by trying the product as a new user)."""

from __future__ import annotations

import pytest

from gleitzeit.config import parse_config
from gleitzeit.errors import ConfigError
from gleitzeit.host import Host
from gleitzeit.plugins import Plugins


@pytest.mark.parametrize("word", ["false", "False", "no", "OFF", "0", "n"])
def test_enabled_from_a_variable_or_a_quoted_string_switches_the_plugin_off(word):
    by_env = parse_config(
        "plugins:\n  calculator:\n    enabled: ${FLAG:-true}\n", env={"FLAG": word}
    )
    assert by_env.plugin_enabled("calculator") is False
    quoted = parse_config(f'plugins:\n  calculator:\n    enabled: "{word}"\n')
    assert quoted.plugin_enabled("calculator") is False
    whole = parse_config("plugins:\n  calculator: ${FLAG}\n", env={"FLAG": word})
    assert whole.plugin_enabled("calculator") is False


@pytest.mark.parametrize("word", ["true", "Yes", "on", "1"])
def test_true_words_keep_the_plugin_on(word):
    config = parse_config("plugins:\n  calculator:\n    enabled: ${FLAG}\n", env={"FLAG": word})
    assert config.plugin_enabled("calculator") is True


def test_a_switch_that_is_not_a_boolean_is_an_error_with_its_line():
    with pytest.raises(ConfigError) as info:
        parse_config("routing: {retries: 1}\nplugins:\n  calculator:\n    enabled: nope\n")
    text = str(info.value)
    assert "<config>:4: plugins.calculator.enabled: not a boolean (got 'nope')" in text
    with pytest.raises(ConfigError, match=r"<config>:2: plugins.calculator: not a boolean"):
        parse_config("plugins:\n  calculator: ${FLAG}\n", env={"FLAG": "maybe"})


async def test_an_unset_variable_in_a_plugins_settings_holds_its_providers_down():
    config = parse_config("plugins:\n  calculator:\n    precision: ${PREC}\n", env={})
    plugins = Plugins.load(config)
    rec = plugins.records["calculator"]
    assert rec.held and "PREC" in rec.held
    async with Host(config, plugins=plugins) as host:
        (inst,) = host.registry.instances("calculator")
        assert inst.health.status == "unhealthy"
        assert "PREC" in (inst.health.detail or "")
        with pytest.raises(Exception, match="PREC"):
            await host.invoke("calc/add", {"a": 1.23456, "b": 0})  # never silently unrounded
        # The rest of the host serves.
        assert (await host.invoke("llm/chat", {"messages": [{"content": "hi"}]}))["response"]


def test_plugins_list_says_why_a_plugins_providers_are_down(run_cli):
    (run_cli.workdir / "gleitzeit.yaml").write_text(
        "plugins:\n  calculator:\n    precision: ${PREC}\n"
    )
    out = run_cli("plugins", "list")
    assert out.code == 0
    assert "PREC" in out.out and "providers are down" in out.out
