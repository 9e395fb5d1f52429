"""A base for LLM providers that talk JSON over HTTP to an upstream server.

A new HTTP LLM plugin is a short file: subclass :class:`HttpLLMProvider` and
:class:`HttpLLMSettings`, say where the upstream is and how it is named, and write the
methods with :meth:`~HttpLLMProvider.post`, :meth:`~HttpLLMProvider.post_stream` (with
:func:`sse_data` or :func:`ndjson_lines`) and :meth:`~HttpLLMProvider.decode`. The base
opens one aiohttp session per provider on start (and, for a plain ``http://`` upstream,
a leaner keep-alive pool for the answers read whole) and closes them on stop, applies the
timeouts, and turns every HTTP status, timeout, lost connection and malformed reply into
a Gleitzeit error that names the upstream. See ``docs/writing-plugins.md``.

aiohttp is imported when a provider starts; the names here are imported when first
used, so a plugin's entry module can import its settings (``gleitzeit.httpllm.settings``)
without the rest.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gleitzeit.httpllm.errors import UpstreamFailure, retry_after
    from gleitzeit.httpllm.framing import ndjson_lines, sse_data
    from gleitzeit.httpllm.provider import Framing, HttpLLMProvider
    from gleitzeit.httpllm.settings import HttpLLMSettings, normalise_base_url

_WHERE = {
    "UpstreamFailure": "errors",
    "retry_after": "errors",
    "ndjson_lines": "framing",
    "sse_data": "framing",
    "Framing": "provider",
    "HttpLLMProvider": "provider",
    "HttpLLMSettings": "settings",
    "normalise_base_url": "settings",
}


def __getattr__(name: str) -> Any:
    import importlib

    if name in _WHERE:
        return getattr(importlib.import_module(f"gleitzeit.httpllm.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'gleitzeit.httpllm' has no attribute {name!r}")


__all__ = [
    "Framing",
    "HttpLLMProvider",
    "HttpLLMSettings",
    "UpstreamFailure",
    "ndjson_lines",
    "normalise_base_url",
    "retry_after",
    "sse_data",
]
