"""Several ``gleitzeit serve`` nodes sharing one routing table through Redis.

Set ``server.redis`` (or ``gleitzeit serve --redis URL``) and the node joins the
cluster on that Redis; without it nothing here but the settings is imported, and
nothing of Redis. See ``docs/scaling.md``.

| module | concept |
| --- | --- |
| ``settings.py`` | ``server.redis`` and ``server.cluster``: the URL's checks, TTL, heartbeat |
| ``keys.py`` | the names of the keys and channels |
| ``link.py`` | the Redis client, and the check at start (wrong password, unreachable) |
| ``messages.py`` | what nodes send each other, validated as providers' and clients' payloads |
| ``outbox.py`` | batched, ordered ``PUBLISH`` |
| ``publisher.py`` | this node's instances and heartbeat, in Redis |
| ``mirror.py`` | the other nodes' instances, in this node's registry |
| ``node_instance.py`` | an instance of another node, as routers see it |
| ``calls.py`` | calls to other nodes' instances (the caller's side) |
| ``serving.py`` | calls from other nodes to this node's instances (the owner's side) |
| ``transport.py`` | the cluster as a host transport; the session with Redis |
| ``broadcast.py`` | python-socketio's ``AsyncRedisManager`` for broadcasts |
| ``status.py`` | ``gleitzeit serve status``: the nodes as Redis holds them |
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping

    from gleitzeit._registry import Registry
    from gleitzeit.cluster.transport import ClusterTransport
    from gleitzeit.config.models import Config
    from gleitzeit.health import HealthCheck, HealthReport
    from gleitzeit.instance import ProviderInstance

__all__ = ["cluster_for"]


def cluster_for(
    config: Config, registry: Registry, health_checks: Mapping[str, HealthCheck]
) -> ClusterTransport | None:
    """The cluster transport of a node configured with ``server.redis``, built but not
    started (the host starts it); ``None`` for a single node. ``health_checks``: the
    node's checks, which it runs on its own instances when another node asks."""
    url = config.server.redis
    if not url:
        return None
    from gleitzeit.cluster.transport import ClusterTransport
    from gleitzeit.health import run_checks

    timeout = config.health.timeout

    async def check_health(inst: ProviderInstance) -> HealthReport:
        return await run_checks(inst, health_checks, timeout)

    return ClusterTransport(
        registry,
        url=url,
        settings=config.server.cluster,
        max_payload_bytes=config.server.max_payload_bytes,
        call_timeout=config.routing.timeout,
        check_health=check_health,
    )
