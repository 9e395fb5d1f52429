"""``gleitzeit serve`` and ``gleitzeit provider run``: the host as a server, and
providers as separate processes that connect to it."""

from __future__ import annotations

import json
from typing import Any

import click

from gleitzeit.cli.renamed import SERVE_OPTIONS, renamed_options
from gleitzeit.cli.state import state_of


def log_options(default_level: str) -> Any:
    """``--log-format`` and ``--log-level``, for the commands that run long."""

    def decorate(func: Any) -> Any:
        func = click.option(
            "--log-level",
            type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
            default=None,
            help=f"Log level (default: {default_level}; debug with --debug).",
        )(func)
        func = click.option(
            "--log-format",
            type=click.Choice(["text", "json"]),
            default="text",
            show_default=True,
            help="One line per record: text, or one JSON object (call_id, method, ...).",
        )(func)
        return func

    return decorate


def _setup_logs(ctx: click.Context, log_format: str, log_level: str | None, default: str) -> None:
    from gleitzeit.logs import setup_logging

    level = log_level or ("debug" if state_of(ctx).debug else default)
    setup_logging(log_format, level)


def _asyncio():  # noqa: ANN202 - asyncio costs ~25 ms to import; only commands that run use it
    import asyncio

    return asyncio


@click.group("serve", invoke_without_command=True)
@click.option("--host", "bind", help="Address to bind (default: server.host, 127.0.0.1).")
@click.option("--port", type=int, help="Port (default: server.port, 8000; 0 picks a free one).")
@click.option(
    "--insecure",
    is_flag=True,
    default=None,
    help="Allow binding a non-loopback address with no token or secret configured.",
)
@click.option(
    "--redis",
    "redis_url",
    envvar="GLEITZEIT_REDIS",
    help="Join the cluster of nodes sharing this Redis (default: server.redis); see docs/scaling.md.",
)
@renamed_options(SERVE_OPTIONS)
@log_options("info")
@click.pass_context
def serve(
    ctx: click.Context,
    bind: str | None,
    port: int | None,
    insecure: bool | None,
    redis_url: str | None,
    log_format: str,
    log_level: str | None,
) -> None:
    """Serve the host: remote providers connect on /providers, callers on /clients.

    In-process providers from the config are served beside remote ones. The live
    dashboard is at /, chat at /chat, Prometheus metrics at /metrics and the health
    report at /health. One log line per request at info (--log-format json for
    machines). SIGINT or SIGTERM stops taking work, lets in-flight calls finish
    (server.shutdown_grace), tells providers, and exits 0.

    With --redis (or server.redis) the node shares one routing table with the other
    nodes on that Redis; `gleitzeit serve status` lists them.
    """
    if ctx.invoked_subcommand is not None:
        return
    from gleitzeit.socketio.server import GleitzeitServer

    _setup_logs(ctx, log_format, log_level, "info")
    state = state_of(ctx)
    if redis_url:
        from gleitzeit.cli.cluster_cmd import use_redis

        use_redis(state.config, redis_url)
    host = state.host()
    server = GleitzeitServer(host, bind=bind, port=port, insecure=insecure)

    def ready(srv: GleitzeitServer) -> None:
        # this node's own instances, not the other nodes' ones it mirrors
        local = sum(1 for i in srv.host.registry if i.transport != "cluster")
        auth = "no token" if srv.guard.credentials.open else "token required"
        click.echo(f"gleitzeit serving on {srv.url} ({local} local provider instance(s); {auth})")
        if srv.cluster is not None:
            click.echo(f"node {srv.cluster.node} of the cluster on {srv.cluster.describe()['url']}")
        click.echo("press Ctrl+C to stop", err=True)

    _asyncio().run(server.serve_forever(ready))
    click.echo("gleitzeit stopped", err=True)


@click.group("provider")
def provider_group() -> None:
    """Run a provider as a separate process."""


def _make_provider(state: Any, target: str, name: str | None, raw_settings: str | None) -> Any:
    from gleitzeit._factory import build_provider

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
@click.option(
    "--connect-timeout",
    type=float,
    help="Give up (exit 1) when not registered within this many seconds; default: keep trying.",
)
@log_options("warning")
@click.pass_context
def provider_run(
    ctx: click.Context,
    target: str,
    url: str,
    token: str | None,
    name: str | None,
    raw_settings: str | None,
    connect_timeout: float | None,
    log_format: str,
    log_level: str | None,
) -> None:
    """Run TARGET (an installed provider type such as `calculator`, or `module:Class`)
    and serve it to the server at --server until SIGINT/SIGTERM.

    Several processes with the same name are instances of one provider. Until the
    server answers, it says so and retries with backoff (0.5 s doubling to 5 s).
    """
    from gleitzeit.logs import add_secret
    from gleitzeit.socketio.runner import ProviderRunner

    _setup_logs(ctx, log_format, log_level, "warning")
    add_secret(token)
    state = state_of(ctx)
    provider = _make_provider(state, target, name, raw_settings)
    runner = ProviderRunner(provider, url, token=token)

    async def go() -> None:
        import signal  # its enums cost more to build than the rest of this module

        loop = _asyncio().get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, runner.stop)
            except (NotImplementedError, RuntimeError):
                pass

        dropped: list[bool] = []

        def lost() -> None:
            dropped.append(True)
            click.echo(f"lost the connection to {url}; reconnecting", err=True)

        runner.on_drop = lost

        async def announce() -> None:
            while True:
                await runner.registered.wait()
                if dropped:
                    dropped.clear()
                    click.echo(f"reconnected to {url}", err=True)
                click.echo(
                    f"provider {provider.name} registered with {url} as {runner.instance_id}"
                )
                while runner.registered.is_set() and not dropped:
                    await _asyncio().sleep(0.2)

        async def give_up() -> None:
            assert connect_timeout is not None
            try:
                await _asyncio().wait_for(runner.registered.wait(), connect_timeout)
            except _asyncio().TimeoutError:
                gave_up.append(connect_timeout)
                runner.stop()

        click.echo(
            f"connecting to {url}; until it answers, retrying with backoff "
            f"(0.5 s doubling to 5 s){'' if connect_timeout else '; Ctrl+C to stop'}",
            err=True,
        )
        helpers = [_asyncio().ensure_future(announce())]
        if connect_timeout is not None:
            helpers.append(_asyncio().ensure_future(give_up()))
        try:
            await runner.run()
        finally:
            for helper in helpers:
                helper.cancel()
            await _asyncio().gather(*helpers, return_exceptions=True)

    gave_up: list[float] = []
    _asyncio().run(go())
    if gave_up:
        from gleitzeit.errors import ServerUnreachable

        raise ServerUnreachable(
            f"Not registered with {url} within {gave_up[0]:g}s (--connect-timeout)",
            hint="start the server with `gleitzeit serve`, or check --server and --token",
        )


from gleitzeit.cli.cluster_cmd import serve_status  # noqa: E402 - a subcommand of serve

serve.add_command(serve_status)
COMMANDS = [serve, provider_group]
