"""``gleitzeit plugins ...``: what is installed, enabled, failed, and why."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from gleitzeit.cli.output import echo_json, table
from gleitzeit.cli.state import state_of
from gleitzeit.kinds import KINDS


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
        if r.held:
            click.echo(f"{r.name}: its providers are down until that is fixed")
    failed = [r for r in records if r.status == "failed"]
    for r in failed:
        click.echo(f"\n{r.name}: {r.error}", err=False)
    if failed:
        click.echo(
            "\nA failed plugin does not stop the others. To skip plugins, set "
            "GLEITZEIT_PLUGINS=name,... or disable them in gleitzeit.yaml."
        )


COMMANDS = [plugins_group]


@plugins_group.command("new")
@click.argument("name")
@click.option("--kind", type=click.Choice(KINDS), default="tool", show_default=True)
@click.option(
    "--dir", "directory", type=click.Path(file_okay=False), default=".", show_default=True
)
@click.option("--description", help="One line about the plugin.")
def plugins_new(name: str, kind: str, directory: str, description: str | None) -> None:
    """Write a complete plugin distribution gleitzeit-NAME/: pyproject.toml with the entry
    point, hook implementations, a provider, a settings schema, tests and a README."""
    from pathlib import Path

    from gleitzeit._scaffold import scaffold

    root = scaffold(name, kind, Path(directory), description=description)
    click.echo(f"wrote {root}/")
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        click.echo(f"  {path.relative_to(root)}")
    click.echo(
        f"\nnext:\n  cd {root}\n  gleitzeit plugins install -e .\n  gleitzeit plugins list\n  pytest"
    )


def _config_file(ctx: click.Context) -> Path | None:
    from gleitzeit.config.paths import find_config_path

    state = state_of(ctx)
    return find_config_path(state.config_path, state.config_origin)


def _snapshot(config: Path | None) -> dict[str, tuple[str | None, str]]:
    """name -> (version, status) of every installed plugin, read in a fresh process (this
    one's view of installed packages does not change when pip runs).

    It runs in an empty directory, with this command's config file named: ``python -m``
    puts the working directory first on sys.path, where a plugin's own folder (its
    ``*.egg-info``) would show it installed whatever pip did."""
    import json
    import os
    import subprocess
    import sys
    import tempfile

    env = dict(os.environ)
    if config is not None:
        env["GLEITZEIT_CONFIG"] = str(config.resolve())
    with tempfile.TemporaryDirectory() as empty:
        out = subprocess.run(
            [sys.executable, "-m", "gleitzeit", "plugins", "list", "--json"],
            capture_output=True,
            text=True,
            cwd=empty,
            env=env,
        )
    try:
        records = json.loads(out.stdout)
    except ValueError:
        return {}
    return {r["name"]: (r["version"], r["status"]) for r in records}


Listing = dict[str, tuple[Any, Any]]


def _report(before: Listing, after: Listing) -> None:
    changed = False
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old == new:
            continue
        changed = True
        if old is None:
            assert new is not None
            click.echo(f"+ {name} {new[0] or ''} ({new[1]})")
        elif new is None:
            click.echo(f"- {name} {old[0] or ''}")
        elif new[0] is None and new[1] == "failed":
            click.echo(f"- {name} {old[0] or ''} (gleitzeit.yaml still configures it)")
        else:
            click.echo(f"~ {name} {old[0]} -> {new[0]} ({new[1]})")
    if not changed:
        click.echo("no change in `gleitzeit plugins list`")


def _requirement(arg: str) -> str:
    """A bare plugin name means its distribution: `openai` -> `gleitzeit-openai`."""
    import os
    import re

    if (
        os.path.exists(arg)
        or not re.fullmatch(r"[a-z0-9][a-z0-9_-]*", arg)
        or arg.startswith("gleitzeit")
    ):
        return arg
    return f"gleitzeit-{arg}"


def _pip(args: list[str]) -> None:
    import subprocess
    import sys

    from gleitzeit.errors import PluginError

    cmd = [sys.executable, "-m", "pip", *args]
    click.echo("$ " + " ".join(cmd), err=True)
    code = subprocess.run(cmd).returncode
    if code != 0:
        raise PluginError(f"pip exited with {code}", hint="see its output above")


@plugins_group.command(
    "install", context_settings={"ignore_unknown_options": True, "allow_extra_args": True}
)
@click.argument("names", nargs=-1)
@click.option(
    "-e", "--editable", "editables", multiple=True, help="Install a local plugin in editable mode."
)
@click.option("-U", "--upgrade", is_flag=True, help="Upgrade if already installed.")
@click.pass_context
def plugins_install(
    ctx: click.Context, names: tuple[str, ...], editables: tuple[str, ...], upgrade: bool
) -> None:
    """Install plugins with pip, into the environment gleitzeit itself runs in.

    NAME may be a plugin name (`openai` installs gleitzeit-openai), a distribution, or a
    path. Options after `--` go to pip (e.g. `-- --no-build-isolation`).
    """
    if not names and not editables:
        raise click.UsageError("name a plugin to install, or -e PATH")
    args = ["install"] + (["--upgrade"] if upgrade else [])
    for path in editables:
        args += ["-e", path]
    args += [_requirement(n) for n in names if not n.startswith("-")]
    args += [n for n in names if n.startswith("-")] + list(ctx.args)
    config = _config_file(ctx)
    before = _snapshot(config)
    _pip(args)
    _report(before, _snapshot(config))


@plugins_group.command(
    "uninstall", context_settings={"ignore_unknown_options": True, "allow_extra_args": True}
)
@click.argument("names", nargs=-1, required=True)
@click.pass_context
def plugins_uninstall(ctx: click.Context, names: tuple[str, ...]) -> None:
    """Uninstall plugins (by plugin or distribution name) with pip, from gleitzeit's own
    environment."""
    records = state_of(ctx).plugins.records
    dists = []
    for name in names:
        rec = records.get(name)
        dists.append(
            rec.distribution if rec is not None and rec.distribution else _requirement(name)
        )
    config = _config_file(ctx)
    before = _snapshot(config)
    _pip(["uninstall", "-y", *dists, *ctx.args])
    _report(before, _snapshot(config))


@plugins_group.command("info")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def plugins_info(ctx: click.Context, name: str, as_json: bool) -> None:
    """One plugin: distribution, status, hooks, providers with their methods and
    parameter schemas, and the JSON Schema of its settings."""
    from gleitzeit._validation import suggest
    from gleitzeit.errors import PluginError

    plugins = state_of(ctx).plugins
    rec = plugins.records.get(name)
    if rec is None:
        near = suggest(name, list(plugins.records))
        raise PluginError(
            f"No plugin named {name!r}" + (f"; did you mean {near!r}?" if near else ""),
            hint="see `gleitzeit plugins list --all`",
        )
    plugins.settle(rec)  # its provider classes and settings, which the listing skips
    data = rec.to_dict()
    data["entry_point"] = rec.entry_point
    data["config_schema"] = rec.settings_schema.model_json_schema() if rec.settings_schema else None
    data["provider_details"] = {}
    for pname in rec.providers:
        cls = plugins.provider_types[pname].cls
        data["provider_details"][pname] = {
            "kind": cls.kind,
            "description": cls.description,
            "version": cls.version,
            "methods": {n: s.describe() for n, s in sorted(cls.method_specs().items())},
        }
    if as_json:
        echo_json(data)
        return
    click.echo(f"{rec.name}  {rec.distribution or '-'} {rec.version or ''}  {rec.status}")
    if rec.entry_point:
        click.echo(f"entry point: {rec.entry_point}")
    if rec.error:
        click.echo(f"error: {rec.error}")
    click.echo(f"hooks: {', '.join(rec.hooks) or '-'}")
    for pname, info in data["provider_details"].items():
        click.echo(f"\nprovider {pname} ({info['kind']}): {info['description']}")
        for mname, spec in info["methods"].items():
            props = spec["params_schema"].get("properties", {})
            required = set(spec["params_schema"].get("required", []))
            params = ", ".join(f"{k}{'' if k in required else '?'}" for k in props)
            stream = " [streams]" if spec["streaming"] else ""
            click.echo(f"  {mname}({params}){stream}  {spec['description']}")
    if data["config_schema"]:
        click.echo(f"\nsettings (plugins: {rec.name}: in gleitzeit.yaml):")
        for key, prop in data["config_schema"].get("properties", {}).items():
            default = prop.get("default", "required")
            click.echo(f"  {key}: {default!r}  {prop.get('description', '')}")
