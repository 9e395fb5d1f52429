"""``gleitzeit mcp serve``: the host's methods as an MCP server (stdio or HTTP)."""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

import click


@click.group("mcp")
def mcp_group() -> None:
    """Model Context Protocol: serve Gleitzeit's methods as MCP tools."""


def _loopback(bind: str) -> bool:
    if bind == "localhost":
        return True
    try:
        return ipaddress.ip_address(bind).is_loopback
    except ValueError:
        return False


@mcp_group.command("serve")
@click.option("--http", "http", is_flag=True, help="Serve streamable HTTP instead of stdio.")
@click.option("--host", "bind", default="127.0.0.1", show_default=True, help="Address (--http).")
@click.option(
    "--port", type=int, default=8765, show_default=True, help="Port (--http; 0 picks a free one)."
)
@click.option(
    "--token",
    envvar="GLEITZEIT_TOKEN",
    help="Bearer token HTTP clients must send (default: $GLEITZEIT_TOKEN, then server.token).",
)
@click.option(
    "--server",
    "server_url",
    envvar="GLEITZEIT_SERVER",
    help="Serve the methods of this `gleitzeit serve` instead of an in-process host.",
)
@click.option(
    "--server-token",
    envvar="GLEITZEIT_SERVER_TOKEN",
    help="Token of the --server (default: $GLEITZEIT_TOKEN).",
)
@click.option(
    "--include", multiple=True, metavar="GLOB", help="Only methods matching (e.g. 'calc/*')."
)
@click.option("--exclude", multiple=True, metavar="GLOB", help="Leave out methods matching.")
@click.pass_context
def serve(
    ctx: click.Context,
    http: bool,
    bind: str,
    port: int,
    token: str | None,
    server_url: str | None,
    server_token: str | None,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
) -> None:
    """Serve every method of every healthy provider as an MCP tool (calc/add is calc_add).

    Over stdin/stdout by default, for a desktop assistant that starts it; with --http,
    over streamable HTTP at http://HOST:PORT/mcp, where clients send
    `Authorization: Bearer TOKEN` when a token is set.
    """
    from gleitzeit.cli.state import state_of

    state = state_of(ctx)
    if http and token is None:
        token = state.config.server.resolved_token()
    if http and token is None and not _loopback(bind):
        click.echo(
            f"warning: serving MCP on {bind} without a token: anyone who reaches it can call "
            "every method; set GLEITZEIT_TOKEN or pass --token",
            err=True,
        )

    def ready(where: str) -> None:
        if where == "stdio":
            return  # stdout belongs to the protocol
        auth = "token required" if token else "no token"
        click.echo(f"gleitzeit MCP server on {where} ({auth})", err=True)

    asyncio.run(
        _main(state, http, bind, port, token, server_url, server_token, include, exclude, ready)
    )


async def _main(
    state: Any,
    http: bool,
    bind: str,
    port: int,
    token: str | None,
    server_url: str | None,
    server_token: str | None,
    include: tuple[str, ...],
    exclude: tuple[str, ...],
    ready: Any,
) -> None:
    from gleitzeit_mcp import serve
    from gleitzeit_mcp.connection import _version

    options: dict[str, Any] = dict(
        http=http,
        bind=bind,
        port=port,
        token=token,
        include=include,
        exclude=exclude,
        ready=ready,
        version=_version(),
    )
    if server_url is not None:
        from gleitzeit import Client

        async with Client(server_url, token=server_token) as client:
            await serve.run(client, serve.client_instances(client), **options)
        return
    async with state.host() as host:
        host.watch_health()
        await serve.run(host, serve.host_instances(host), **options)
