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
from gleitzeit.health import HealthReport
from gleitzeit.hookspecs import hookimpl
from gleitzeit.instance import ProviderInstance
from gleitzeit.provider import MethodSpec, Provider, method
from gleitzeit.request import Request
from gleitzeit.results import (
    embedding_result,
    final_chunk,
    llm_result,
    token_chunk,
    tool_result,
    usage,
)
from gleitzeit.routing import Router
from gleitzeit.tasks import task
from gleitzeit.transport import InstanceSink, Transport

if TYPE_CHECKING:  # imported lazily at run time (see __getattr__), eagerly for type checkers
    from gleitzeit.api import Api
    from gleitzeit.host import Host
    from gleitzeit.socketio.client import Client
    from gleitzeit.socketio.runner import ProviderRunner
    from gleitzeit.socketio.server import GleitzeitServer

_LAZY = {
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
        return getattr(importlib.import_module(_LAZY[name]), name)
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
