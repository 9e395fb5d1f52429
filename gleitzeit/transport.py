"""Transports: the ways the host reaches provider instances.

A transport is built by whoever owns it and handed what it needs — as httpx hands a
transport to its client. It knows nothing of the host: it reports the instances it
reaches coming and going through an :class:`InstanceSink` (the host's registry).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from gleitzeit.instance import ProviderInstance


class InstanceSink(Protocol):
    """Where a transport reports instances: the host's registry implements it."""

    def add(self, instance: ProviderInstance) -> None:
        """An instance can now be reached."""

    def remove(self, instance_id: str) -> ProviderInstance | None:
        """The instance with this id is gone."""

    def instances(self, name: str | None = None) -> list[ProviderInstance]:
        """The instances there are (of provider ``name``): a transport checks a new
        instance against its namesakes."""


class Transport:
    """Base class of transports.

    Plugins register subclasses through the transports hook; the host builds each as
    ``TransportClass(instances)`` with its registry as the sink, awaits :meth:`start`
    when it starts and :meth:`stop` when it stops.
    """

    name: ClassVar[str] = ""

    def __init__(self, instances: InstanceSink) -> None:
        self.instances = instances

    async def start(self) -> None:
        """Begin serving (open sockets, accept connections)."""

    async def stop(self) -> None:
        """Stop serving; the instances this transport added leave the sink."""

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}
