"""Built-in plugin: the in-process transport, for providers that run inside the host's
event loop. The instances themselves (:class:`gleitzeit._local.LocalInstance`) load with
the first provider attached, so listing plugins does not import asyncio."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from gleitzeit.hookspecs import hookimpl
from gleitzeit.transport import InstanceSink, Transport

if TYPE_CHECKING:
    from gleitzeit._local import LocalInstance
    from gleitzeit.provider import Provider

log = logging.getLogger("gleitzeit.inprocess")


class InProcessTransport(Transport):
    """Runs :class:`Provider` objects in the host's own event loop."""

    name = "inprocess"

    def __init__(self, instances: InstanceSink) -> None:
        super().__init__(instances)
        self.local: list[LocalInstance] = []

    def attach(self, provider: Provider, *, origin: str | None = None) -> LocalInstance:
        """Add a provider object as an instance (not started yet)."""
        from gleitzeit._local import LocalInstance

        inst = LocalInstance(provider, origin=origin)
        self.local.append(inst)
        self.instances.add(inst)
        return inst

    async def stop(self) -> None:
        for inst in self.local:
            try:
                await inst.stop()
            except Exception:
                log.warning("provider %s failed to stop", inst.id, exc_info=True)
            self.instances.remove(inst.id)
        self.local.clear()


@hookimpl
def gleitzeit_register_transports(register: Callable[[type[Transport]], None]) -> None:
    register(InProcessTransport)
