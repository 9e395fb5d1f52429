"""Gleitzeit as an MCP server: every method of every healthy provider as an MCP tool.

The methods come from an *api* — a started :class:`gleitzeit.Host`, or a
:class:`gleitzeit.Client` of a ``gleitzeit serve`` — and calls go through its router.
"""

from __future__ import annotations

import fnmatch
import hmac
import json
import logging
import socket
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from mcp import types
from mcp.server.lowlevel import Server

from gleitzeit.errors import GleitzeitError
from gleitzeit_mcp.names import tools_for_methods

log = logging.getLogger("gleitzeit.mcp.serve")

Describe = Callable[[], Awaitable[list[dict[str, Any]]]]


def host_instances(host: Any) -> Describe:
    """What a local host's instances offer, as ``providers list --json`` shows them."""

    async def describe() -> list[dict[str, Any]]:
        return [i.describe(schemas=True) for i in host.registry]

    return describe


def client_instances(client: Any) -> Describe:
    """What a served host's instances offer."""

    async def describe() -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await client.providers()
        return result

    return describe


class MethodTools:
    """The methods an api serves, as MCP tools, chosen by glob patterns."""

    def __init__(
        self,
        api: Any,
        describe: Describe,
        *,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        timeout: float | None = None,
    ) -> None:
        self.api = api
        self.describe = describe
        self.include = list(include)
        self.exclude = list(exclude)
        self.timeout = timeout
        #: tool name -> method name, from the last listing
        self.methods: dict[str, str] = {}

    def chosen(self, method: str) -> bool:
        """Whether ``--include``/``--exclude`` let ``method`` through."""
        if self.include and not any(fnmatch.fnmatchcase(method, p) for p in self.include):
            return False
        return not any(fnmatch.fnmatchcase(method, p) for p in self.exclude)

    async def list(self) -> list[types.Tool]:
        """One tool per method of a provider that is not unhealthy."""
        found: dict[str, dict[str, Any]] = {}
        for inst in await self.describe():
            if inst.get("status") == "unhealthy":
                continue
            for name, info in (inst.get("method_schemas") or {}).items():
                if name not in found and self.chosen(name):
                    found[name] = info
        self.methods = tools_for_methods(found)
        tools = []
        for tool, method in self.methods.items():
            info = found[method]
            schema = dict(info.get("params_schema") or {})
            schema.setdefault("type", "object")
            description = info.get("description") or ""
            tools.append(
                types.Tool(
                    name=tool,
                    title=method,
                    description=f"{description} (Gleitzeit method {method})".strip(),
                    input_schema=schema,
                )
            )
        return tools

    async def call(self, tool: str, arguments: dict[str, Any] | None) -> types.CallToolResult:
        """Invoke the method behind ``tool``; a gleitzeit error is a tool error result."""
        method = self.methods.get(tool)
        if method is None:
            await self.list()
            method = self.methods.get(tool)
        if method is None:
            return _error(
                f"Unknown tool {tool!r}; the tools are: {', '.join(sorted(self.methods)) or '(none)'}"
            )
        try:
            result = await self.api.invoke(method, dict(arguments or {}), timeout=self.timeout)
        except GleitzeitError as exc:
            return _error(str(exc))
        text = result.get("response") if isinstance(result.get("response"), str) else None
        return types.CallToolResult(
            content=[types.TextContent(type="text", text=text or json.dumps(result, default=str))],
            structured_content=result,
        )


def _error(text: str) -> types.CallToolResult:
    return types.CallToolResult(content=[types.TextContent(type="text", text=text)], is_error=True)


def build_server(tools: MethodTools, *, version: str = "") -> Server[Any]:
    """The low-level MCP server answering ``tools/list`` and ``tools/call`` from ``tools``."""

    async def on_list_tools(ctx: Any, params: Any) -> types.ListToolsResult:
        return types.ListToolsResult(tools=await tools.list())

    async def on_call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        return await tools.call(params.name, params.arguments)

    return Server(
        "gleitzeit",
        version=version,
        instructions="Each tool is a Gleitzeit method (calc/add is the tool calc_add).",
        on_list_tools=on_list_tools,
        on_call_tool=on_call_tool,
    )


async def serve_stdio(server: Server[Any]) -> None:
    """Serve one MCP client on stdin/stdout until it closes them."""
    from mcp.server.stdio import stdio_server

    async with stdio_server() as (read, write):
        await server.run(read, write, server.create_initialization_options())


class TokenGate:
    """ASGI middleware: HTTP requests need ``Authorization: Bearer <token>``."""

    def __init__(self, app: Any, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self.token is not None:
            header = dict(scope.get("headers") or []).get(b"authorization", b"")
            given = header[7:] if header[:7].lower() == b"bearer " else b""
            if not hmac.compare_digest(given, self.token.encode()):
                body = json.dumps(
                    {
                        "error": "authentication failed: missing or wrong token "
                        "(send Authorization: Bearer <token>; the server's token is "
                        "GLEITZEIT_TOKEN or --token)"
                    }
                ).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 401,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"www-authenticate", b"Bearer"),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


async def serve_http(
    server: Server[Any],
    *,
    bind: str,
    port: int,
    token: str | None,
    ready: Callable[[str], None],
    path: str = "/mcp",
) -> None:
    """Serve MCP over streamable HTTP at ``http://bind:port/mcp`` until SIGINT/SIGTERM."""
    import uvicorn

    app = TokenGate(server.streamable_http_app(streamable_http_path=path, host=bind), token)
    family = socket.AF_INET6 if ":" in bind else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((bind, port))
    except OSError as exc:
        sock.close()
        raise GleitzeitError(
            f"Cannot listen on {bind}:{port}: {exc.strerror or exc}",
            hint="pick another --port (0 picks a free one)",
        ) from None
    sock.listen(128)
    sock.setblocking(False)
    actual = sock.getsockname()[1]
    host_part = f"[{bind}]" if ":" in bind else bind
    uv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    ready(f"http://{host_part}:{actual}{path}")
    try:
        await uv.serve(sockets=[sock])
    finally:
        sock.close()


async def run(
    api: Any,
    describe: Describe,
    *,
    http: bool,
    bind: str,
    port: int,
    token: str | None,
    include: Sequence[str],
    exclude: Sequence[str],
    ready: Callable[[str], None],
    version: str = "",
) -> None:
    """Serve ``api``'s methods over stdio or streamable HTTP."""
    tools = MethodTools(api, describe, include=include, exclude=exclude)
    server = build_server(tools, version=version)
    if http:
        await serve_http(server, bind=bind, port=port, token=token, ready=ready)
    else:
        ready("stdio")
        await serve_stdio(server)


__all__ = ["MethodTools", "TokenGate", "build_server", "run", "serve_http", "serve_stdio"]
