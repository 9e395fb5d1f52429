"""The ``/dashboard`` namespace: the live page's data, pushed as deltas.

A page connects (with the token), asks for a ``snapshot`` (ack: every instance, the
recent workflow runs), and from then on receives ``delta`` events — instances changed
or gone — and ``runs`` events when the run store changed. One pusher serves every
page: it runs only while a page is connected, looks at the registry ``interval``
seconds apart (a few times a second at most), and sends only what changed, so an idle
server with hundreds of providers sends nothing and costs next to nothing.
``provider`` (with ack, ``{name}``) gives one provider's instances with their methods
and schemas.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gleitzeit.observe.metrics import Metrics

if TYPE_CHECKING:
    from gleitzeit.host import Host
    from gleitzeit.instance import ProviderInstance
    from gleitzeit.socketio.guard import Guard
    from gleitzeit.workflows.store import RunStore

log = logging.getLogger("gleitzeit.dashboard")

DASHBOARD_NAMESPACE = "/dashboard"
ROOM = "watchers"
RECENT_RUNS = 8


class Dashboard:
    """Handlers of ``/dashboard`` and the one pusher task."""

    def __init__(
        self,
        host: Host,
        sio: Any,
        guard: Guard,
        metrics: Metrics,
        store: Callable[[], RunStore | None],
        *,
        interval: float = 0.5,
    ) -> None:
        self.host = host
        self.sio = sio
        self.guard = guard
        self.metrics = metrics
        self.store = store
        self.interval = interval
        self.watchers: set[str] = set()
        self.sent: dict[str, dict[str, Any]] = {}
        self._calls: dict[str, tuple[float, int, float]] = {}  # id -> (time, calls, rate)
        self._data_version: int | None = None
        self._pusher: asyncio.Task[None] | None = None
        #: deltas pushed so far (the benchmark reads it)
        self.pushes = 0

    def attach(self) -> None:
        ns = DASHBOARD_NAMESPACE
        self.sio.on("connect", self.on_connect, namespace=ns)
        self.sio.on("disconnect", self.on_disconnect, namespace=ns)
        self.sio.on("snapshot", self.on_snapshot, namespace=ns)
        self.sio.on("provider", self.on_provider, namespace=ns)

    async def close(self) -> None:
        if self._pusher is not None:
            self._pusher.cancel()
            try:
                await self._pusher
            except asyncio.CancelledError:
                pass
            self._pusher = None

    # -- events ------------------------------------------------------------------------

    async def on_connect(self, sid: str, environ: dict, auth: Any = None) -> None:
        self.guard.connect(auth, environ, role="admin")

    async def on_disconnect(self, sid: str, *reason: Any) -> None:
        self.watchers.discard(sid)
        if not self.watchers and self._pusher is not None:
            self._pusher.cancel()
            self._pusher = None

    async def on_snapshot(self, sid: str, data: Any = None) -> dict[str, Any]:
        rows = self._rows()
        self.sent = rows
        await self.sio.enter_room(sid, ROOM, namespace=DASHBOARD_NAMESPACE)
        self.watchers.add(sid)
        if self._pusher is None:
            self._pusher = asyncio.ensure_future(self._push_loop())
        runs = await self._runs(force=True)
        return {
            "ok": True,
            "result": {
                "instances": sorted(rows.values(), key=lambda r: (r["name"], r["id"])),
                "runs": runs or [],
                "interval": self.interval,
            },
        }

    async def on_provider(self, sid: str, data: Any = None) -> dict[str, Any]:
        name = data.get("name") if isinstance(data, dict) else None
        if not isinstance(name, str):
            return {"ok": False, "error": {"code": "invalid_message", "message": "name missing"}}
        instances = [
            i.describe(schemas=True)
            for i in sorted(self.host.registry.instances(name), key=lambda i: i.id)
        ]
        return {"ok": True, "result": {"name": name, "instances": instances}}

    # -- pushing -------------------------------------------------------------------------

    def _row(self, inst: ProviderInstance, now: float) -> dict[str, Any]:
        seen = self._calls.get(inst.id)
        rate = 0.0
        if seen is not None:
            then, calls, last_rate = seen
            elapsed = now - then
            fresh = (inst.calls - calls) / elapsed if elapsed > 0 else 0.0
            rate = 0.5 * fresh + 0.5 * last_rate
            if rate < 0.05:
                rate = 0.0
        self._calls[inst.id] = (now, inst.calls, rate)
        window = self.metrics.windows.get(inst.id)
        p50, p95 = window.percentiles() if window is not None else (None, None)
        return {
            "id": inst.id,
            "name": inst.name,
            "kind": inst.kind,
            "transport": inst.transport,
            "status": inst.health.status,
            "detail": inst.health.detail,
            "in_flight": inst.in_flight,
            "calls": inst.calls,
            "errors": inst.errors,
            "rate": round(rate, 1),
            "p50_ms": None if p50 is None else round(p50 * 1000, 1),
            "p95_ms": None if p95 is None else round(p95 * 1000, 1),
            "cooling_down": inst.cooldown_until > time.monotonic(),
        }

    def _rows(self) -> dict[str, dict[str, Any]]:
        now = time.monotonic()
        rows = {inst.id: self._row(inst, now) for inst in self.host.registry}
        for gone in [i for i in self._calls if i not in rows]:
            del self._calls[gone]
        return rows

    def delta(self) -> dict[str, Any] | None:
        """What changed since the last push (and remember it), or ``None``."""
        rows = self._rows()
        sent = self.sent
        upsert = [row for key, row in rows.items() if sent.get(key) != row]
        remove = [key for key in sent if key not in rows]
        self.sent = rows
        if not upsert and not remove:
            return None
        return {"upsert": upsert, "remove": remove}

    async def _runs(self, force: bool = False) -> list[dict[str, Any]] | None:
        """The recent runs with their tasks' states, when the store changed."""
        store = self.store()
        if store is None:
            return None
        version = await asyncio.to_thread(store.data_version)
        if not force and version == self._data_version:
            return None
        self._data_version = version
        return await asyncio.to_thread(_recent_runs, store)

    async def _push_loop(self) -> None:
        ns = DASHBOARD_NAMESPACE
        while True:
            await asyncio.sleep(self.interval)
            try:
                change = self.delta()
                if change is not None:
                    self.pushes += 1
                    await self.sio.emit("delta", change, room=ROOM, namespace=ns)
                runs = await self._runs()
                if runs is not None:
                    await self.sio.emit("runs", {"runs": runs}, room=ROOM, namespace=ns)
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad tick must not stop the page's updates
                log.warning("dashboard update failed", exc_info=True)


def _recent_runs(store: RunStore) -> list[dict[str, Any]]:
    out = []
    for run in store.list_runs(RECENT_RUNS):
        full = store.get_run(run["id"])
        run["task_states"] = [
            {"task_id": t["task_id"], "status": t["status"], "error": t["error"]}
            for t in full["tasks"].values()
        ]
        out.append(run)
    return out
