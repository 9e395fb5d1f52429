"""Broadcast events across nodes: python-socketio's ``AsyncRedisManager``, with the
emits that have nowhere else to go kept off Redis.

An emit to a room or a whole namespace reaches the clients of every node, as
python-socketio documents for several servers. An emit to one connection that is on
this node (a provider's call, a client's answer or chunk) is delivered here without a
round trip through Redis, and the ``/dashboard`` namespace stays local: each node's
dashboard shows the whole cluster from its own mirror, so one node's deltas would only
confuse another's page. Acks never cross nodes (python-socketio does not carry them),
which is why calls have request channels of their own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import socketio

if TYPE_CHECKING:
    from gleitzeit.cluster.transport import ClusterTransport

#: Namespaces whose emits stay on the node that makes them.
LOCAL_NAMESPACES = frozenset({"/dashboard"})


class BroadcastManager(socketio.AsyncRedisManager):
    """The client manager of a clustered node's Socket.IO server."""

    def __init__(self, cluster: ClusterTransport) -> None:
        from gleitzeit.cluster.link import CONNECT_TIMEOUT

        super().__init__(
            cluster.url,
            channel=f"{cluster.keys.prefix}:socketio",
            redis_options={"socket_connect_timeout": CONNECT_TIMEOUT},
        )
        self.cluster = cluster

    async def emit(
        self,
        event: str,
        data: Any,
        namespace: str | None = None,
        room: str | None = None,
        skip_sid: Any = None,
        callback: Any = None,
        to: str | None = None,
        **kwargs: Any,
    ) -> Any:
        room = to or room
        ns = namespace or "/"
        if not kwargs.get("ignore_queue") and (
            ns in LOCAL_NAMESPACES or (room is not None and self.is_connected(room, ns))
        ):
            kwargs["ignore_queue"] = True
        return await super().emit(
            event,
            data,
            namespace=namespace,
            room=room,
            skip_sid=skip_sid,
            callback=callback,
            **kwargs,
        )

    async def _publish(self, data: Any) -> Any:
        if not self.cluster.up:
            return None  # Redis is lost: this node's own clients got it already
        return await super()._publish(data)
