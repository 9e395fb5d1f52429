"""The cluster's settings (``server.redis`` and ``server.cluster`` in gleitzeit.yaml)
and the Redis URL's checks.

Only pydantic and the standard library here: the config loads this module whether or
not a cluster is configured, and nothing of Redis may be imported for a single node.
"""

from __future__ import annotations

import re
from typing import Annotated
from urllib.parse import urlsplit, urlunsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

__all__ = ["ClusterConfig", "RedisUrl", "check_redis_url", "shown_url"]

SCHEMES = ("redis", "rediss", "unix")
NODE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")


def check_redis_url(url: str) -> str:
    """``url`` when it is a Redis URL a node can use; a ``ValueError`` saying what is
    wrong with it otherwise (the password never appears in the message)."""
    url = url.strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises for a port that is not a number
    except ValueError as exc:
        raise ValueError(
            f"not a Redis URL ({exc}): expected redis://[:PASSWORD@]HOST:PORT/DB"
        ) from None
    if parts.scheme not in SCHEMES:
        raise ValueError(
            f"scheme {parts.scheme or '(none)'!r} is not one of {', '.join(SCHEMES)}: "
            "expected redis://[:PASSWORD@]HOST:PORT/DB, or rediss:// for TLS"
        )
    if parts.scheme != "unix" and not parts.hostname:
        raise ValueError(f"{shown_url(url)} names no host: expected redis://HOST:PORT/DB")
    return url


def shown_url(url: str) -> str:
    """``url`` with its password replaced by ``***``, for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(unparsable URL)"
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{user}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _checked(url: str) -> str:
    return check_redis_url(url)


#: A Redis URL, checked when the config is read.
RedisUrl = Annotated[str, AfterValidator(_checked)]


class ClusterConfig(BaseModel):
    """How the nodes of a cluster share their instances through Redis
    (``server.cluster``; used only when ``server.redis`` is set)."""

    model_config = ConfigDict(extra="forbid")

    node: str | None = Field(
        None,
        description="this node's name in the cluster; default HOSTNAME-PID-XXXX",
    )
    heartbeat: float = Field(
        1.0, gt=0, le=60, description="seconds between this node's heartbeats to Redis"
    )
    ttl: float = Field(
        3.0,
        gt=0,
        le=600,
        description="seconds without a heartbeat before the other nodes drop this node",
    )
    prefix: str = Field(
        "gleitzeit",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$",
        description="prefix of the Redis keys and channels; clusters sharing one Redis differ here",
    )
    stream_window: int = Field(
        64, ge=1, le=10_000, description="chunks a node sends ahead of the one reading a stream"
    )

    @model_validator(mode="after")
    def _ttl_covers_heartbeats(self) -> ClusterConfig:
        if self.ttl < 2 * self.heartbeat:
            raise ValueError(
                f"ttl ({self.ttl:g}s) must be at least twice the heartbeat "
                f"({self.heartbeat:g}s), or one late heartbeat drops a live node"
            )
        if self.node is not None and not NODE_RE.match(self.node):
            raise ValueError(
                "node must be 1-64 letters, digits, '_', '.', ':' or '-', "
                "starting with a letter or digit"
            )
        return self
