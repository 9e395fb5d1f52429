"""MCP tool calls: per-call time of an MCP tool invoked through gleitzeit (Host.invoke,
the gleitzeit-mcp plugin) against the SDK's ClientSession calling the same stdio server
directly. Two server processes run the same code, one per side; rounds alternate."""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

NAME = "mcp"
TARGET = "per-call time through gleitzeit / ClientSession direct <= 1.2 (stdio tool call)"
CALLS = 200
ROUNDS = 7

SERVER = """
from mcp.server.mcpserver import MCPServer

server = MCPServer("bench")


@server.tool()
def add(a: int, b: int) -> int:
    \"\"\"Add two integers.\"\"\"
    return a + b


server.run()
"""


async def _round(call) -> float:
    start = time.perf_counter()
    for i in range(CALLS):
        await call(i)
    return (time.perf_counter() - start) / CALLS


async def _measure() -> dict:
    from gleitzeit_mcp.provider import provider_class
    from gleitzeit_mcp.settings import ServerConfig
    from mcp import ClientSession, StdioServerParameters, stdio_client

    from gleitzeit.config import Config
    from gleitzeit.host import Host
    from gleitzeit.plugins import Plugins

    params = StdioServerParameters(command=sys.executable, args=["-c", SERVER])
    config = Config()
    provider = provider_class("bench", ServerConfig(command=sys.executable, args=["-c", SERVER]))()
    host = Host(config, plugins=Plugins.load(config, installed=False), providers=[provider])
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        await session.list_tools()
        async with host:

            async def direct(i: int) -> None:
                result = await session.call_tool("add", {"a": i, "b": 1})
                assert result.structured_content == {"result": i + 1}

            async def through(i: int) -> None:
                result = await host.invoke("bench/add", {"a": i, "b": 1}, provider="mcp-bench")
                assert result["result"] == i + 1

            await _round(direct)  # warm-up: imports, caches, pipes
            await _round(through)
            d, t = [], []
            for _ in range(ROUNDS):  # A B A B: drift affects both sides alike
                d.append(await _round(direct))
                t.append(await _round(through))
    dm, tm = statistics.median(d), statistics.median(t)
    return {
        "direct_us_per_call": dm * 1e6,
        "direct_min_max_us": f"{min(d) * 1e6:.0f}-{max(d) * 1e6:.0f}",
        "gleitzeit_us_per_call": tm * 1e6,
        "gleitzeit_min_max_us": f"{min(t) * 1e6:.0f}-{max(t) * 1e6:.0f}",
        "overhead_us_per_call": (tm - dm) * 1e6,
        "ratio": tm / dm,
        "target_ok": tm / dm <= 1.2,
    }


def run() -> dict:
    return asyncio.run(_measure())


if __name__ == "__main__":
    for key, value in run().items():
        print(f"{key}: {value:.4g}" if isinstance(value, float) else f"{key}: {value}")
