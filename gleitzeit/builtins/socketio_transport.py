"""Built-in plugin: the Socket.IO transport for remote providers.

Active only while the host serves (``host.server`` is set by ``gleitzeit serve``); it then
listens on the ``/providers`` namespace. The implementation is imported on start, so
loading this plugin (``gleitzeit plugins list``) costs nothing.
"""

from __future__ import annotations

from typing import Any

from gleitzeit.hookspecs import hookimpl
from gleitzeit.transport import Transport


class SocketIOTransport(Transport):
    """Provider processes connected over Socket.IO (``gleitzeit provider run``)."""

    name = "socketio"

    def __init__(self, host: Any) -> None:
        super().__init__(host)
        self.namespace: Any = None

    async def start(self) -> None:
        if getattr(self.host, "server", None) is None:
            return  # not serving: nothing to listen on
        from gleitzeit.server.providers import ProvidersNamespace

        self.namespace = ProvidersNamespace(self.host)
        await self.namespace.start()

    async def stop(self) -> None:
        if self.namespace is not None:
            await self.namespace.stop()
            self.namespace = None


@hookimpl
def gleitzeit_register_transports(register):
    register(SocketIOTransport)
