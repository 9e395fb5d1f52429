"""An MCP server for the tests, built with the SDK's MCPServer (FastMCP before mcp 2).

``python demo_server.py`` serves stdio; ``python demo_server.py http [PORT]`` serves
streamable HTTP on 127.0.0.1 and prints ``port=N`` on stdout once it listens.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

server = MCPServer("demo")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def shout(text: str, times: int = 1) -> str:
    """Upper-case a text, repeated."""
    return " ".join([text.upper()] * times)


@server.tool()
def fail(reason: str) -> str:
    """Always fails, saying why."""
    raise ToolError(f"failing on purpose: {reason}")


@server.tool()
def pid() -> int:
    """The server's process id."""
    return os.getpid()


@server.tool()
async def grow(ctx: Context) -> str:
    """Add the tool 'double' and tell the client the tools changed."""

    def double(x: int) -> int:
        """Twice x."""
        return 2 * x

    server.add_tool(double, name="double")
    await ctx.session.send_tool_list_changed()
    return "grown"


@server.resource("demo://greeting")
def greeting() -> str:
    """A greeting."""
    return "hello from the demo server"


@server.prompt()
def summarize(topic: str) -> str:
    """Ask for a summary of a topic."""
    return f"Summarize {topic} in one line."


async def _serve_http(port: int) -> None:
    import uvicorn

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(64)
    print(f"port={sock.getsockname()[1]}", flush=True)
    app = server.streamable_http_app()
    await uvicorn.Server(uvicorn.Config(app, log_level="warning")).serve(sockets=[sock])


if __name__ == "__main__":
    print("demo server starting", file=sys.stderr, flush=True)
    if "--safe" in sys.argv:  # only tools that always answer (for the conformance suite)
        sys.argv.remove("--safe")
        server.remove_tool("fail")
        server.remove_tool("grow")
    if len(sys.argv) > 1 and sys.argv[1] == "http":
        asyncio.run(_serve_http(int(sys.argv[2]) if len(sys.argv) > 2 else 0))
    else:
        server.run()
