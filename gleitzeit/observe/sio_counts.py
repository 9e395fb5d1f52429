"""Counting Socket.IO traffic without touching the handlers: events in and out,
connections per namespace, and payloads refused (an ack whose error says so)."""

from __future__ import annotations

from typing import Any

from gleitzeit.observe.metrics import Metrics

REFUSED_CODES = frozenset({"payload_too_large", "invalid_message"})


class SocketIOCounts:
    """Wraps one ``AsyncServer``'s event dispatch and ``emit``."""

    def __init__(self, sio: Any, metrics: Metrics) -> None:
        self.sio = sio
        self.metrics = metrics
        self.connected: dict[str, set[str]] = {}
        trigger, emit = sio._trigger_event, sio.emit
        events = metrics.events

        async def counting_trigger(event: str, namespace: str, *args: Any) -> Any:
            key = (*self._bounded(event, namespace), "in")
            events[key] = events.get(key, 0) + 1
            ns, name = key[0], key[1]
            ret = await trigger(event, namespace, *args)
            if event == "connect":
                self.connected.setdefault(ns, set()).add(args[0])
            elif event == "disconnect":
                self.connected.get(ns, set()).discard(args[0])
            elif type(ret) is dict and ret.get("ok") is False:
                code = (ret.get("error") or {}).get("code")
                if code in REFUSED_CODES:
                    refused = (ns, name, code)
                    metrics.refused[refused] = metrics.refused.get(refused, 0) + 1
            return ret

        def counting_emit(event: str, *args: Any, **kw: Any) -> Any:
            # Counts and hands back emit's own coroutine: no frame of its own per emit.
            key = (*self._bounded(event, kw.get("namespace") or "/"), "out")
            events[key] = events.get(key, 0) + 1
            return emit(event, *args, **kw)

        # python-socketio dispatches through these attributes of the server object.
        sio._trigger_event = counting_trigger
        sio.emit = counting_emit

    def _bounded(self, event: str, namespace: str) -> tuple[str, str]:
        handlers = self.sio.handlers.get(namespace)
        if handlers is None:
            return "other", "other"
        if event in handlers or event in ("connect", "disconnect"):
            return namespace, event
        return namespace, "other"

    def counts(self) -> dict[str, int]:
        """Connections now, by namespace."""
        return {ns: len(sids) for ns, sids in self.connected.items()}
