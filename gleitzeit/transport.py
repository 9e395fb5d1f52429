"""Transports: the ways the host reaches provider instances."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from gleitzeit.host import Host


class Transport:
    """Base class of transports, registered through the transports hook.

    The host creates one instance of each registered transport and calls
    :meth:`start` and :meth:`stop` with its own lifecycle. A transport adds the
    instances it reaches to ``host.registry`` and removes them when they go away.
    """

    name: ClassVar[str] = ""

    def __init__(self, host: Host) -> None:
        self.host = host

    async def start(self) -> None:
        """Begin serving (open sockets, accept connections)."""

    async def stop(self) -> None:
        """Stop serving; the instances this transport added leave the registry."""

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}
