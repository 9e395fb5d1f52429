"""One request, as it travels from the edge (CLI, Python API, Socket.IO, a workflow
task) through the dispatcher to the router and an instance."""

from __future__ import annotations

import itertools
import os
import re
from collections.abc import Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

__all__ = [
    "CALL_CONTEXT",
    "CALL_DEADLINE",
    "CALL_ID",
    "CallField",
    "CALL_ID_PATTERN",
    "Request",
    "new_call_id",
    "valid_call_id",
]

#: The call under way in this context, ``(call id, deadline)``, read through
#: :data:`CALL_ID` and :data:`CALL_DEADLINE`: one variable, so that the dispatcher sets
#: both with one step per call.
CALL_CONTEXT: ContextVar[tuple[str | None, float | None]] = ContextVar(
    "gleitzeit_call", default=(None, None)
)

T = TypeVar("T")


class CallField(Generic[T]):
    """One field of :data:`CALL_CONTEXT`, read and set like a context variable of its
    own: ``get()``, ``set(value)`` (the other field kept) and ``reset(token)``, which
    restores both fields as they were before that ``set``."""

    __slots__ = ("name", "_index")

    def __init__(self, name: str, index: int) -> None:
        self.name, self._index = name, index

    def get(self) -> T:
        value: T = CALL_CONTEXT.get()[self._index]  # type: ignore[assignment]
        return value

    def set(self, value: T) -> Token[tuple[str | None, float | None]]:
        pair: list[Any] = list(CALL_CONTEXT.get())
        pair[self._index] = value
        return CALL_CONTEXT.set((pair[0], pair[1]))

    def reset(self, token: Token[tuple[str | None, float | None]]) -> None:
        CALL_CONTEXT.reset(token)

    def __repr__(self) -> str:
        return f"<CallField {self.name}={self.get()!r}>"


#: The call id of the request being served in this context: set by an edge that was
#: handed one (``X-Request-ID``), by the dispatcher while a call runs (so a remote
#: instance sends it over the wire), and by a provider runner while it serves one.
CALL_ID: CallField[str | None] = CallField("CALL_ID", 0)

#: The absolute deadline (``time.time()``) of the invoke under way in this context, set
#: by the dispatcher around its attempts so that a transport can carry it to a remote
#: provider; ``None`` for a stream.
CALL_DEADLINE: CallField[float | None] = CallField("CALL_DEADLINE", 1)

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
