"""``gleitzeit serve status``: the nodes of a cluster, from its Redis; and
``--redis`` for ``gleitzeit serve``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from gleitzeit.cli.output import echo_json, table
from gleitzeit.cli.state import state_of

if TYPE_CHECKING:
    from gleitzeit.config import Config


def use_redis(config: Config, url: str) -> None:
    """Set ``server.redis`` from ``--redis``, checked as the config file's would be."""
    from gleitzeit.cluster.settings import check_redis_url

    try:
        config.server.redis = check_redis_url(url)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--redis") from None


def _ago(seconds: float) -> str:
    return f"{seconds:.1f}s ago"


@click.command("status")
@click.option(
    "--redis",
    "redis_url",
    envvar="GLEITZEIT_REDIS",
    help="The cluster's Redis (default: server.redis of the config).",
)
@click.option("--json", "as_json", is_flag=True, help="Print JSON, with every instance.")
@click.pass_context
def serve_status(ctx: click.Context, redis_url: str | None, as_json: bool) -> None:
    """The nodes of the cluster on a Redis: each node's URL, instances and calls in
    flight per node, and when it was last seen. Nodes whose TTL ran out are gone."""
    import asyncio

    from gleitzeit.cluster.status import read_status

    config = state_of(ctx).config
    if redis_url:
        use_redis(config, redis_url)
    url = config.server.redis
    if not url:
        raise click.UsageError(
            "no Redis to read: pass --redis URL, or set server.redis in gleitzeit.yaml"
        )
    rows: list[dict[str, Any]] = asyncio.run(read_status(url, config.server.cluster.prefix))
    if as_json:
        echo_json(rows)
        return
    if not rows:
        click.echo("no live nodes on this Redis")
        return
    click.echo(
        table(
            ["NODE", "URL", "INSTANCES", "IN-FLIGHT", "LAST SEEN"],
            [
                [
                    r["node"],
                    r["url"] or "-",
                    len(r["instances"]),
                    sum(i["in_flight"] or 0 for i in r["instances"]),
                    _ago(r["seen_ago"]),
                ]
                for r in rows
            ],
        )
    )
    lines = []
    for r in rows:
        if r["instances"]:
            names: dict[str, int] = {}
            for inst in r["instances"]:
                names[inst["name"]] = names.get(inst["name"], 0) + 1
            shown = ", ".join(f"{n} x{c}" if c > 1 else n for n, c in sorted(names.items()))
            lines.append(f"{r['node']}: {shown}")
    if lines:  # one blank line between the table and the providers per node
        click.echo("\n" + "\n".join(lines))
