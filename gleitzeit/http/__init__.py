"""HTTP APIs beside the Socket.IO server: the OpenAI-compatible ``/v1`` gateway.

Imported only by ``gleitzeit serve`` (aiohttp is loaded when a server is built)::

    attach_gateway(app, host, guard=server.guard)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from aiohttp import web

    from gleitzeit.host import Host
    from gleitzeit.http.gateway import Gateway
    from gleitzeit.socketio.guard import Guard

__all__ = ["attach_gateway"]


def attach_gateway(
    app: web.Application,
    host: Host,
    *,
    guard: Guard,
    max_body: int | None = None,
) -> Gateway:
    """Add the ``/v1`` routes for ``host`` to ``app``.

    ``guard``: the server's origin and credential checks; callers need the ``client``
    role, as on the Socket.IO ``/clients`` namespace.
    ``max_body``: the largest request body, by default ``server.max_payload_bytes``.
    """
    from gleitzeit.http.gateway import Gateway

    gateway = Gateway(
        host,
        guard=guard,
        max_body=max_body if max_body is not None else host.config.server.max_payload_bytes,
    )
    gateway.attach(app)
    return gateway
