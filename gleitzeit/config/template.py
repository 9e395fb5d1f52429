"""The commented ``gleitzeit.yaml`` that ``gleitzeit config init`` writes."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from gleitzeit.config.models import (
    Config,
    FilesConfig,
    HealthConfig,
    RoutingConfig,
    ServerConfig,
    WorkflowsConfig,
)

HEADER = """\
# gleitzeit.yaml — configuration of the Gleitzeit host.
# Values may use ${VAR} or ${VAR:-default} to read environment variables.
# Check it with `gleitzeit config validate`; see it resolved with `gleitzeit config show`.

# Enable installed plugins that the plugins: section below does not name.
autoload_plugins: true
"""


def _field_lines(model: type[BaseModel], indent: str, commented: bool) -> list[str]:
    lines = []
    for name, field in model.model_fields.items():
        default: Any = field.get_default(call_default_factory=True)
        if isinstance(default, BaseModel):  # a nested section (server.cluster)
            lines.append(f"{indent}{'# ' if commented else ''}{field.alias or name}:")
            lines += _field_lines(type(default), indent + "  ", commented)
            continue
        shown = "" if default is None else f" {_yaml_scalar(default)}"
        text = f"{field.alias or name}:{shown}"
        note = f"  # {field.description}" if field.description else ""
        lines.append(f"{indent}{'# ' if commented else ''}{text}{note}")
    return lines


def _yaml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(_yaml_scalar(v) for v in value) + "]"
    if isinstance(value, str):
        return f'"{value}"' if value else '""'
    return str(value)


def render(plugins: list[tuple[str, str | None, type[BaseModel] | None]]) -> str:
    """The template; ``plugins`` is (name, description, settings schema) of each
    installed plugin."""
    out = [HEADER, "plugins:"]
    if not plugins:
        out.append("  # none installed yet; e.g. `pip install gleitzeit-calculator`")
    for name, about, schema in plugins:
        out.append(f"  {name}:" + (f"  # {about}" if about else ""))
        out.append("    enabled: true")
        if schema is not None:
            out += _field_lines(schema, "    ", commented=True)
    out += [
        "",
        "# Extra named provider instances: a plugin's provider type with its own settings,",
        "# or a local provider class that is not packaged as a plugin.",
        "providers: {}",
        "#  calc2:",
        "#    type: calculator",
        "#    settings: {precision: 2}",
        "#  mine:",
        "#    class: mypackage.providers:MyProvider",
        "",
        "routing:",
        *_field_lines(RoutingConfig, "  ", commented=False),
        "",
        "health:",
        *_field_lines(HealthConfig, "  ", commented=False),
        "",
        "# Where file_path / image_path parameters may read from.",
        "files:",
        *_field_lines(FilesConfig, "  ", commented=False),
        "",
        "# `gleitzeit serve` and remote providers over Socket.IO.",
        "server:",
        *_field_lines(ServerConfig, "  ", commented=False),
        "",
        "# `gleitzeit run`: workflow runs.",
        "workflows:",
        *_field_lines(WorkflowsConfig, "  ", commented=False),
        "",
    ]
    text = "\n".join(out)
    assert Config is not None
    return text
