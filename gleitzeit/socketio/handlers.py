"""Event handlers that always answer: a missing, extra or invalid payload, an unknown
event, or a bug in a handler becomes an error reply (``invalid_message`` naming the
field, or ``internal_error``), never a ``TypeError`` in the server log and no answer.

Events without an ack cannot be answered: an invalid one is logged once per connection
and event, with the field.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable
from typing import Any

from gleitzeit.errors import GleitzeitError, InvalidMessage
from gleitzeit.socketio.wire import error_payload

log = logging.getLogger("gleitzeit.socketio")


def payload_of(args: tuple[Any, ...]) -> Any:
    """The payload of an event from the arguments after ``sid``: one, none (None), or
    several (a list, which no payload model accepts)."""
    if len(args) == 1:
        return args[0]
    return None if not args else list(args)


class Handlers:
    """Wraps the handlers of one namespace; remembers what it logged per connection."""

    def __init__(self, sio: Any, namespace: str) -> None:
        self.sio = sio
        self.namespace = namespace
        self._logged: set[tuple[str, str]] = set()
        self.events: list[str] = []

    def forget(self, sid: str) -> None:
        """A connection closed: its log-once memory goes."""
        self._logged = {k for k in self._logged if k[0] != sid}

    def complain(self, sid: str, event: str, exc: BaseException) -> None:
        """Log an invalid payload of an event without ack, once per connection."""
        if (sid, event) not in self._logged and len(self._logged) < 100_000:
            self._logged.add((sid, event))
            log.warning(
                "%s %s from %s ignored (logged once per connection): %s",
                self.namespace,
                event,
                sid,
                exc,
            )

    def on(self, event: str, fn: Callable[..., Any], *, acked: bool) -> None:
        """Register ``fn(sid, data)`` for ``event``."""
        self.events.append(event)

        is_async = inspect.iscoroutinefunction(fn)

        async def handler(sid: str, *args: Any) -> Any:
            # Runs ``fn`` before its first await, so synchronous handlers keep the
            # events' arrival order.
            try:
                if is_async:
                    return await fn(sid, payload_of(args))
                result = fn(sid, payload_of(args))
                if inspect.isawaitable(result):
                    result = await result
                return result
            except GleitzeitError as exc:
                if not acked:
                    self.complain(sid, event, exc)
                return {"ok": False, "error": exc.to_dict()}
            except Exception as exc:
                log.exception("%s %s handler failed", self.namespace, event)
                return {"ok": False, "error": error_payload(exc)}

        self.sio.on(event, handler, namespace=self.namespace)

    def direct(self, event: str, fn: Callable[..., Any]) -> None:
        """Register ``fn(sid, *args)`` for ``event`` as it is: a coroutine function that
        takes the payload with :func:`payload_of` and answers every error itself."""
        self.events.append(event)
        self.sio.on(event, fn, namespace=self.namespace)

    def on_unknown(self) -> None:
        """Answer events this namespace does not know."""

        async def handler(event: str, sid: str, *args: Any) -> Any:
            exc = InvalidMessage(
                f"unknown event {event!r} on {self.namespace}; known: "
                + ", ".join(sorted(self.events))
            )
            self.complain(sid, event, exc)
            return {"ok": False, "error": exc.to_dict()}

        self.sio.on("*", handler, namespace=self.namespace)
