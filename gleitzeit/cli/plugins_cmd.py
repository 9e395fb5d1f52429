"""``gleitzeit plugins ...``: what is installed, enabled, failed, and why."""

from __future__ import annotations

import click

from gleitzeit.cli.output import echo_json, table
from gleitzeit.cli.state import state_of


@click.group("plugins")
def plugins_group() -> None:
    """Installed plugins and their status."""


@plugins_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.option("--all", "show_all", is_flag=True, help="Include the built-in plugins.")
@click.pass_context
def plugins_list(ctx: click.Context, as_json: bool, show_all: bool) -> None:
    """List plugins: NAME VERSION STATUS PROVIDES, and why a plugin failed."""
    plugins = state_of(ctx).plugins
    records = plugins.listing(include_builtins=show_all)
    if as_json:
        echo_json([r.to_dict() for r in records])
        return
    if not records:
        click.echo("No plugins installed. Try: pip install gleitzeit-calculator")
        return
    rows = []
    for r in records:
        provides = r.providers + r.transports + r.routers + r.health_checks
        rows.append([r.name, r.version, r.status, ", ".join(provides)])
    click.echo(table(["NAME", "VERSION", "STATUS", "PROVIDES"], rows))
    for r in records:
        for warning in r.warnings:
            click.echo(f"\n{r.name}: warning: {warning}")
    failed = [r for r in records if r.status == "failed"]
    for r in failed:
        click.echo(f"\n{r.name}: {r.error}", err=False)
    if failed:
        click.echo(
            "\nA failed plugin does not stop the others. To skip plugins, set "
            "GLEITZEIT_PLUGINS=name,... or disable them in gleitzeit.yaml."
        )


COMMANDS = [plugins_group]
