"""One request, as it travels from the edge (CLI, Python API, Socket.IO, a workflow
task) through the dispatcher to the router and an instance."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

#: The call under way in this task, as ``(call_id, deadline)``: ``deadline`` is an
#: absolute ``time.time()`` (None for a stream). Set by the dispatcher around each
#: attempt so that a transport can carry both to a remote provider.
CURRENT_CALL: ContextVar[tuple[str, float | None] | None] = ContextVar(
    "gleitzeit_current_call", default=None
)


@dataclass(slots=True)
class Request:
    """A call of one method.

    ``method`` may be given unprefixed (``chat``); the dispatcher resolves it once to
    the full name (``llm/chat``) before routing, so routers always see the full name.
    ``timeout`` is the whole call's deadline in seconds for ``invoke``, and the longest
    wait between two chunks for ``stream``; ``None`` means the host's
    ``routing.timeout``.
    """

    method: str
    params: dict[str, Any]
    provider: str | None = None
    model: str | None = None
    capability: str | None = None
    timeout: float | None = None
