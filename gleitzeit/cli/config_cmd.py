"""``gleitzeit config ...``: write, check and show ``gleitzeit.yaml``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click

from gleitzeit.cli.output import echo_json, warn
from gleitzeit.cli.renamed import GroupWithRenames
from gleitzeit.cli.state import state_of
from gleitzeit.config.secrets import looks_secret

# user:password@ in a URL, and query parameters that carry credentials.
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@\s]+)@")
_URL_QUERY_SECRET = re.compile(
    r"(?P<name>[?&][^=&#\s]*(?:key|token|secret|password|passwd|sig|auth)[^=&#\s]*=)"
    r"(?P<value>[^&#\s]+)",
    re.IGNORECASE,
)


def mask_url(text: str) -> str:
    """Hide credentials embedded in URLs: ``https://user:pass@host`` and
    ``?api_key=...`` become ``https://****@host`` and ``?api_key=****``."""
    text = _URL_USERINFO.sub(lambda m: f"{m['scheme']}****@", text)
    return _URL_QUERY_SECRET.sub(lambda m: f"{m['name']}****", text)


def mask_secrets(data: Any, key: str = "") -> Any:
    """Settings no model describes: replace the values of secret-looking keys with
    '****', and credentials inside URLs anywhere."""
    if isinstance(data, dict):
        return {k: mask_secrets(v, str(k)) for k, v in data.items()}
    if isinstance(data, list):
        return [mask_secrets(v, key) for v in data]
    if looks_secret(key) and data not in (None, ""):
        return "****"
    if isinstance(data, str) and "://" in data:
        return mask_url(data)
    return data


@click.group("config", cls=GroupWithRenames)
def config_group() -> None:
    """Write, validate and show the configuration."""


@config_group.command("init")
@click.option(
    "--path",
    type=click.Path(dir_okay=False),
    default="gleitzeit.yaml",
    show_default=True,
    help="Where to write the file.",
)
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@click.pass_context
def config_init(ctx: click.Context, path: str, force: bool) -> None:
    """Write a commented gleitzeit.yaml listing the installed plugins and their settings."""
    from gleitzeit.config import Config
    from gleitzeit.config.template import render
    from gleitzeit.plugins import Plugins

    target = Path(path)
    if target.exists() and not force:
        raise click.UsageError(f"{target} exists; pass --force to overwrite it")
    plugins = Plugins.load(Config(), strict=False)
    entries = []
    for rec in plugins.listing():
        about = f"{rec.distribution} {rec.version}" if rec.distribution else None
        if rec.status == "failed":
            about = f"{about or ''} (failed to load: {rec.error})".strip()
        entries.append((rec.name, about, rec.settings_schema))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render(entries), encoding="utf-8")
    click.echo(f"wrote {target}")


@config_group.command("validate")
@click.pass_context
def config_validate(ctx: click.Context) -> None:
    """Check the config and every enabled plugin's settings. Exit 0 when valid, 2 when not."""
    from gleitzeit._factory import check_entries
    from gleitzeit.errors import ConfigError
    from gleitzeit.plugins import Plugins

    state = state_of(ctx)
    config = state.config  # raises ConfigError (exit 2) naming file, field and value
    plugins = Plugins.load(config, strict=False)
    problems = [line for r in plugins.records.values() for line in r.config_problems]
    routers = plugins.routers
    if config.routing.strategy not in routers:
        problems.append(
            f"routing.strategy: unknown router {config.routing.strategy!r}; "
            f"available: {', '.join(sorted(routers))}"
        )
    problems += check_entries(plugins, config)
    for r in plugins.failed():
        if not r.config_error:
            warn(f"plugin {r.name} failed to load: {r.error}")
    label = str(config.source) if config.source else "built-in defaults (no config file)"
    if problems:
        raise ConfigError(f"Invalid configuration in {label}", problems=problems)
    loaded = len([r for r in plugins.loaded() if not r.builtin])
    click.echo(f"ok: {label} is valid ({loaded} plugin(s) enabled)")


@config_group.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of YAML.")
@click.pass_context
def config_show(ctx: click.Context, as_json: bool) -> None:
    """Print the effective config: defaults filled in, env substituted, secrets masked.

    A value is masked when its field is a secret (docs/config.md); values an
    environment variable supplies are shown with the variable's name."""
    import os

    from pydantic import BaseModel

    from gleitzeit.config.secrets import env_sources

    state = state_of(ctx)
    config = state.config
    data = config.model_dump(by_alias=True, mode="json")
    from_env = list(env_sources(config))
    plugins = state.plugins
    plugins.settle()
    described: set[str] = set()
    for rec in plugins.loaded():
        if rec.builtin and rec.name not in config.plugins:
            continue
        if isinstance(rec.settings, BaseModel):
            data["plugins"][rec.name] = rec.settings.model_dump(mode="json")
            described.add(rec.name)
            from_env += env_sources(rec.settings, f"plugins.{rec.name}.")
        elif rec.name not in data["plugins"]:
            data["plugins"][rec.name] = {}
    # Settings no model describes (a plugin that is not installed, a provider entry's
    # settings): masked by key name, so that nothing leaks from what we cannot see into.
    for name, raw in data["plugins"].items():
        if name not in described:
            data["plugins"][name] = mask_secrets(raw)
    for entry in data["providers"].values():
        entry["settings"] = mask_secrets(entry.get("settings") or {})
    data = _masked(data)
    for path, var, secret in from_env:
        _put(data, path, "****" if secret else os.environ[var])
    source = str(config.source) if config.source else "(no file: built-in defaults)"
    if as_json:
        echo_json(
            {"source": source, "from_env": {path: var for path, var, _ in from_env}, "config": data}
        )
        return
    import yaml

    click.echo(f"# source: {source}")
    for path, var, _ in from_env:
        click.echo(f"# {path}: from ${var}")
    click.echo(yaml.safe_dump(data, sort_keys=False, allow_unicode=True).rstrip())


def _masked(data: Any) -> Any:
    """Secret fields as ``****`` (pydantic renders them ``**********``), and credentials
    inside URLs hidden everywhere."""
    if isinstance(data, dict):
        return {k: _masked(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_masked(v) for v in data]
    if data == "**********":
        return "****"
    if isinstance(data, str) and "://" in data:
        return mask_url(data)
    return data


def _put(data: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for part in parents:
        data = data.setdefault(part, {})
    data[last] = value


COMMANDS = [config_group]
