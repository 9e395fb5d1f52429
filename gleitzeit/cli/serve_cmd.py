"""``gleitzeit serve`` and ``gleitzeit provider run``: the host as a server, and
providers as separate processes that connect to it."""

from __future__ import annotations

import json
import signal
from typing import Any

import click

from gleitzeit.cli.state import state_of


def _asyncio():  # noqa: ANN202 - asyncio costs ~25 ms to import; only commands that run use it
    import asyncio

    return asyncio


@click.command("serve")
@click.option("--host", "bind", help="Address to bind (default: server.host, 127.0.0.1).")
@click.option("--port", type=int, help="Port (default: server.port, 8000; 0 picks a free one).")
@click.option(
    "--insecure",
    is_flag=True,
    default=None,
    help="Allow binding a non-loopback address with no token or secret configured.",
)
@click.pass_context
def serve(ctx: click.Context, bind: str | None, port: int | None, insecure: bool | None) -> None:
    """Serve the host: remote providers connect on /providers, callers on /clients.

    In-process providers from the config are served beside remote ones. SIGINT or
    SIGTERM stops taking work, lets in-flight calls finish (server.shutdown_grace),
    tells providers, and exits 0.
    """
    from gleitzeit.socketio.server import GleitzeitServer

    state = state_of(ctx)
    host = state.host()
    server = GleitzeitServer(host, bind=bind, port=port, insecure=insecure)

    def ready(srv: GleitzeitServer) -> None:
        local = len(srv.host.registry)
        auth = "no token" if srv.guard.credentials.open else "token required"
        click.echo(f"gleitzeit serving on {srv.url} ({local} local provider instance(s); {auth})")
        click.echo("press Ctrl+C to stop", err=True)

    _asyncio().run(server.serve_forever(ready))
    click.echo("gleitzeit stopped", err=True)


@click.group("provider")
def provider_group() -> None:
    """Run a provider as a separate process."""


def _make_provider(state: Any, target: str, name: str | None, raw_settings: str | None) -> Any:
    from gleitzeit.factory import build_provider

    settings: Any = None
    if raw_settings:
        try:
            settings = json.loads(raw_settings)
        except json.JSONDecodeError as exc:
            raise click.BadParameter(f"not JSON: {exc}", param_hint="--settings") from None
    plugins = state.plugins if ":" not in target else None
    if plugins is None:
        from gleitzeit.plugins import Plugins

        plugins = Plugins(state.config)  # module:Class needs no installed plugins
    return build_provider(plugins, target, name=name, settings=settings)


@provider_group.command("run")
@click.argument("target")
@click.option("--server", "url", required=True, envvar="GLEITZEIT_SERVER", help="Server URL.")
@click.option("--token", envvar="GLEITZEIT_TOKEN", help="Token (default: $GLEITZEIT_TOKEN).")
@click.option("--name", help="Register under this provider name instead of the class's.")
@click.option("--settings", "raw_settings", help="Provider settings as a JSON object.")
@click.pass_context
def provider_run(
    ctx: click.Context,
    target: str,
    url: str,
    token: str | None,
    name: str | None,
    raw_settings: str | None,
) -> None:
    """Run TARGET (an installed provider type such as `calculator`, or `module:Class`)
    and serve it to the server at --server until SIGINT/SIGTERM.

    Several processes with the same name are instances of one provider.
    """
    from gleitzeit.socketio.runner import ProviderRunner

    state = state_of(ctx)
    provider = _make_provider(state, target, name, raw_settings)
    runner = ProviderRunner(provider, url, token=token)

    async def go() -> None:
        loop = _asyncio().get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, runner.stop)
            except (NotImplementedError, RuntimeError):
                pass

        async def announce() -> None:
            while True:
                await runner.registered.wait()
                click.echo(
                    f"provider {provider.name} registered with {url} as {runner.instance_id}"
                )
                while runner.registered.is_set():
                    await _asyncio().sleep(0.2)

        note = _asyncio().ensure_future(announce())
        try:
            await runner.run()
        finally:
            note.cancel()

    _asyncio().run(go())


COMMANDS = [serve, provider_group]
