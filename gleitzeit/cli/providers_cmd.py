"""``gleitzeit providers ...``: list, check and invoke providers."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from typing import Any

import click

from gleitzeit.cli.output import echo_json, error, table, warn, write
from gleitzeit.cli.state import state_of
from gleitzeit.kinds import KINDS


def _asyncio():  # noqa: ANN202 - asyncio costs ~25 ms to import; only commands that run use it
    import asyncio

    return asyncio


@click.group("providers")
def providers_group() -> None:
    """Provider instances: list, health, invoke."""


def _run(coro: Any) -> Any:
    return _asyncio().run(coro)


server_option = click.option(
    "--server",
    "server_url",
    envvar="GLEITZEIT_SERVER",
    help="Use a running `gleitzeit serve` at this URL.",
)
token_option = click.option("--token", envvar="GLEITZEIT_TOKEN", help="The server's token.")


def _warn_setup_problems(api: Any) -> None:
    from gleitzeit.host import Host

    if isinstance(api, Host):  # a server reports its own setup problems in its log
        for where, problem in api.plugin_errors.items():
            warn(problem if problem.startswith(where) else f"{where}: {problem}")
        for rec in api.plugins.records.values():
            if rec.status == "failed":  # its providers are missing from the list: say why
                warn(f"plugin {rec.name} failed: {rec.error} (gleitzeit plugins info {rec.name})")


@providers_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON, with method schemas.")
@server_option
@token_option
@click.pass_context
def providers_list(
    ctx: click.Context, as_json: bool, server_url: str | None, token: str | None
) -> None:
    """List provider instances with their methods, models, health and calls in flight."""
    state = state_of(ctx)

    async def go() -> list[Any]:
        async with state.api(server_url, token, lazy=False) as api:
            _warn_setup_problems(api)
            return await api.providers(check=not server_url)

    with contextlib.redirect_stdout(sys.stderr):  # what providers print, at start
        data = _run(go())
    if as_json:
        echo_json(data)
        return
    if server_url:
        # A node of a cluster lists the other nodes' instances too: say where each lives.
        nodes = any("node" in d for d in data)
        rows = [
            [
                d["id"],
                d["kind"],
                d["transport"],
                *([d.get("node", "(this node)")] if nodes else []),
                d["status"],
                d["in_flight"],
                ", ".join(d["methods"]),
            ]
            for d in data
        ]
        head = ["INSTANCE", "KIND", "TRANSPORT", *(["NODE"] if nodes else [])]
        click.echo(table([*head, "STATUS", "IN-FLIGHT", "METHODS"], rows))
    else:
        rows = [
            [d["name"], d["kind"], d["status"], ", ".join(d["methods"]), ", ".join(d["models"])]
            for d in data
        ]
        click.echo(table(["NAME", "KIND", "STATUS", "METHODS", "MODELS"], rows))
    for d in data:
        if d["status"] == "unhealthy" and d["health_detail"]:
            click.echo(f"\n{d['name']}: {d['health_detail']}")


@providers_group.command("health")
@click.argument("name", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@server_option
@token_option
@click.pass_context
def providers_health(
    ctx: click.Context, name: str | None, as_json: bool, server_url: str | None, token: str | None
) -> None:
    """Run health checks now, for every provider or the one NAME: status, last
    heartbeat, calls in flight, errors, latency.

    Exits 1 when a checked instance is unhealthy.
    """
    state = state_of(ctx)

    async def go() -> list[dict[str, Any]]:
        async with state.api(server_url, token) as api:
            return await api.health(name)

    data = _run(go())
    if as_json:
        echo_json(data)
    else:
        rows = [
            [
                d["id"] if server_url else d["name"],
                d["status"]
                + (f", cooling down {d['cooling_down_s']:.0f}s" if d.get("cooling_down_s") else ""),
                _ago(d.get("last_heartbeat")),
                d["in_flight"],
                d["errors"],
                f"{d['check_latency_ms']:.1f} ms" if d.get("check_latency_ms") is not None else "",
                d["detail"],
            ]
            for d in data
        ]
        headers = ["INSTANCE" if server_url else "NAME", "STATUS", "HEARTBEAT", "IN-FLIGHT"]
        click.echo(table(headers + ["ERRORS", "LATENCY", "DETAIL"], rows))
    if any(d["status"] == "unhealthy" for d in data):
        ctx.exit(1)


def _ago(stamp: float | None) -> str:
    if not stamp:
        return ""
    return f"{max(0.0, time.time() - stamp):.1f}s ago"


def _parse_args(raw: str | None) -> dict[str, Any]:
    if raw is None:
        return {}
    source = "--args"
    if raw == "-":
        raw, source = sys.stdin.read(), "stdin"
    elif raw.startswith("@"):
        path = raw[1:]
        try:
            with open(path, encoding="utf-8") as fh:
                raw, source = fh.read(), path
        except OSError as exc:
            raise click.BadParameter(
                f"cannot read {path}: {exc.strerror}", param_hint="--args"
            ) from None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(
            f"not valid JSON in {source} (line {exc.lineno}, column {exc.colno}): {exc.msg}. "
            """Example: --args '{"a": 5, "b": 3}'""",
            param_hint="--args",
        ) from None
    if not isinstance(value, dict):
        raise click.BadParameter(
            f"must be a JSON object, got {type(value).__name__}", param_hint="--args"
        )
    return value


@providers_group.command("invoke")
@click.argument("provider")
@click.argument("method")
@click.option("--args", "raw_args", help="Parameters as a JSON object; @file.json or - for stdin.")
@click.option("--model", help="Route to an instance that serves this model.")
@click.option("--stream", is_flag=True, help="Print tokens as they arrive.")
@click.option("--json", "as_json", is_flag=True, help="Print only the result as JSON.")
@click.option("--timeout", type=float, help="Seconds to wait (default: routing.timeout).")
@server_option
@token_option
@click.pass_context
def providers_invoke(
    ctx: click.Context,
    provider: str,
    method: str,
    raw_args: str | None,
    model: str | None,
    stream: bool,
    as_json: bool,
    timeout: float | None,
    server_url: str | None,
    token: str | None,
) -> None:
    """Call METHOD on PROVIDER, e.g. `providers invoke calculator calc/add --args '{"a": 1, "b": 2}'`.

    PROVIDER may be `-` to let the router choose any provider that serves METHOD.
    """
    params = _parse_args(raw_args)
    state = state_of(ctx)
    target = None if provider == "-" else provider
    out = sys.stdout  # the command's output; what providers print goes to stderr

    async def go() -> Any:
        async with state.api(server_url, token) as host:
            if not stream:
                return await host.invoke(
                    method, params, provider=target, model=model, timeout=timeout
                )
            wrote_text = False
            try:
                async for chunk in host.stream(
                    method, params, provider=target, model=model, chunk_timeout=timeout
                ):
                    if as_json:
                        click.echo(json.dumps(chunk, ensure_ascii=False, default=str), file=out)
                    elif chunk.get("token"):
                        write(chunk["token"], out)
                        wrote_text = True
            finally:
                if wrote_text:
                    write("\n", out)
            return None

    started = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):
        result = _run(go())
    if stream:
        return
    if as_json:
        click.echo(json.dumps(result, ensure_ascii=False, default=str))
    elif isinstance(result, dict) and isinstance(result.get("response"), str):
        click.echo(result["response"])
    else:
        echo_json(result)
    if state.debug:
        error(f"(took {time.perf_counter() - started:.3f}s)")


@providers_group.command("create-template")
@click.option("--type", "kind", type=click.Choice(KINDS), required=True)
@click.option("--name", required=True)
@click.option("--dir", "directory", type=click.Path(file_okay=False), default=".")
@click.pass_context
def providers_create_template(ctx: click.Context, kind: str, name: str, directory: str) -> None:
    """Same as `gleitzeit plugins new NAME --kind TYPE`."""
    from gleitzeit.cli.plugins_cmd import plugins_new

    ctx.invoke(plugins_new, name=name, kind=kind, directory=directory, description=None)


COMMANDS = [providers_group]
