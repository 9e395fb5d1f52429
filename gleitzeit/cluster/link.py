"""The node's connection to Redis: made from the URL, checked once at start with
errors that say what to fix, and shared by everything else of the cluster.

redis-py retries and reconnects on its own by default; here it does not, so that a
lost Redis reaches the cluster's supervisor at once (which marks the node degraded,
keeps serving its own instances and rejoins when Redis answers again).
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from gleitzeit.cluster.settings import shown_url
from gleitzeit.errors import ConfigError, ConnectFailed

log = logging.getLogger("gleitzeit.cluster")

CONNECT_TIMEOUT = 5.0


def make_client(url: str, *, socket_timeout: float = CONNECT_TIMEOUT) -> Any:
    """A ``redis.asyncio.Redis`` for ``url`` (``rediss://`` for TLS; ``ssl_*`` options
    in the query string, as redis-py reads them), without retries of its own.

    ``socket_timeout`` bounds every command's wait for its answer, so a connection that
    went silent without closing fails instead of hanging (subscriptions are watched by
    the node's own heartbeats coming back)."""
    try:
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff
    except ImportError:
        raise ConfigError(
            "server.redis is set, but the Redis client is not installed",
            hint="pip install 'gleitzeit[redis]' (or unset server.redis / --redis)",
        ) from None

    return aioredis.Redis.from_url(
        url,
        retry=Retry(NoBackoff(), 0),
        socket_connect_timeout=CONNECT_TIMEOUT,
        socket_timeout=socket_timeout,
        socket_keepalive=True,
        max_connections=64,
    )


def password_of(url: str) -> str | None:
    """The password in ``url``, to be masked in every log line."""
    try:
        return urlsplit(url).password
    except ValueError:
        return None


async def check_connection(client: Any, url: str) -> None:
    """PING Redis once; a wrong password, no password, an unreachable server or a TLS
    failure becomes an error that names the URL (password masked) and what to do."""
    from redis import exceptions as rx

    shown = shown_url(url)
    try:
        await client.ping()
    except rx.AuthenticationError as exc:
        has_password = password_of(url) is not None
        raise ConfigError(
            f"Redis at {shown} refused this node: "
            + (
                "wrong password"
                if has_password
                else "it requires a password and the URL carries none"
            )
            + f" ({exc})",
            hint="put the right password in --redis / server.redis "
            "(redis://:PASSWORD@HOST:PORT/DB); the node does not start without it",
        ) from None
    except rx.ResponseError as exc:
        text = str(exc)
        if "NOAUTH" in text or "WRONGPASS" in text or "AUTH" in text.upper():
            raise ConfigError(
                f"Redis at {shown} refused this node's credentials ({text})",
                hint="put the right user and password in --redis / server.redis",
            ) from None
        raise ConnectFailed(
            f"Redis at {shown} answered PING with an error: {text}",
            hint="check that the URL names a Redis server and database",
        ) from None
    except (rx.ConnectionError, rx.TimeoutError, OSError) as exc:
        raise ConnectFailed(
            f"Cannot reach Redis at {shown}: {exc}",
            hint="start Redis, or fix --redis / server.redis (rediss:// for TLS)",
        ) from None
