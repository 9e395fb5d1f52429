"""The plugin's settings: which MCP servers to reach, and how."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

# A server's name becomes the protocol prefix of its methods (`files/read_file`), so it
# follows the host's rule for that prefix.
SERVER_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,31}$")


class ServerConfig(BaseModel):
    """One MCP server: a command to run (stdio) or a URL (streamable HTTP)."""

    model_config = ConfigDict(extra="forbid")

    command: str | None = Field(None, description="program that runs a stdio MCP server")
    args: list[str] = Field(default_factory=list, description="arguments of the command")
    # Secret-typed: they often carry API keys, and `config show` must not print them.
    env: dict[str, SecretStr] = Field(
        default_factory=dict, description="extra environment variables for the command"
    )
    cwd: str | None = Field(None, description="working directory of the command")
    url: str | None = Field(None, description="endpoint of a streamable-HTTP MCP server")
    headers: dict[str, SecretStr] = Field(
        default_factory=dict, description="HTTP headers sent to the url (e.g. Authorization)"
    )
    timeout: float = Field(60.0, gt=0, description="seconds one call may take")
    startup_timeout: float = Field(
        30.0, gt=0, description="seconds to start the server and read its tools"
    )
    restart_backoff: float = Field(
        0.5, gt=0, description="seconds before the first restart after a crash; doubles each time"
    )
    restart_backoff_max: float = Field(30.0, gt=0, description="longest wait between two restarts")

    @model_validator(mode="after")
    def _one_transport(self) -> ServerConfig:
        if (self.command is None) == (self.url is None):
            raise ValueError(
                "give either 'command' (a stdio server) or 'url' (a streamable-HTTP server)"
            )
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url {self.url!r} must start with http:// or https://")
        if self.url is not None and (self.args or self.env or self.cwd):
            raise ValueError("args, env and cwd apply to 'command' servers only")
        if self.command is not None and self.headers:
            raise ValueError("headers apply to 'url' servers only")
        return self

    def env_values(self) -> dict[str, str]:
        """The environment variables, in clear."""
        return {k: v.get_secret_value() for k, v in self.env.items()}

    def header_values(self) -> dict[str, str]:
        """The HTTP headers, in clear."""
        return {k: v.get_secret_value() for k, v in self.headers.items()}

    @property
    def transport(self) -> str:
        """``stdio`` or ``http``."""
        return "stdio" if self.command is not None else "http"


class McpSettings(BaseModel):
    """Settings of the ``mcp`` plugin (``plugins: mcp:`` in gleitzeit.yaml)."""

    model_config = ConfigDict(extra="forbid")

    servers: dict[str, ServerConfig] = Field(
        default_factory=dict,
        description="MCP servers by name; each becomes the provider mcp-<name>",
    )

    @field_validator("servers", mode="before")
    @classmethod
    def _names(cls, value: Any) -> Any:
        if isinstance(value, dict):
            bad = [k for k in value if not (isinstance(k, str) and SERVER_NAME_RE.match(k))]
            if bad:
                raise ValueError(
                    f"server name {bad[0]!r} must be 1-32 lowercase letters, digits, '_', '.' "
                    "or '-', starting with a letter or digit (it prefixes the method names)"
                )
        return value
