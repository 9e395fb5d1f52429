"""One request, as it travels from the edge (CLI, Python API, Socket.IO, a workflow
task) through the dispatcher to the router and an instance."""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CALL_DEADLINE",
    "CALL_ID",
    "CALL_ID_PATTERN",
    "Request",
    "new_call_id",
    "valid_call_id",
]

#: The call id of the request being served in this context: set by an edge that was
#: handed one (``X-Request-ID``), by the dispatcher while a call runs (so a remote
#: instance sends it over the wire), and by a provider runner while it serves one.
CALL_ID: ContextVar[str | None] = ContextVar("gleitzeit_call_id", default=None)

#: The absolute deadline (``time.time()``) of the invoke under way in this context, set
#: by the dispatcher around its attempts so that a transport can carry it to a remote
#: provider; ``None`` for a stream.
CALL_DEADLINE: ContextVar[float | None] = ContextVar("gleitzeit_call_deadline", default=None)

# A random prefix per process and a counter: unique enough across processes and
# restarts, and far cheaper per call than uuid4.
_PREFIX = os.urandom(4).hex()
#: What a call id handed in by a caller may be (as a JSON Schema / pydantic pattern).
CALL_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
# fullmatch: `$` alone would also accept a trailing newline, into a log line
_call_id_ok = re.compile(CALL_ID_PATTERN).fullmatch


#: A fresh call id, such as ``3f9c2a1b-1a`` (the iterator's own ``__next__``: no
#: Python frame per call).
new_call_id: Callable[[], str] = map(f"{_PREFIX}-%x".__mod__, itertools.count(1)).__next__


def valid_call_id(value: object) -> str | None:
    """``value`` when it can serve as a call id handed in by a caller (1-64 letters,
    digits, ``._:-``), else ``None``: a caller's id must not inject into log lines."""
    if isinstance(value, str) and _call_id_ok(value):
        return value
    return None


@dataclass(slots=True)
class Request:
    """A call of one method.

    ``method`` may be given unprefixed (``chat``); the dispatcher resolves it once to
    the full name (``llm/chat``) before routing, so routers always see the full name.
    ``timeout`` is the whole call's deadline in seconds for ``invoke``, and the longest
    wait between two chunks for ``stream``; ``None`` means the host's
    ``routing.timeout``. ``call_id`` names the call in logs, errors and on the wire;
    the dispatcher makes one when the caller gave none.
    """

    method: str
    params: dict[str, Any]
    provider: str | None = None
    model: str | None = None
    capability: str | None = None
    timeout: float | None = None
    call_id: str | None = None
