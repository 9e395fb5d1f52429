"""Load for the cluster benchmark, run in processes of its own.

python3 cluster_peers.py load URL[,URL...] IN_FLIGHT SECONDS PROVIDER
    keeps IN_FLIGHT calls of bench/echo to PROVIDER in flight, spread over the URLs,
    for SECONDS after a short warm-up, and prints {"calls": N, "seconds": S} as JSON.
python3 cluster_peers.py node REDIS_URL NAME INSTANCES
    a cluster node holding INSTANCES instances of one provider; prints "ready" once it
    has joined, and leaves when its stdin closes.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time


async def load(urls: list[str], in_flight: int, seconds: float, provider: str) -> dict:
    from gleitzeit.socketio.client import Client

    clients = [Client(url) for url in urls]
    for client in clients:
        await client.connect()
    counting = False
    calls = 0
    stop = False

    async def worker(i: int) -> None:
        nonlocal calls
        client = clients[i % len(clients)]
        while not stop:
            await client.invoke("bench/echo", {"x": i}, provider=provider)
            if counting:
                calls += 1

    workers = [asyncio.ensure_future(worker(i)) for i in range(in_flight)]
    await asyncio.sleep(0.5)  # warm-up
    counting = True
    t0 = time.perf_counter()
    await asyncio.sleep(seconds)
    counting = False
    elapsed = time.perf_counter() - t0
    stop = True
    await asyncio.gather(*workers)
    for client in clients:
        await client.close()
    return {"calls": calls, "seconds": elapsed}


def stub_instances(registry, n: int) -> None:
    """``n`` instances of one LLM provider (method llm/x, model m), as the routing
    benchmark picks among."""
    from gleitzeit.instance import ProviderInstance
    from gleitzeit.methods import MethodDescription

    for i in range(n):
        inst = ProviderInstance(
            name="llm", kind="llm", methods={"llm/x": MethodDescription()}, models=("m",)
        )
        inst.in_flight = i % 7
        registry.add(inst)


async def node(redis_url: str, name: str, n: int) -> None:
    from gleitzeit._registry import Registry
    from gleitzeit.cluster.settings import ClusterConfig
    from gleitzeit.cluster.transport import ClusterTransport
    from gleitzeit.health import run_checks

    registry = Registry()
    stub_instances(registry, n)
    transport = ClusterTransport(
        registry,
        url=redis_url,
        settings=ClusterConfig(node=name, heartbeat=1.0, ttl=30.0),
        max_payload_bytes=1_000_000,
        call_timeout=60.0,
        check_health=lambda inst: run_checks(inst, {}, 5.0),  # stubs: no checks to run
    )
    await transport.start()
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.read)
    await transport.stop()


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "load":
        _, _, urls, n, secs, name = sys.argv
        out = asyncio.run(load(urls.split(","), int(n), float(secs), name))
        print(json.dumps(out), flush=True)
    elif len(sys.argv) == 5 and sys.argv[1] == "node":
        asyncio.run(node(sys.argv[2], sys.argv[3], int(sys.argv[4])))
    else:
        sys.exit(__doc__)
