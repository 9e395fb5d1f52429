"""`gleitzeit mcp serve`, checked with the SDK's own client over stdio and HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator
from typing import Any

import httpx2
import pytest
from gleitzeit_calculator import plugin as calculator_plugin
from gleitzeit_mcp.serve import MethodTools, client_instances, host_instances
from mcp import ClientSession, StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client

from gleitzeit import Client
from gleitzeit.testing import host, local_server


async def check_calculator_tools(session: ClientSession) -> None:
    listed = {t.name: t for t in (await session.list_tools()).tools}
    assert "calc_add" in listed and "calc_divide" in listed
    add = listed["calc_add"]
    assert set(add.input_schema["properties"]) >= {"a", "b"}
    assert "calc/add" in (add.description or "")
    result = await session.call_tool("calc_add", {"a": 5, "b": 3})
    assert not result.is_error
    assert result.structured_content is not None
    assert result.structured_content["result"] == 8
    bad = await session.call_tool("calc_divide", {"a": 1, "b": 0})
    assert bad.is_error
    assert "zero" in bad.content[0].text.lower()


async def test_stdio_serve_lists_the_calculator_and_calls_it(cli_env):
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "gleitzeit", "mcp", "serve"], env=cli_env
    )
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await asyncio.wait_for(session.initialize(), 60)
        await check_calculator_tools(session)


@contextlib.asynccontextmanager
async def http_serve(env: dict[str, str], *args: str) -> AsyncIterator[str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gleitzeit",
        "mcp",
        "serve",
        "--http",
        "--port",
        "0",
        *args,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        line = (await asyncio.wait_for(proc.stderr.readline(), 60)).decode()
        assert line.startswith("gleitzeit MCP server on http://"), line
        yield line.split()[4]
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)


@contextlib.asynccontextmanager
async def http_session(url: str, token: str | None) -> AsyncIterator[ClientSession]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                await asyncio.wait_for(session.initialize(), 30)
                yield session


async def test_http_serve_without_a_token(cli_env):
    async with http_serve(cli_env) as url, http_session(url, None) as session:
        await check_calculator_tools(session)


async def test_http_serve_with_a_token_refuses_clients_without_it(cli_env):
    async with http_serve(cli_env, "--token", "s3cret") as url:
        async with http_session(url, "s3cret") as session:
            await check_calculator_tools(session)
        async with httpx2.AsyncClient(timeout=30) as http:
            refused = await http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
            assert refused.status_code == 401
            assert "GLEITZEIT_TOKEN" in refused.json()["error"]
            wrong = await http.post(url, json={}, headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401


async def tool_names(tools: MethodTools) -> set[str]:
    return {t.name for t in await tools.list()}


async def test_include_and_exclude_choose_the_methods():
    async with host(calculator_plugin) as h:
        everything = await tool_names(MethodTools(h, host_instances(h)))
        assert {"calc_add", "llm_chat"} <= everything  # the built-in echo LLM too
        only = MethodTools(h, host_instances(h), include=["calc/*"], exclude=["calc/divide"])
        chosen = await tool_names(only)
        assert "calc_add" in chosen and "calc_divide" not in chosen and "llm_chat" not in chosen
        refused = await only.call("calc_divide", {"a": 1, "b": 2})
        assert refused.is_error and "Unknown tool" in refused.content[0].text


async def test_llm_chat_is_a_tool_taking_messages():
    async with host(calculator_plugin) as h:
        tools = MethodTools(h, host_instances(h))
        chat = {t.name: t for t in await tools.list()}["llm_chat"]
        assert "messages" in chat.input_schema["properties"]
        result: Any = await tools.call(
            "llm_chat", {"messages": [{"role": "user", "content": "hello"}]}
        )
        assert not result.is_error
        assert "hello" in result.content[0].text


async def test_the_methods_of_a_served_host_through_a_client():
    async with local_server(calculator_plugin) as server:
        async with Client(server.url, token=server.token) as client:
            tools = MethodTools(client, client_instances(client), include=["calc/*"])
            assert "calc_add" in await tool_names(tools)
            result = await tools.call("calc_add", {"a": 2, "b": 2})
            assert result.structured_content is not None
            assert result.structured_content["result"] == 4


@pytest.mark.parametrize("bad", ["not-a-port"])
def test_serve_refuses_a_bad_port(cli_env, bad):
    import subprocess

    proc = subprocess.run(
        [sys.executable, "-m", "gleitzeit", "mcp", "serve", "--http", "--port", bad],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "--port" in proc.stderr


async def test_an_mcp_provider_sends_its_headers_to_a_token_guarded_serve(cli_env):
    from gleitzeit_mcp.provider import provider_class
    from gleitzeit_mcp.settings import ServerConfig

    async with http_serve(cli_env, "--token", "s3cret", "--include", "calc/*") as url:
        config = ServerConfig(url=url, headers={"Authorization": "Bearer s3cret"})
        async with host(providers=[provider_class("gz", config)()]) as h:
            result = await h.invoke("gz/calc_add", {"a": 20, "b": 22})
            assert result["result"]["result"] == 42
