"""MCP servers as providers: discovery, calls, errors, crashes and restarts, list changes."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest
from gleitzeit_mcp.provider import McpProvider, provider_class
from gleitzeit_mcp.settings import McpSettings, ServerConfig
from mcp_demo import HttpDemo, stdio_config

import gleitzeit
from gleitzeit.testing import host


def demo_provider(config: ServerConfig | None = None) -> McpProvider:
    return provider_class("demo", config or stdio_config())()


async def test_stdio_tools_are_methods_with_their_schemas_and_descriptions():
    async with host(providers=[demo_provider()]) as h:
        (inst,) = h.registry.instances("mcp-demo")
        described = inst.describe(schemas=True)
        assert described["kind"] == "tool"
        assert {"demo/add", "demo/shout", "demo/fail", "demo/resources.read"} <= set(
            described["methods"]
        )
        add = described["method_schemas"]["demo/add"]
        assert add["description"] == "Add two integers."
        assert add["params_schema"]["required"] == ["a", "b"]
        assert add["params_schema"]["properties"]["a"]["type"] == "integer"


async def test_a_tool_call_returns_the_standard_tool_shape():
    async with host(providers=[demo_provider()]) as h:
        result = await h.invoke("demo/add", {"a": 2, "b": 40})
        assert result["result"] == 42
        assert result["is_error"] is False
        assert result["content"] == [{"type": "text", "text": "42"}]
        text = await h.invoke("demo/shout", {"text": "hi", "times": 2})
        assert text["result"] == "HI HI"


async def test_an_error_result_is_a_tool_error_with_the_servers_message():
    async with host(providers=[demo_provider()]) as h:
        with pytest.raises(gleitzeit.ToolError, match="failing on purpose: because"):
            await h.invoke("demo/fail", {"reason": "because"})
        # the server is still there
        assert (await h.invoke("demo/add", {"a": 1, "b": 1}))["result"] == 2


async def test_arguments_that_do_not_fit_the_schema_are_refused_naming_the_field():
    async with host(providers=[demo_provider()]) as h:
        with pytest.raises(gleitzeit.InvalidParamsError, match=r"a: 'x' is not of type 'integer'"):
            await h.invoke("demo/add", {"a": "x", "b": 1})


async def test_resources_and_prompts_are_methods():
    async with host(providers=[demo_provider()]) as h:
        res = await h.invoke("demo/resources.read", {"uri": "demo://greeting"})
        assert res["result"] == "hello from the demo server"
        prompt = await h.invoke(
            "demo/prompts.get", {"name": "summarize", "arguments": {"topic": "tides"}}
        )
        assert prompt["messages"] == [{"role": "user", "content": "Summarize tides in one line."}]


async def test_tools_list_changed_adds_the_new_tool_as_a_method():
    provider = demo_provider()
    async with host(providers=[provider]) as h:
        assert "demo/double" not in h.registry.methods()
        assert provider.connection is not None
        provider.connection.tools_read.clear()
        await h.invoke("demo/grow", {})
        await asyncio.wait_for(provider.connection.tools_read.wait(), 30)
        assert "demo/double" in h.registry.methods()
        assert (await h.invoke("demo/double", {"x": 21}))["result"] == 42


async def test_a_killed_stdio_server_is_reported_with_its_stderr_and_restarted():
    provider = demo_provider(stdio_config(restart_backoff=1.0))
    async with host(providers=[provider]) as h:
        first = (await h.invoke("demo/pid", {}))["result"]
        conn = provider.connection
        assert conn is not None
        os.kill(first, signal.SIGKILL)
        await asyncio.wait_for(conn.down.wait(), 30)
        health = await provider.health()
        assert health["status"] == "unhealthy"
        assert "demo server starting" in health["detail"]  # the tail of its stderr
        with pytest.raises(gleitzeit.ProviderUnavailableError):
            await provider.invoke("demo/pid", {})
        await asyncio.wait_for(conn.ready.wait(), 30)
        assert conn.restarts == 1
        second = (await h.invoke("demo/pid", {}))["result"]
        assert second != first
        (inst,) = await h.check_health("mcp-demo")
        assert inst.health.status == "healthy"


async def test_a_command_that_does_not_exist_fails_the_start_clearly():
    provider = demo_provider(ServerConfig(command="no-such-mcp-server-command"))
    with pytest.raises(gleitzeit.ProviderUnavailableError, match="command not found"):
        await provider.start()
    await provider.stop()


async def test_a_server_that_exits_at_once_fails_the_start_with_its_stderr(tmp_path):
    script = tmp_path / "broken.py"
    script.write_text("import sys\nprint('missing API key', file=sys.stderr)\nsys.exit(3)\n")
    import sys

    provider = demo_provider(ServerConfig(command=sys.executable, args=[str(script)]))
    with pytest.raises(gleitzeit.ProviderUnavailableError, match="missing API key"):
        await provider.start()


async def test_streamable_http_server_is_discovered_invoked_and_its_errors_mapped(http_demo):
    provider = demo_provider(ServerConfig(url=http_demo.url))
    async with host(providers=[provider]) as h:
        assert "demo/add" in h.registry.methods()
        assert (await h.invoke("demo/add", {"a": 3, "b": 4}))["result"] == 7
        with pytest.raises(gleitzeit.ToolError, match="failing on purpose"):
            await h.invoke("demo/fail", {"reason": "http"})
        provider.connection.tools_read.clear()
        await h.invoke("demo/grow", {})
        await asyncio.wait_for(provider.connection.tools_read.wait(), 30)
        assert (await h.invoke("demo/double", {"x": 4}))["result"] == 8


async def test_a_streamable_http_server_that_went_away_is_reconnected(http_demo: HttpDemo):
    provider = demo_provider(ServerConfig(url=http_demo.url, restart_backoff=0.2, timeout=10))
    async with host(providers=[provider]) as h:
        assert (await h.invoke("demo/add", {"a": 1, "b": 2}))["result"] == 3
        conn = provider.connection
        await http_demo.kill()
        with pytest.raises(gleitzeit.ProviderError):
            await provider.invoke("demo/add", {"a": 1, "b": 2})
        assert (await provider.health())["status"] == "unhealthy"
        await http_demo.start()  # the same port again
        await asyncio.wait_for(conn.ready.wait(), 30)
        assert (await provider.invoke("demo/add", {"a": 2, "b": 2}))["result"] == 4


def test_settings_refuse_a_server_with_both_command_and_url():
    with pytest.raises(ValueError, match="either 'command'"):
        McpSettings.model_validate({"servers": {"x": {"command": "a", "url": "http://b"}}})


def test_settings_refuse_a_server_name_that_cannot_prefix_methods():
    with pytest.raises(ValueError, match="server name 'My Files'"):
        McpSettings.model_validate({"servers": {"My Files": {"command": "a"}}})
