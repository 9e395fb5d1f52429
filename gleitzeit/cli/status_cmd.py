"""``gleitzeit status``: is the host (or a server) up, and what serves."""

from __future__ import annotations

from typing import Any

import click

from gleitzeit.cli.output import echo_json, table
from gleitzeit.cli.state import state_of


@click.command("status")
@click.option("--server", "server_url", envvar="GLEITZEIT_SERVER", help="A `gleitzeit serve`.")
@click.option("--token", envvar="GLEITZEIT_TOKEN", help="The server's token.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def status(ctx: click.Context, server_url: str | None, token: str | None, as_json: bool) -> None:
    """The server's state (its /healthz and instances per provider) with --server;
    otherwise the plugins and providers of this machine's config.

    Exits 1 when the server is draining or a provider has no healthy instance.
    """
    state = state_of(ctx)

    async def go() -> dict[str, Any]:
        data: dict[str, Any] = {"server": server_url}
        if server_url:
            data["healthz"] = await _healthz(server_url)
        async with state.api(server_url, token, lazy=False) as api:
            rows = await api.providers(check=not server_url)
        by_name: dict[str, dict[str, int]] = {}
        for row in rows:
            counts = by_name.setdefault(row["name"], {"instances": 0, "healthy": 0})
            counts["instances"] += 1
            counts["healthy"] += row["status"] != "unhealthy"
        data["providers"] = by_name
        return data

    import asyncio  # not at import: every command's start-up would pay for it

    data = asyncio.run(go())
    down = [n for n, c in data["providers"].items() if not c["healthy"]]
    draining = data.get("healthz", {}).get("status") == "draining"
    if as_json:
        echo_json(data)
    else:
        if server_url:
            hz = data["healthz"]
            click.echo(f"server {server_url}: {hz.get('status')} ({hz.get('instances')} instances)")
        rows = [
            [name, c["instances"], c["healthy"], "down" if name in down else "ok"]
            for name, c in sorted(data["providers"].items())
        ]
        click.echo(table(["PROVIDER", "INSTANCES", "HEALTHY", "STATE"], rows))
        if down:
            click.echo(
                f"\nno healthy instance: {', '.join(down)} — see `gleitzeit providers health`"
            )
    if down or draining:
        ctx.exit(1)


async def _healthz(url: str) -> dict[str, Any]:
    import aiohttp

    from gleitzeit.errors import ServerUnreachable

    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            async with session.get(url.rstrip("/") + "/healthz") as response:
                data: dict[str, Any] = await response.json()
                return data
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ServerUnreachable(
            f"Cannot reach a gleitzeit server at {url}: {exc or type(exc).__name__}",
            hint="start one with `gleitzeit serve`, or check --server",
        ) from None


COMMANDS = [status]
