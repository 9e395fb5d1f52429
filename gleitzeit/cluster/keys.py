"""The names of a cluster's Redis keys and channels, in one place.

Per node (each with the node's TTL, refreshed by its heartbeat):

* ``{prefix}:node:{node}`` — hash: ``url``, ``started``, ``seen``, ``seq``
* ``{prefix}:instances:{node}`` — hash: instance id → the instance as published (JSON)
* ``{prefix}:state:{node}`` — hash: instance id → its health, in-flight and cool-down

Shared: ``{prefix}:nodes`` (sorted set: node → last heartbeat, unix time), the
channel ``{prefix}:events`` (what changed on which node) and one request channel per
node, ``{prefix}:inbox:{node}`` (calls to its instances, and the replies to its calls).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    """Key and channel names under one prefix."""

    prefix: str

    @property
    def nodes(self) -> str:
        return f"{self.prefix}:nodes"

    @property
    def events(self) -> str:
        return f"{self.prefix}:events"

    def node(self, node: str) -> str:
        return f"{self.prefix}:node:{node}"

    def instances(self, node: str) -> str:
        return f"{self.prefix}:instances:{node}"

    def state(self, node: str) -> str:
        return f"{self.prefix}:state:{node}"

    def inbox(self, node: str) -> str:
        return f"{self.prefix}:inbox:{node}"
