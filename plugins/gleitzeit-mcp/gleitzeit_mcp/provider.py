"""MCP servers as providers: one provider class per configured server.

Each tool of the server becomes a method ``<server>/<tool>`` whose parameter schema is
the tool's ``inputSchema``; ``<server>/resources.read`` and ``<server>/prompts.get``
are there when the server offers resources or prompts. The tools are read when the
provider starts and again whenever the server says they changed.

This module does not import the ``mcp`` SDK (``gleitzeit plugins list`` imports it to
register the classes); :mod:`gleitzeit_mcp.connection` does, from :meth:`start`.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from gleitzeit.errors import (
    ConfigError,
    InvalidParamsError,
    MethodNotFoundError,
    ProviderUnavailableError,
)
from gleitzeit.provider import MethodSpec, Provider
from gleitzeit_mcp.names import methods_for_tools
from gleitzeit_mcp.settings import McpSettings, ServerConfig

if TYPE_CHECKING:
    from mcp import types

    from gleitzeit_mcp.connection import Connection


class ReadResourceParams(BaseModel):
    """Parameters of ``<server>/resources.read``."""

    model_config = ConfigDict(extra="forbid")

    uri: str = Field(min_length=1, description="URI of the resource to read")


class GetPromptParams(BaseModel):
    """Parameters of ``<server>/prompts.get``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="name of the prompt")
    arguments: dict[str, str] = Field(default_factory=dict, description="the prompt's arguments")


@dataclass
class ToolSpec(MethodSpec):
    """A method that calls an MCP tool; its schema is the tool's ``inputSchema``."""

    tool: str = ""
    input_schema: dict[str, Any] = field(default_factory=dict)
    validator: Any = None

    def schema(self) -> dict[str, Any]:
        schema = dict(self.input_schema)
        schema.setdefault("type", "object")
        return schema


class _PerInstance:
    """A classmethod that, called on an instance, answers for that instance: the class
    knows the declared methods, a started instance also knows the server's tools."""

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn

    def __get__(self, obj: Any, owner: type | None = None) -> Callable[[], Any]:
        return functools.partial(self.fn, obj if obj is not None else owner)


def _specs(target: Any) -> dict[str, MethodSpec]:
    return dict(target.__methods__)


def _names(target: Any) -> list[str]:
    return sorted(target.__methods__)


class McpProvider(Provider):
    """Base of the providers :func:`provider_class` makes, one per MCP server."""

    kind = "tool"
    version = "0.1.0"
    dynamic_methods = True
    Settings = McpSettings

    #: The server this class reaches, and how.
    server_name: ClassVar[str] = ""
    server_config: ClassVar[ServerConfig | None] = None

    method_specs = _PerInstance(_specs)
    method_names = _PerInstance(_names)

    def __init__(self, settings: Any = None, *, name: str | None = None) -> None:
        super().__init__(settings, name=name)
        if type(self).server_config is None:
            raise ConfigError(
                f"{type(self).__qualname__} is not bound to an MCP server",
                hint="use gleitzeit_mcp.provider.provider_class(name, ServerConfig(...))",
            )
        self._set_methods(dict(type(self).__methods__))
        self.connection: Connection | None = None
        self._lock = asyncio.Lock()

    def _set_methods(self, specs: dict[str, MethodSpec]) -> None:
        # An instance attribute shadows the class's declared methods: the Provider base
        # reads self.__methods__ to resolve, describe and register, and this instance
        # adds the tools its server has.
        self.__methods__ = specs  # type: ignore[misc]

    @property
    def config(self) -> ServerConfig:
        """How to reach the server."""
        assert type(self).server_config is not None
        return type(self).server_config  # type: ignore[return-value]

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Start (or connect to) the server and read its tools."""
        from gleitzeit_mcp.connection import Connection

        async with self._lock:
            if self.connection is not None:
                return
            connection = Connection(self.server_name, self.config, self._tools_changed)
            await connection.open()
            self.connection = connection

    async def stop(self) -> None:
        """Stop the server (a stdio server's process ends with it)."""
        async with self._lock:
            connection, self.connection = self.connection, None
            if connection is not None:
                await connection.close()
            self._set_methods(dict(type(self).__methods__))

    async def health(self) -> dict[str, Any]:
        """Ping the session; a server that is down reports why, with its stderr tail."""
        connection = self.connection
        if connection is None:
            return {"status": "unhealthy", "detail": "not started"}
        session = connection.session
        if session is None:
            return {
                "status": "unhealthy",
                "detail": connection.last_error or "reconnecting",
                "restarts": connection.restarts,
            }
        try:
            await session.send_ping()
        except Exception as exc:
            err = connection.failure(exc, "ping")
            return {"status": "unhealthy", "detail": str(err), "restarts": connection.restarts}
        tools = sum(isinstance(s, ToolSpec) for s in self.__methods__.values())
        return {
            "status": "healthy",
            "detail": f"{self.config.transport}, {tools} tool(s), {connection.restarts} restart(s)",
        }

    # -- methods ---------------------------------------------------------------------

    def _tools_changed(
        self, tools: list[types.Tool], caps: types.ServerCapabilities | None
    ) -> None:
        import jsonschema

        declared = type(self).__methods__
        specs: dict[str, MethodSpec] = {}
        for name, spec in declared.items():
            if name.endswith("/resources.read") and (caps is None or caps.resources is None):
                continue
            if name.endswith("/prompts.get") and (caps is None or caps.prompts is None):
                continue
            specs[name] = spec
        by_tool = {t.name: t for t in tools}
        for method, tool_name in methods_for_tools(
            self.server_name, by_tool, reserved=specs
        ).items():
            tool = by_tool[tool_name]
            schema = dict(tool.input_schema or {})
            try:
                cls = jsonschema.validators.validator_for(schema)
                cls.check_schema(schema)
                validator = cls(schema)
            except jsonschema.SchemaError:
                validator = None  # the server checks the arguments itself
            specs[method] = ToolSpec(
                name=method,
                description=tool.description or tool.title or f"MCP tool {tool_name}",
                tool=tool_name,
                input_schema=schema,
                validator=validator,
            )
        self._set_methods(specs)
        self.methods_changed()

    def _arguments(self, spec: ToolSpec, params: Any) -> dict[str, Any]:
        args: dict[str, Any] = self._validate(spec, params)
        if spec.validator is not None:
            errors = sorted(spec.validator.iter_errors(args), key=lambda e: list(e.path))
            if errors:
                problems = "; ".join(
                    f"{'.'.join(str(p) for p in e.path) or 'parameters'}: {e.message}"
                    for e in errors[:5]
                )
                raise InvalidParamsError(
                    f"Invalid parameters for {spec.name}: {problems}",
                    hint=f"see `gleitzeit providers list --json` for the schema of {spec.name}",
                )
        return args

    async def invoke(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Call the MCP tool behind ``method`` (or read a resource, get a prompt)."""
        spec = self.resolve_method(method)
        if not isinstance(spec, ToolSpec):
            return await super().invoke(method, params)
        args = self._arguments(spec, params)
        connection = self._connected()
        session = connection.live()
        try:
            result = await session.call_tool(
                spec.tool, args, read_timeout_seconds=self.config.timeout
            )
        except Exception as exc:
            raise connection.failure(exc, spec.name) from None
        from gleitzeit_mcp.results import tool_result

        return tool_result(spec.name, spec.tool, args, result)

    def _connected(self) -> Connection:
        if self.connection is None:
            raise ProviderUnavailableError(f"Provider {self.name!r} is not started")
        return self.connection

    async def _read_resource(self, params: ReadResourceParams) -> dict[str, Any]:
        from gleitzeit_mcp.results import resource_result

        connection = self._connected()
        session = connection.live()
        what = f"{self.server_name}/resources.read"
        try:
            result = await asyncio.wait_for(session.read_resource(params.uri), self.config.timeout)
        except Exception as exc:
            raise connection.failure(exc, what) from None
        return resource_result(params.uri, result)

    async def _get_prompt(self, params: GetPromptParams) -> dict[str, Any]:
        from gleitzeit_mcp.results import prompt_result

        connection = self._connected()
        session = connection.live()
        what = f"{self.server_name}/prompts.get"
        try:
            result = await asyncio.wait_for(
                session.get_prompt(params.name, params.arguments or None), self.config.timeout
            )
        except Exception as exc:
            raise connection.failure(exc, what) from None
        return prompt_result(params.name, params.arguments, result)

    def resolve_method(self, method: str) -> MethodSpec:
        try:
            return super().resolve_method(method)
        except MethodNotFoundError:
            if self.connection is None and "/" in method:
                raise MethodNotFoundError(
                    f"Provider {self.name!r} has no method {method!r} yet",
                    hint="its tools are read from the MCP server when it starts",
                ) from None
            raise


def provider_class(server: str, config: ServerConfig) -> type[McpProvider]:
    """A provider class named ``mcp-<server>`` for the MCP server ``server``."""
    where = config.command if config.command is not None else config.url
    cls: type[McpProvider] = type(
        f"McpProvider_{server}",
        (McpProvider,),
        {
            "name": f"mcp-{server}",
            "description": f"MCP server {server!r} ({config.transport}: {where})",
            "server_name": server,
            "server_config": config,
            "__module__": __name__,
        },
    )
    cls.__methods__ = {
        f"{server}/resources.read": MethodSpec(
            name=f"{server}/resources.read",
            description=f"Read a resource of the MCP server {server!r} by its URI.",
            params=ReadResourceParams,
            invoke_handler="_read_resource",
        ),
        f"{server}/prompts.get": MethodSpec(
            name=f"{server}/prompts.get",
            description=f"Get a prompt of the MCP server {server!r}, filled with its arguments.",
            params=GetPromptParams,
            invoke_handler="_get_prompt",
        ),
    }
    return cls


__all__ = ["McpProvider", "ToolSpec", "provider_class"]
