"""The pydantic models of ``gleitzeit.yaml``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    field_validator,
    model_validator,
)

from gleitzeit.aliases import ModelsConfig
from gleitzeit.cluster.settings import ClusterConfig, RedisUrl


class StrictModel(BaseModel):
    """A config section: unknown keys are errors (with a did-you-mean)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class RoutingConfig(StrictModel):
    """How a request is matched to a provider instance."""

    strategy: str = Field("least-in-flight", description="router name")
    retries: int = Field(2, ge=0, le=10, description="retries on another instance")
    timeout: float = Field(300.0, gt=0, description="seconds one invocation may take")
    cooldown: float = Field(30.0, ge=0, description="seconds a failing instance rests")
    failure_threshold: int = Field(3, ge=1, description="consecutive failures before cooldown")
    wait_for_instance: float = Field(
        5.0,
        ge=0,
        description="seconds a call whose instance went away waits for one to (re)appear",
    )


class HealthConfig(StrictModel):
    """How provider health is watched."""

    interval: float = Field(30.0, gt=0, description="seconds between health checks")
    timeout: float = Field(5.0, gt=0, description="seconds one health check may take")
    startup_timeout: float = Field(30.0, gt=0, description="seconds a provider may take to start")


class FilesConfig(StrictModel):
    """Where ``file_path`` / ``image_path`` request parameters may read from."""

    allowed_roots: list[str] = Field(default_factory=lambda: ["."])
    max_bytes: int = Field(10 * 1024 * 1024, gt=0)


Role = Literal["client", "admin", "provider"]


def _no_blank(value: str | None, what: str) -> str | None:
    if value is None:
        return None
    if not value.strip():
        raise ValueError(
            f"an empty {what} would silently mean no authentication; remove the key for an "
            f"open server, or set a real {what}"
        )
    if not value.isascii() or not value.isprintable():
        raise ValueError(f"a {what} is printable ASCII only")
    return value


class ServerConfig(StrictModel):
    """``gleitzeit serve``: where it listens, who may connect, and how it treats remote
    providers."""

    host: str = Field("127.0.0.1", description="address to bind; 0.0.0.0 for every interface")
    port: int = Field(8000, ge=0, le=65535)
    token: SecretStr | None = Field(
        None,
        description="static shared token (single-user set-ups); default $GLEITZEIT_TOKEN",
        json_schema_extra={"env": "GLEITZEIT_TOKEN"},
    )
    token_roles: list[Role] = Field(
        default_factory=lambda: list[Role](["client", "admin"]),
        description="roles the static token grants; add 'provider' to let it register "
        "any provider name",
    )
    secret: SecretStr | None = Field(
        None,
        description="HMAC secret that signs role tokens (`gleitzeit token create`); "
        "default $GLEITZEIT_SECRET",
        json_schema_extra={"env": "GLEITZEIT_SECRET"},
    )
    allowed_origins: list[str] = Field(
        default_factory=list,
        description="web origins besides the server's own that may connect, e.g. "
        "'https://app.example'",
    )
    insecure: bool = Field(
        False, description="allow a non-loopback bind without any credential (--insecure)"
    )
    max_payload_bytes: int = Field(
        1_000_000,
        gt=0,
        description="largest request, result or stream chunk accepted over Socket.IO, "
        "both from clients and from providers",
    )
    heartbeat_interval: float = Field(5.0, gt=0, description="seconds between provider heartbeats")
    stale_after: float = Field(
        15.0, gt=0, description="seconds without a heartbeat before an instance leaves routing"
    )
    ping_interval: float = Field(
        25.0,
        gt=0,
        description="seconds between engine.io pings on every connection (providers also "
        "heartbeat every heartbeat_interval, so pings need not be frequent)",
    )
    ping_timeout: float = Field(
        20.0, gt=0, description="seconds without a pong before a connection is dropped"
    )
    stream_window: int = Field(
        32,
        ge=2,
        le=10_000,
        description="chunks a stream may have in flight per hop before the sender waits for credit",
    )
    stream_buffer_bytes: int = Field(
        4_000_000, gt=0, description="bytes of one stream the server holds for a slow reader"
    )
    stream_stall_timeout: float = Field(
        60.0, gt=0, description="seconds a stream may wait on a reader before it is cancelled"
    )
    shutdown_grace: float = Field(
        10.0, ge=0, description="seconds in-flight calls may finish after SIGINT/SIGTERM"
    )
    redis: RedisUrl | None = Field(
        None,
        description="Redis URL the nodes of a cluster share (docs/scaling.md); none: one node",
    )
    cluster: ClusterConfig = Field(default_factory=ClusterConfig)

    @field_validator("token")
    @classmethod
    def _token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            _no_blank(value.get_secret_value(), "token")
        return value

    @field_validator("secret")
    @classmethod
    def _secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            _check_secret(value.get_secret_value(), "secret")
        return value

    def resolved_token(self) -> str | None:
        """The static token: ``server.token``, else ``$GLEITZEIT_TOKEN``; an empty one
        is a config error, not "no token"."""
        if self.token is not None:
            return self.token.get_secret_value()
        return _from_env("GLEITZEIT_TOKEN", "token", _no_blank)

    def resolved_secret(self) -> str | None:
        """The signing secret: ``server.secret``, else ``$GLEITZEIT_SECRET``."""
        if self.secret is not None:
            return self.secret.get_secret_value()
        return _from_env("GLEITZEIT_SECRET", "secret", _check_secret)


def _check_secret(value: str | None, what: str) -> str | None:
    value = _no_blank(value, what)
    if value is not None and len(value) < 32:
        raise ValueError(
            "the secret must be at least 32 characters (`gleitzeit token secret` makes one)"
        )
    return value


def _from_env(name: str, what: str, check: Any) -> str | None:
    import os

    from gleitzeit.errors import ConfigError

    value = os.environ.get(name)
    if value is None:
        return None
    try:
        result: str | None = check(value, what)
    except ValueError as exc:
        raise ConfigError(f"${name}: {exc}", hint=f"unset {name} or give it a value") from None
    return result


class WorkflowsConfig(StrictModel):
    """``gleitzeit run``: where runs are stored and how many calls run at once."""

    database: str | None = Field(
        None, description="SQLite file of runs; default: runs.sqlite in the user data dir"
    )
    concurrency: int = Field(8, ge=1, le=1000, description="calls in flight at once per run")
    allow_execute: bool = Field(
        False,
        description="let python/execute run scripts and code strings named in workflow files",
    )
    execute_timeout: float = Field(
        60.0, gt=0, description="seconds a python/execute script may run when it sets none"
    )
    execute_memory_mb: int = Field(
        1024, ge=16, description="address space a python/execute script may use (Linux)"
    )
    max_glob_matches: int = Field(
        10_000, ge=1, description="files one for_each glob may match before the task fails"
    )


class ChatConfig(StrictModel):
    """Chat sessions of ``gleitzeit serve`` (the ``/chat`` page, ``gleitzeit chat``)."""

    history_turns: int = Field(
        20, ge=0, le=1000, description="earlier exchanges sent with each new message"
    )


class ProviderInstanceConfig(StrictModel):
    """A named provider instance: a plugin's provider type, or a local class."""

    type: str | None = None
    class_: str | None = Field(None, alias="class")
    settings: dict[str, Any] = Field(default_factory=dict)
    enabled: bool = True

    @model_validator(mode="after")
    def _one_source(self) -> ProviderInstanceConfig:
        if (self.type is None) == (self.class_ is None):
            raise ValueError("give exactly one of 'type' (a plugin's provider) or 'class'")
        if self.class_ is not None and ":" not in self.class_ and "." not in self.class_:
            raise ValueError(f"'class' must look like 'package.module:Class', got {self.class_!r}")
        return self


class Config(StrictModel):
    """The whole of ``gleitzeit.yaml``."""

    autoload_plugins: bool = Field(
        True, description="enable installed plugins that the plugins: section does not name"
    )
    plugins: dict[str, Any] = Field(default_factory=dict)
    providers: dict[str, ProviderInstanceConfig] = Field(default_factory=dict)
    routing: RoutingConfig = Field(default_factory=RoutingConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
    files: FilesConfig = Field(default_factory=FilesConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    workflows: WorkflowsConfig = Field(default_factory=WorkflowsConfig)
    chat: ChatConfig = Field(default_factory=ChatConfig)
    models: ModelsConfig = Field(default_factory=ModelsConfig)

    _source: Path | None = PrivateAttr(None)
    _lines: dict[tuple, int] = PrivateAttr(default_factory=dict)
    _plugin_problems: dict[str, list[str]] = PrivateAttr(default_factory=dict)

    @property
    def source(self) -> Path | None:
        """The file this config was read from (None for the built-in defaults)."""
        return self._source

    def locate(self, loc: tuple) -> int | None:
        """The line in the source file of the value at ``loc``, when known."""
        while loc:
            if loc in self._lines:
                return self._lines[loc]
            loc = loc[:-1]
        return None

    def plugin_problems(self, name: str) -> list[str]:
        """Problems found in ``plugins.<name>`` before the plugin's own schema ran."""
        return list(self._plugin_problems.get(name, []))

    def plugin_section(self, name: str) -> dict | None:
        """The settings given for plugin ``name``; None when the section is absent."""
        if name not in self.plugins:
            return None
        section = self.plugins[name]
        if isinstance(section, dict):
            return {k: v for k, v in section.items() if k != "enabled"}
        return {}

    def plugin_enabled(self, name: str) -> bool:
        """Whether ``plugins:`` (and ``autoload_plugins``) enable plugin ``name``."""
        if name not in self.plugins:
            return self.autoload_plugins
        section = self.plugins[name]
        if section is False:
            return False
        if isinstance(section, dict):
            return bool(section.get("enabled", True))
        return True

    @model_validator(mode="after")
    def _plugin_sections(self) -> Config:
        for name, section in self.plugins.items():
            if section is None or isinstance(section, (bool, dict)):
                continue
            raise ValueError(
                f"plugins.{name} must be true, false or a mapping of settings, got {section!r}"
            )
        return self
