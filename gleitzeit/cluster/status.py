"""The cluster as Redis holds it, for ``gleitzeit serve status``: every live node, its
URL, when it was last seen, and its instances with their state."""

from __future__ import annotations

import json
import time
from typing import Any

from gleitzeit.cluster.keys import Keys


async def read_status(url: str, prefix: str = "gleitzeit") -> list[dict[str, Any]]:
    """One row per live node (expired ones are skipped), oldest first."""
    from gleitzeit.cluster.link import check_connection, make_client

    client = make_client(url)
    try:
        await check_connection(client, url)
        keys = Keys(prefix)
        members = await client.zrange(keys.nodes, 0, -1)
        now = time.time()
        rows = []
        for raw in members:
            node = raw.decode() if isinstance(raw, bytes) else raw
            pipe = client.pipeline(transaction=True)
            pipe.hgetall(keys.node(node))
            pipe.hgetall(keys.instances(node))
            pipe.hgetall(keys.state(node))
            pipe.pttl(keys.node(node))
            info, instances, states, ttl = await pipe.execute()
            if not info:
                continue  # its TTL ran out: the node is gone
            state = {}
            for value in states.values():
                try:
                    s = json.loads(value)
                    state[s["id"]] = s
                except (ValueError, KeyError, TypeError):
                    continue
            insts = []
            for value in instances.values():
                try:
                    rec = json.loads(value)
                except ValueError:
                    continue
                st = state.get(rec.get("id"), {})
                insts.append(
                    {
                        "id": rec.get("id"),
                        "name": rec.get("name"),
                        "kind": rec.get("kind"),
                        "transport": rec.get("transport"),
                        "methods": sorted(rec.get("methods") or {}),
                        "status": st.get("status", "unknown"),
                        "in_flight": st.get("in_flight", 0),
                        "cooling_for": st.get("cooling_for", 0.0),
                    }
                )
            seen = float(info.get(b"seen", b"0"))
            rows.append(
                {
                    "node": node,
                    "url": (info.get(b"url") or b"").decode(),
                    "started": float(info.get(b"started", b"0")),
                    "last_seen": seen,
                    "seen_ago": round(max(now - seen, 0.0), 3),
                    "expires_in": round(max(ttl, 0) / 1000, 3),
                    "instances": sorted(insts, key=lambda i: str(i["id"])),
                }
            )
        return sorted(rows, key=lambda r: r["started"])
    finally:
        await client.aclose()
