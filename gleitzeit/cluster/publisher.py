"""This node's own instances, published to Redis: what each is (once, and again when
it changes) and its state (health, calls in flight, cool-down), with a heartbeat that
keeps the node's keys alive for one TTL.

Own instances are every instance of the registry that is not another node's: the
in-process ones and the providers connected to this node. The registry tells the
publisher when one comes, goes, turns (un)routable or cools down, and those changes go
out at once; models, methods and calls in flight are compared at each heartbeat.

Each change is one transaction: the hashes and the node's change counter ``seq`` are
written and the event is published together, so a node that reads the hashes while
changes arrive can tell which events it has already seen.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from gleitzeit.cluster.keys import Keys
from gleitzeit.cluster.node_instance import NodeInstance

if TYPE_CHECKING:
    from gleitzeit.instance import ProviderInstance

log = logging.getLogger("gleitzeit.cluster")

#: Instances per event: a node with thousands of instances publishes them in parts.
PER_EVENT = 200


def _dumps(data: Any) -> str:
    return json.dumps(data, separators=(",", ":"))


def record_of(inst: ProviderInstance) -> dict[str, Any]:
    """``inst`` as a provider registers it, plus its id and transport."""
    return {
        "id": inst.id,
        "transport": inst.transport,
        "name": inst.name,
        "kind": inst.kind,
        "methods": {n: m.model_dump() for n, m in inst.methods.items()},
        "models": list(inst.models),
        "capabilities": list(inst.capabilities),
        "model_required": sorted(inst.model_required),
        "description": inst.description[:2000],
        "version": inst.version[:64],
    }


def state_of(inst: ProviderInstance, now: float) -> dict[str, Any]:
    health = inst.health
    return {
        "id": inst.id,
        "status": health.status,
        "detail": None if health.detail is None else health.detail[:2000],
        "in_flight": max(inst.in_flight, 0),
        "cooling_for": round(max(inst.cooldown_until - now, 0.0), 3),
    }


class Publisher:
    """Keeps this node's entry in Redis true to its registry."""

    def __init__(self, keys: Keys, node: str, *, ttl: float) -> None:
        self.keys = keys
        self.node = node
        self.ttl_ms = int(ttl * 1000)
        self.client: Any = None
        self.url = ""
        self.started = time.time()
        self.seq = 0
        self.own: dict[str, ProviderInstance] = {}
        self._static: dict[str, tuple[Any, ...]] = {}
        self._state: dict[str, tuple[Any, ...]] = {}
        #: Set when something changed that should go out before the next heartbeat.
        self.dirty = asyncio.Event()
        #: Cool-downs this node decided for other nodes' instances, for their owners.
        self.cool_requests: list[tuple[str, str, float]] = []

    # -- told by the registry -----------------------------------------------------------

    def watch(self, event: str, inst: ProviderInstance) -> None:
        if isinstance(inst, NodeInstance):
            # Another node's instance: only a cool-down decided here is news (for its
            # owner); what came from the owner is not sent back.
            if event == "cooling" and not inst.from_owner:
                left = inst.cooldown_until - time.monotonic()
                if left > 0:
                    self.cool_requests.append((inst.node, inst.remote_id, left))
                    self.dirty.set()
            return
        if event == "removed":
            self.own.pop(inst.id, None)
        else:
            self.own[inst.id] = inst
        self.dirty.set()

    def forget(self) -> None:
        """Publish everything again with the next flush (Redis may have lost it)."""
        self._static.clear()
        self._state.clear()
        self.dirty.set()

    # -- to Redis ------------------------------------------------------------------------

    def _node_fields(self) -> dict[str, Any]:
        return {"seq": self.seq, "seen": time.time(), "url": self.url, "started": self.started}

    async def flush(self) -> None:
        """Publish what changed since the last flush (everything after :meth:`forget`)."""
        self.dirty.clear()
        now = time.monotonic()
        put: list[ProviderInstance] = []
        states: dict[str, dict[str, Any]] = {}
        new_static: dict[str, tuple[Any, ...]] = {}
        new_state: dict[str, tuple[Any, ...]] = {}
        for iid, inst in self.own.items():
            sig = (id(inst.methods), len(inst.methods), inst.models, inst.capabilities)
            if self._static.get(iid) != sig:
                put.append(inst)
                new_static[iid] = sig
            st = state_of(inst, now)
            key = (st["status"], st["detail"], st["in_flight"], st["cooling_for"] > 0)
            if self._state.get(iid) != key:
                states[iid] = st
                new_state[iid] = key
        removed = [iid for iid in self._static if iid not in self.own]
        cools, self.cool_requests = self.cool_requests, []
        if not (put or states or removed or cools):
            return
        k, node = self.keys, self.node
        pipe = self.client.pipeline(transaction=True)
        if removed:
            pipe.hdel(k.instances(node), *removed)
            pipe.hdel(k.state(node), *removed)
            for i in range(0, len(removed), PER_EVENT):
                self.seq += 1
                ids = removed[i : i + PER_EVENT]
                pipe.publish(
                    k.events, _dumps({"op": "del", "node": node, "seq": self.seq, "ids": ids})
                )
        for i in range(0, len(put), PER_EVENT):
            part = put[i : i + PER_EVENT]
            records = [record_of(inst) for inst in part]
            part_states = [states.pop(inst.id, {}) or state_of(inst, now) for inst in part]
            pipe.hset(k.instances(node), mapping={r["id"]: _dumps(r) for r in records})
            pipe.hset(k.state(node), mapping={s["id"]: _dumps(s) for s in part_states})
            self.seq += 1
            pipe.publish(
                k.events,
                _dumps(
                    {
                        "op": "put",
                        "node": node,
                        "seq": self.seq,
                        "instances": records,
                        "states": part_states,
                    }
                ),
            )
            for s in part_states:
                new_state.setdefault(
                    s["id"], (s["status"], s["detail"], s["in_flight"], s["cooling_for"] > 0)
                )
        rest = list(states.values())
        for i in range(0, len(rest), PER_EVENT):
            part_states = rest[i : i + PER_EVENT]
            pipe.hset(k.state(node), mapping={s["id"]: _dumps(s) for s in part_states})
            self.seq += 1
            pipe.publish(
                k.events,
                _dumps({"op": "state", "node": node, "seq": self.seq, "states": part_states}),
            )
        for owner, remote_id, left in cools:
            pipe.publish(
                k.events,
                _dumps(
                    {"op": "cool", "node": owner, "ids": [remote_id], "cooling_for": round(left, 3)}
                ),
            )
        self._refresh(pipe)
        try:
            await pipe.execute()
        except BaseException:
            self.forget()  # not known to be out: all of it again next time
            raise
        for iid in removed:
            self._static.pop(iid, None)
            self._state.pop(iid, None)
        self._static.update(new_static)
        self._state.update(new_state)

    def _refresh(self, pipe: Any) -> None:
        k, node = self.keys, self.node
        pipe.hset(k.node(node), mapping=self._node_fields())
        pipe.pexpire(k.node(node), self.ttl_ms)
        pipe.pexpire(k.instances(node), self.ttl_ms)
        pipe.pexpire(k.state(node), self.ttl_ms)
        pipe.zadd(k.nodes, {node: time.time()})

    async def beat(self) -> None:
        """Keep this node's keys alive for one more TTL and tell the others it lives;
        when Redis lost the keys (a restart without persistence), publish them again."""
        k, node = self.keys, self.node
        pipe = self.client.pipeline(transaction=True)
        pipe.exists(k.instances(node))
        self._refresh(pipe)
        pipe.publish(
            k.events, _dumps({"op": "beat", "node": node, "seq": self.seq, "url": self.url})
        )
        results = await pipe.execute()
        if self._static and not results[0]:
            log.warning(
                "Redis lost the instances of node %s (restarted?): publishing them again", node
            )
            self.forget()
            await self.flush()

    async def bye(self) -> None:
        """Leave the cluster: keys gone, and the others told at once."""
        k, node = self.keys, self.node
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(k.node(node), k.instances(node), k.state(node))
        pipe.zrem(k.nodes, node)
        pipe.publish(k.events, _dumps({"op": "bye", "node": node, "seq": self.seq}))
        await pipe.execute()
