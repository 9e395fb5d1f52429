"""Gleitzeit: a plugin host that routes requests to LLM, tool and extension providers.

The public surface for plugin authors and scripts lives here: the hook marker,
the provider base class, the error hierarchy, result helpers and the host.
"""

from typing import TYPE_CHECKING, Any

from gleitzeit._version import __version__
from gleitzeit.errors import (
    AuthenticationError,
    ConfigError,
    FileAccessError,
    GleitzeitError,
    InvalidParamsError,
    MethodNotFoundError,
    ModelNotFoundError,
    PayloadTooLargeError,
    PluginError,
    ProviderError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RateLimitError,
    RoutingError,
    StreamError,
    ToolError,
)
from gleitzeit.hookspecs import hookimpl
from gleitzeit.request import Request
from gleitzeit.results import (
    embedding_result,
    final_chunk,
    llm_result,
    token_chunk,
    tool_result,
    usage,
)
from gleitzeit.transport import InstanceSink, Transport

if TYPE_CHECKING:  # imported lazily at run time (see __getattr__), eagerly for type checkers
    from gleitzeit.api import Api
    from gleitzeit.health import HealthReport
    from gleitzeit.host import Host
    from gleitzeit.instance import ProviderInstance
    from gleitzeit.provider import MethodSpec, Provider, method
    from gleitzeit.routing import Router
    from gleitzeit.socketio.client import Client
    from gleitzeit.socketio.runner import ProviderRunner
    from gleitzeit.socketio.server import GleitzeitServer
    from gleitzeit.tasks import task

# What pulls in pydantic (or more) is imported on first use: a plugin's entry module
# imports this package for `hookimpl`, and `gleitzeit plugins list` imports every one.
_LAZY = {
    "HealthReport": "gleitzeit.health",
    "ProviderInstance": "gleitzeit.instance",
    "MethodSpec": "gleitzeit.provider",
    "Provider": "gleitzeit.provider",
    "method": "gleitzeit.provider",
    "Router": "gleitzeit.routing",
    "task": "gleitzeit.tasks",
    "Api": "gleitzeit.api",
    "Host": "gleitzeit.host",
    "Client": "gleitzeit.socketio.client",
    "ProviderRunner": "gleitzeit.socketio.runner",
    "GleitzeitServer": "gleitzeit.socketio.server",
}


_SUBMODULES = ("llm", "testing", "workflows")


def __getattr__(name: str) -> Any:  # these pull in more; import them only when asked for
    import importlib

    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value  # found directly from now on
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"gleitzeit.{name}")
    raise AttributeError(f"module 'gleitzeit' has no attribute {name!r}")


__all__ = [
    "Api",
    "AuthenticationError",
    "Client",
    "GleitzeitServer",
    "ProviderRunner",
    "ConfigError",
    "FileAccessError",
    "GleitzeitError",
    "HealthReport",
    "Host",
    "InstanceSink",
    "InvalidParamsError",
    "MethodNotFoundError",
    "MethodSpec",
    "ModelNotFoundError",
    "PayloadTooLargeError",
    "PluginError",
    "Provider",
    "ProviderError",
    "ProviderInstance",
    "ProviderTimeoutError",
    "ProviderUnavailableError",
    "RateLimitError",
    "Request",
    "Router",
    "RoutingError",
    "StreamError",
    "ToolError",
    "Transport",
    "__version__",
    "embedding_result",
    "final_chunk",
    "hookimpl",
    "llm_result",
    "method",
    "task",
    "token_chunk",
    "tool_result",
    "usage",
]
