"""Entry module of the MCP plugin: hook implementations only, kept small.

Importing it must not import the ``mcp`` SDK: ``gleitzeit plugins list`` imports every
enabled plugin's entry module.
"""

from __future__ import annotations

from typing import Any

from gleitzeit import hookimpl


@hookimpl
def gleitzeit_config_schema() -> Any:
    from gleitzeit_mcp.settings import McpSettings

    return McpSettings


@hookimpl
def gleitzeit_register_providers(register: Any, settings: Any) -> None:
    if settings is None or not settings.servers:
        return
    from gleitzeit_mcp.provider import provider_class

    for server, config in settings.servers.items():
        register(provider_class(server, config))


@hookimpl
def gleitzeit_register_commands(cli: Any) -> None:
    from gleitzeit_mcp.cli import mcp_group

    cli.add_command(mcp_group)
