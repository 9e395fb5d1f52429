"""The other nodes' instances, mirrored into this node's registry.

Built from a snapshot of the hashes when this node joins (and whenever it rejoins
after losing Redis), then kept current by the events channel, so routing stays a
lookup in the local registry: no Redis round trip per call. A node that says
goodbye leaves at once; one whose heartbeats stop leaves as soon as Redis says it no
longer reads its request channel (a killed node's connections are closed), and after one
TTL at the latest. The calls waiting on a node that leaves fail retryably. Every record is validated as a provider's registration would be.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from gleitzeit.cluster.keys import Keys
from gleitzeit.cluster.messages import InstanceState, NodeEvent, PublishedInstance
from gleitzeit.cluster.node_instance import NodeInstance

if TYPE_CHECKING:
    from gleitzeit._registry import Registry
    from gleitzeit.cluster.calls import Calls
    from gleitzeit.cluster.serving import Serving

log = logging.getLogger("gleitzeit.cluster")


class NodeView:
    """What this node knows of another: its instances, change counter, last beat."""

    __slots__ = ("node", "seq", "seen", "url", "instances")

    def __init__(self, node: str) -> None:
        self.node = node
        self.seq = 0
        self.seen = time.monotonic()
        self.url = ""
        self.instances: dict[str, NodeInstance] = {}


class Mirror:
    """Keeps the registry's view of the other nodes current."""

    def __init__(
        self,
        keys: Keys,
        node: str,
        registry: Registry,
        calls: Calls,
        serving: Serving,
        *,
        ttl: float,
    ) -> None:
        self.keys = keys
        self.node = node
        self.registry = registry
        self.calls = calls
        self.serving = serving
        self.ttl = ttl
        self.client: Any = None
        self.views: dict[str, NodeView] = {}
        self._loading: list[NodeEvent] | None = None
        self._reloads: dict[str, asyncio.Task[None]] = {}
        #: When this node last saw its own heartbeat come back (the channel works).
        self.own_beat = time.monotonic()

    # -- events ---------------------------------------------------------------------------

    def event(self, ev: NodeEvent) -> None:
        if ev.node == self.node:
            if ev.op == "beat":
                self.own_beat = time.monotonic()
            elif ev.op == "cool":
                self._cool_own(ev)
            return
        if ev.op == "cool":
            return  # for another node
        if self._loading is not None:
            self._loading.append(ev)
            return
        self._apply(ev)

    def _apply(self, ev: NodeEvent) -> None:
        view = self.views.get(ev.node)
        if ev.op == "bye":
            self.drop(ev.node, "it stopped", expected=True)
            return
        if view is None:
            if ev.op != "del":
                self.reload(ev.node)
            return
        view.seen = time.monotonic()
        if ev.op == "beat":
            if ev.url:
                view.url = ev.url
            if ev.seq > view.seq:  # missed a change: read the node again
                self.reload(ev.node)
            return
        if ev.seq <= view.seq:
            return  # already in the snapshot this view was built from
        if ev.seq != view.seq + 1:
            self.reload(ev.node)
        view.seq = ev.seq
        if ev.op == "put":
            states = {s.id: s for s in ev.states}
            for record in ev.instances:
                self._put(view, record, states.get(record.id))
        elif ev.op == "state":
            for state in ev.states:
                inst = view.instances.get(state.id)
                if inst is not None:
                    inst.apply(state)
        elif ev.op == "del":
            for iid in ev.ids:
                self._remove(view, iid, "it left its node")

    def _put(self, view: NodeView, record: PublishedInstance, state: InstanceState | None) -> None:
        old = view.instances.get(record.id)
        if old is not None:
            self._remove(view, record.id, "its node replaced it")
        inst = NodeInstance(record, view.node, self.calls)
        if state is not None:
            inst.apply(state)
        view.instances[record.id] = inst
        self.registry.add(inst)

    def _remove(self, view: NodeView, iid: str, why: str) -> None:
        inst = view.instances.pop(iid, None)
        if inst is not None:
            self.registry.remove(inst.id)

    def _cool_own(self, ev: NodeEvent) -> None:
        for iid in ev.ids:
            inst = self.registry.get(iid)
            if inst is None or inst.transport == "cluster":
                continue
            until = time.monotonic() + ev.cooling_for
            if until > inst.cooldown_until + 0.05:
                inst.cooldown_until = until
                self.registry.cooling(inst)

    # -- nodes coming and going -----------------------------------------------------------

    def drop(self, node: str, why: str, *, expected: bool = False) -> None:
        """``node`` is gone: its instances leave routing, calls waiting on it fail.
        ``expected``: this node stops, nothing to warn of."""
        view = self.views.pop(node, None)
        task = self._reloads.pop(node, None)
        if task is not None:
            task.cancel()
        if view is not None:
            for iid in list(view.instances):
                self._remove(view, iid, why)
            log.log(
                logging.INFO if expected else logging.WARNING,
                "node %s left the cluster (%s)",
                node,
                why,
            )
        failed = self.calls.node_gone(node, why)
        if failed:
            log.info("%d call(s) waiting on node %s failed over", failed, node)
        self.serving.caller_gone(node)

    def drop_all(self, why: str, *, expected: bool = False) -> None:
        for node in list(self.views):
            self.drop(node, why, expected=expected)
        self.calls.node_gone(None, why)

    def expire(self) -> None:
        """Drop the nodes that have not beaten for one TTL."""
        limit = time.monotonic() - self.ttl
        for node, view in list(self.views.items()):
            if view.seen < limit:
                self.drop(node, f"no heartbeat for {self.ttl:g}s")

    async def probe(self, silent_for: float) -> None:
        """Ask Redis whether the nodes silent for ``silent_for`` seconds still read
        their request channel: a node that was killed has no connection left, so it
        leaves now rather than when its TTL runs out."""
        limit = time.monotonic() - silent_for
        quiet = [node for node, view in self.views.items() if view.seen < limit]
        if not quiet:
            return
        counts = await self.client.pubsub_numsub(*(self.keys.inbox(n) for n in quiet))
        for node, (_, readers) in zip(quiet, counts, strict=True):
            if readers == 0 and node in self.views:
                self.drop(node, "its connection to Redis closed")

    # -- snapshots ------------------------------------------------------------------------

    async def load(self) -> None:
        """Read every other node from Redis; events that arrive meanwhile are applied
        after, those the snapshot already holds skipped."""
        self._loading = []
        try:
            members = await self.client.zrange(self.keys.nodes, 0, -1)
            nodes = [m.decode() if isinstance(m, bytes) else m for m in members]
            seen = set()
            for node in nodes:
                if node == self.node:
                    continue
                seen.add(node)
                await self._load_node(node)
            for node in list(self.views):
                if node not in seen:
                    self.drop(node, "no longer in Redis")
        finally:
            buffered, self._loading = self._loading or [], None
        for ev in buffered:
            self._apply(ev)

    def reload(self, node: str) -> None:
        """Read ``node`` again soon (in the background; one read at a time per node)."""
        if node in self._reloads or self.client is None:
            return

        async def again() -> None:
            try:
                await self._load_node(node)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the supervisor sees a lost Redis on its own
                log.debug("reading node %s failed: %s", node, exc)
            finally:
                self._reloads.pop(node, None)

        self._reloads[node] = asyncio.ensure_future(again())

    async def _load_node(self, node: str) -> None:
        k = self.keys
        pipe = self.client.pipeline(transaction=True)
        pipe.hgetall(k.node(node))
        pipe.hgetall(k.instances(node))
        pipe.hgetall(k.state(node))
        info, raw_instances, raw_states = await pipe.execute()
        if not info:
            await self.client.zrem(k.nodes, node)
            if node in self.views:
                self.drop(node, "its keys expired")
            return
        seq = int(info.get(b"seq", b"0"))
        records: dict[str, PublishedInstance] = {}
        for n, raw in enumerate(raw_instances.values()):
            if n and n % 500 == 0:
                await asyncio.sleep(0)  # thousands of instances: let heartbeats through
            try:
                rec = PublishedInstance.model_validate(json.loads(raw))
            except (ValidationError, ValueError) as exc:
                log.warning("ignored an instance of node %s: %s", node, _first_error(exc))
                continue
            records[rec.id] = rec
        states: dict[str, InstanceState] = {}
        for raw in raw_states.values():
            try:
                st = InstanceState.model_validate(json.loads(raw))
            except (ValidationError, ValueError):
                continue
            states[st.id] = st
        view = self.views.get(node)
        if view is not None and seq < view.seq:
            return  # events newer than this snapshot arrived meanwhile
        if view is None:
            view = self.views[node] = NodeView(node)
            log.info("node %s joined the cluster (%d instance(s))", node, len(records))
        view.seq = seq
        view.seen = time.monotonic()
        view.url = (info.get(b"url") or b"").decode()
        for iid in [i for i in view.instances if i not in records]:
            self._remove(view, iid, "it left its node")
        for iid, rec in records.items():
            have = view.instances.get(iid)
            if have is None or have.record != rec:
                self._put(view, rec, states.get(iid))
            elif iid in states:
                have.apply(states[iid])

    async def stop(self) -> None:
        tasks = list(self._reloads.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._reloads.clear()


def _first_error(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        err = exc.errors()[0]
        return f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
    return str(exc)
