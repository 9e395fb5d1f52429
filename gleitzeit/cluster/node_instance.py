"""An instance that lives on another node, as this node's registry and routers see it.

It is built from what the owner published; its calls travel over the owner's request
channel (:class:`gleitzeit.cluster.calls.Calls`). Health, cool-downs and the owner's
count of calls in flight come from the owner's updates; ``in_flight`` is this node's
own count, as for every instance, so routers here balance this node's calls.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any

from gleitzeit.health import HealthReport
from gleitzeit.instance import ProviderInstance

if TYPE_CHECKING:
    from gleitzeit.cluster.calls import Calls
    from gleitzeit.cluster.messages import InstanceState, PublishedInstance


class NodeInstance(ProviderInstance):
    """One instance of another node."""

    transport = "cluster"
    checked_elsewhere = True  # the owner checks it every health.interval and publishes

    def __init__(self, record: PublishedInstance, node: str, calls: Calls) -> None:
        super().__init__(
            name=record.name,
            kind=record.kind,
            methods=dict(record.methods),
            models=record.models,
            capabilities=record.capabilities,
            description=record.description,
            version=record.version,
            instance_id=f"{node}/{record.id}",
            model_required=record.model_required,
        )
        self.node = node
        #: What the owner published, as it published it.
        self.record = record
        self.remote_id = record.id
        self.remote_transport = record.transport
        self._calls = calls
        #: The owner's count of calls in flight on it (from every node).
        self.node_in_flight = 0
        #: True while this node applies what the owner published (not to be sent back).
        self.from_owner = False

    def apply(self, state: InstanceState) -> None:
        """Take over the owner's view: health, in-flight, cool-down."""
        self.node_in_flight = state.in_flight
        self.from_owner = True
        try:
            if state.status != self.health.status or state.detail != self.health.detail:
                self.health = HealthReport(
                    status=state.status, detail=state.detail, checked_at=time.time()
                )
            if state.cooling_for > 0:
                until = time.monotonic() + state.cooling_for
                if until > self.cooldown_until + 0.05:
                    self.cooldown_until = until
                    if self.registry is not None:
                        self.registry.cooling(self)
        finally:
            self.from_owner = False

    async def invoke(self, method: str, params: dict[str, Any]) -> dict[str, Any]:
        return await self._calls.invoke(self.node, self.remote_id, method, params)

    def stream(self, method: str, params: dict[str, Any]) -> AsyncGenerator[dict[str, Any], None]:
        return self._calls.stream(self.node, self.remote_id, method, params)

    async def check_health(self) -> dict[str, Any]:
        # The owner runs its checks against its own instance now (as `providers health`
        # on the owner would) and answers with the report, which it also publishes.
        return await self._calls.health(self.node, self.remote_id)

    def describe(self, *, schemas: bool = False) -> dict[str, Any]:
        data = super().describe(schemas=schemas)
        data["node"] = self.node
        data["node_in_flight"] = self.node_in_flight
        data["node_transport"] = self.remote_transport
        return data
