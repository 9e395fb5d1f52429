"""HTTP APIs beside the Socket.IO server: the OpenAI-compatible ``/v1`` gateway.

Imported only by ``gleitzeit serve`` (aiohttp is loaded when a server is built)::

    attach_gateway(app, host, token=token, open_without_token=is_loopback(bind))
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp import web

    from gleitzeit.host import Host
    from gleitzeit.http.gateway import Gateway

__all__ = ["attach_gateway"]


def attach_gateway(
    app: web.Application,
    host: Host,
    *,
    token: str | None,
    open_without_token: bool,
    max_body: int | None = None,
) -> Gateway:
    """Add the ``/v1`` routes for ``host`` to ``app``.

    ``token``: the bearer token callers must present (the Socket.IO clients' token);
    without one the API is open only when ``open_without_token`` (a loopback bind).
    ``max_body``: the largest request body, by default ``server.max_payload_bytes``.
    """
    from gleitzeit.http.gateway import Gateway

    gateway = Gateway(
        host,
        token=token,
        open_without_token=open_without_token,
        max_body=max_body if max_body is not None else host.config.server.max_payload_bytes,
    )
    gateway.attach(app)
    return gateway
