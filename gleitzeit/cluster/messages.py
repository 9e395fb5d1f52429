"""What nodes send each other through Redis, as pydantic models.

A node accepts from another node nothing it would not accept from a provider or a
client: a published instance is a provider's ``Register`` payload plus where it lives,
a forwarded call is a client's ``Invoke`` pinned to one instance, and a reply is a
provider's ``InvokeReply``. Every message is size-checked before it is parsed.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gleitzeit.request import valid_call_id
from gleitzeit.socketio.wire import Register

NODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:@#/+-]{0,199}$"
CALL_KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
MAX_BATCH = 10_000

__all__ = [
    "ForwardedCall",
    "HealthAsk",
    "InstanceState",
    "NodeEvent",
    "PublishedInstance",
]


class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PublishedInstance(Register):
    """One instance as its node publishes it: what the provider registered with, its
    id on that node and the transport that reaches it there."""

    id: str = Field(pattern=ID_PATTERN)
    transport: str = Field("?", max_length=32)


class InstanceState(_Msg):
    """What changes often: health, calls in flight, the rest of a cool-down."""

    id: str = Field(pattern=ID_PATTERN)
    status: Literal["healthy", "degraded", "unhealthy", "unknown"] = "unknown"
    detail: str | None = Field(None, max_length=2000)
    in_flight: int = Field(0, ge=0)
    cooling_for: float = Field(0.0, ge=0, le=86400, description="seconds of cool-down left")


class NodeEvent(_Msg):
    """One message on the events channel: what changed on ``node``.

    ``put`` (instances added or changed), ``state``, ``del`` (instances gone) carry the
    node's change counter ``seq``, one more each; ``beat`` (every heartbeat) carries the
    current one, so a mirror that missed a change reloads that node. ``bye``: the node
    stops. ``cool``: a node asks the owner of instance ``ids[0]`` to rest it for
    ``cooling_for`` seconds (it failed there too); the owner publishes the outcome.
    """

    op: Literal["put", "state", "del", "beat", "bye", "cool"]
    node: str = Field(pattern=NODE_PATTERN)
    seq: int = Field(0, ge=0)
    url: str | None = Field(None, max_length=512)
    instances: list[PublishedInstance] = Field(default_factory=list, max_length=MAX_BATCH)
    states: list[InstanceState] = Field(default_factory=list, max_length=MAX_BATCH)
    ids: list[str] = Field(default_factory=list, max_length=MAX_BATCH)
    cooling_for: float = Field(0.0, ge=0, le=86400)


class ForwardedCall(_Msg):
    """A call to one instance of the receiving node (``t: invoke`` or ``t: stream``),
    from node ``reply_to``, answered on that node's request channel under ``id``.

    ``timeout``: seconds the caller waits at most (it also sends ``cancel`` when it
    stops waiting); ``window``: chunks of a stream the owner may send ahead of the
    caller's ``credit``."""

    t: Literal["invoke", "stream"]
    id: str = Field(pattern=CALL_KEY_PATTERN)
    reply_to: str = Field(pattern=NODE_PATTERN)
    instance: str = Field(pattern=ID_PATTERN)
    method: str = Field(min_length=1, max_length=160)
    params: dict[str, Any] = Field(default_factory=dict)
    timeout: float = Field(gt=0, le=86400)
    call_id: str | None = None
    window: int = Field(64, ge=1, le=10_000)

    def checked_call_id(self) -> str | None:
        """The call id when it may name the call in log lines."""
        return valid_call_id(self.call_id)


class HealthAsk(_Msg):
    """``t: health``: run the health checks of one instance of the receiving node now
    (``providers health`` on another node), answered as an invoke is, under ``id``."""

    t: Literal["health"]
    id: str = Field(pattern=CALL_KEY_PATTERN)
    reply_to: str = Field(pattern=NODE_PATTERN)
    instance: str = Field(pattern=ID_PATTERN)
