"""Seeing inside a running server: Prometheus metrics, the health report, request
logs with call ids, the live dashboard and chat sessions.

``gleitzeit serve`` makes one call, :func:`attach_observability`, which adds the
routes (``/metrics``, ``/health``, ``/``, ``/chat``, ``/static/…``) to the aiohttp
app, the ``/dashboard`` namespace and the chat events to the Socket.IO server, and
hands the host the call listeners. This package is imported only by ``serve``: the
core reports calls through :class:`gleitzeit._dispatch.CallListener` and never
imports prometheus-client.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from gleitzeit.logs import RequestLog, add_secret, add_secrets_from, add_secrets_of
from gleitzeit.observe.chat import ChatService
from gleitzeit.observe.dashboard import Dashboard
from gleitzeit.observe.http import HttpRoutes
from gleitzeit.observe.metrics import Metrics
from gleitzeit.observe.sio_counts import SocketIOCounts

if TYPE_CHECKING:
    from gleitzeit.host import Host
    from gleitzeit.socketio.guard import Guard
    from gleitzeit.workflows.store import RunStore

__all__ = ["Observability", "attach_observability"]


class Observability:
    """What :func:`attach_observability` set up, for tests and benchmarks to reach."""

    def __init__(
        self,
        host: Host,
        sio: Any,
        guard: Guard,
        token: str | None,
        *,
        dashboard_interval: float = 0.5,
    ) -> None:
        self.host = host
        self._store: RunStore | None = None
        self.database = Path(host.config.workflows.database or _default_database()).expanduser()
        self.metrics = Metrics(
            host.registry, connections=lambda: self.sio_counts.counts(), runs=self._run_counts
        )
        self.sio_counts = SocketIOCounts(sio, self.metrics)
        self.http = HttpRoutes(host, self.metrics, guard)
        self.dashboard = Dashboard(
            host,
            sio,
            guard,
            self.metrics,
            self._existing_store,
            interval=dashboard_interval,
        )
        self.chat = ChatService(host, sio, self.store, history_turns=host.config.chat.history_turns)
        add_secret(token)
        add_secrets_of(host.config)
        described = set()
        for rec in host.plugins.loaded():
            if rec.settings is not None:
                add_secrets_of(rec.settings)
                described.add(rec.name)
        add_secrets_from(
            {name: raw for name, raw in host.config.plugins.items() if name not in described}
        )
        add_secrets_from({name: p.settings for name, p in host.config.providers.items()})

    def store(self) -> RunStore:
        """The run store (chat sessions live beside the runs), opened on first use."""
        if self._store is None:
            from gleitzeit.workflows.store import RunStore

            self._store = RunStore(self.database)
        return self._store

    def _existing_store(self) -> RunStore | None:
        """The run store if its file exists: the dashboard does not create one."""
        if self._store is None and not self.database.exists():
            return None
        return self.store()

    def _run_counts(self) -> dict[str, dict[str, int]]:
        store = self._existing_store()
        return store.counts() if store is not None else {}

    async def close(self, app: Any = None) -> None:
        await self.dashboard.close()
        await self.chat.close()
        if self._store is not None:
            self._store.close()
            self._store = None


def _default_database() -> Path:
    from gleitzeit.workflows.store import default_database

    return default_database()


def attach_observability(
    app: Any,
    sio: Any,
    host: Host,
    *,
    guard: Guard,
    token: str | None,
) -> Observability:
    """Add metrics, health, request logs, the dashboard and chat to a server.

    Call before the host starts and before the app serves (the routes and the
    middleware are added to ``app``, the listeners handed to ``host``).
    """
    obs = Observability(host, sio, guard, token)
    obs.http.add_to(app)
    obs.dashboard.attach()
    obs.chat.attach()
    host.call_listeners.append(obs.metrics)
    if not any(isinstance(x, RequestLog) for x in host.call_listeners):
        host.call_listeners.append(RequestLog())
    app.on_cleanup.append(obs.close)
    return obs
