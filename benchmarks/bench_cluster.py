"""Several nodes on one Redis against one node, in the same run, rounds interleaved:

* call p50, client -> node b -> Redis -> node a -> provider, against client -> node a ->
  provider (two ``gleitzeit serve --redis`` processes, provider processes, a real
  redis-server);
* throughput at 100 calls in flight: two nodes with a provider each, the load spread
  over both, against one node with both providers; CPU per node alongside (on a
  2-core machine the processes share two cores, which caps the ratio);
* the routing decision on a node whose 10,000 instances live on 10 nodes (mirrored
  through Redis) against a single node holding 10,000 instances itself.

    python3 benchmarks/run.py cluster
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NAME = "cluster"
TARGET = (
    "cross-node call p50 <= single-node p50 + 1 ms; 100-in-flight throughput, two nodes "
    ">= 1.6x one (CPU per node reported); pick at 10,000 instances on 10 nodes <= 2x a "
    "single node's"
)
HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(HERE), str(ROOT / "tests")]
ROUNDS = 7
CALLS = 300
LOAD_SECONDS = 3.0
IN_FLIGHT = 100
PICKS = 20000
INSTANCES = 10_000
NODES = 10


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GLEITZEIT_")}
    env["PYTHONPATH"] = str(HERE) + os.pathsep + env.get("PYTHONPATH", "")
    env["GLEITZEIT_PLUGINS"] = ""
    return env


def _machine_busy() -> tuple[float, float]:
    """Busy and total CPU seconds of the whole machine so far (all cores)."""
    with open("/proc/stat") as fh:
        fields = [int(x) for x in fh.readline().split()[1:]]
    idle = fields[3] + fields[4]
    tick = os.sysconf("SC_CLK_TCK")
    return (sum(fields) - idle) / tick, sum(fields) / tick


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Layout:
    """redis-server, nodes a and b, and providers, each a process of its own."""

    def __init__(self, tmp: Path) -> None:
        from cluster_support import RedisServer, start_node

        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError(
                "the cluster benchmark needs redis-server: apt-get install -y redis-server"
            )
        self.tmp = tmp
        self.redis = RedisServer(binary, tmp / "redis")
        self.redis.start()
        self.procs: list[subprocess.Popen] = []
        env = _env()
        self.nodes = {}
        for name in ("a", "b"):
            config = tmp / f"{name}.yaml"
            config.write_text(
                f"server:\n  cluster: {{node: node-{name}}}\nrouting: {{timeout: 60}}\n"
            )
            proc, url = start_node(
                self.redis.url,
                {**env, "GLEITZEIT_CONFIG": str(config)},
                tmp,
                log=tmp / f"node-{name}.log",
            )
            self.procs.append(proc)
            self.nodes[name] = (proc, url)

    def provider(self, node: str, name: str) -> None:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gleitzeit", "provider", "run", "remote_peers:BenchProvider",
             "--server", self.nodes[node][1], "--name", name],
            env=_env(), cwd=self.tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.procs.append(proc)

    def url(self, node: str) -> str:
        return self.nodes[node][1]

    def pid(self, node: str) -> int:
        return self.nodes[node][0].pid

    def close(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.redis.kill()


async def _wait_for(client, names: dict[str, int], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        rows = await client.providers()
        count = {n: sum(1 for r in rows if r["name"] == n) for n in names}
        if all(count[n] >= want for n, want in names.items()):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"providers did not show up: {count}")
        await asyncio.sleep(0.2)


async def _latency_and_throughput(layout: Layout) -> dict:
    from gleitzeit.socketio.client import Client

    # pa: on a only (the latency pair); solo x2 on a (one node); duo on a and on b.
    layout.provider("a", "pa")
    layout.provider("a", "solo")
    layout.provider("a", "solo")
    layout.provider("a", "duo")
    layout.provider("b", "duo")
    async with Client(layout.url("a")) as via_a, Client(layout.url("b")) as via_b:
        await _wait_for(via_b, {"pa": 1, "solo": 2, "duo": 2})
        await _wait_for(via_a, {"pa": 1, "solo": 2, "duo": 2})

        async def lat(client) -> list[float]:
            out = []
            for i in range(CALLS):
                t = time.perf_counter()
                await client.invoke("bench/echo", {"i": i}, provider="pa")
                out.append(time.perf_counter() - t)
            return out

        await lat(via_a)
        await lat(via_b)  # warm-up
        single: list[float] = []
        cross: list[float] = []
        for _ in range(ROUNDS):  # A B A B
            single += await lat(via_a)
            cross += await lat(via_b)

    def load(urls: list[str], provider: str, n: int) -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, str(HERE / "cluster_peers.py"), "load", ",".join(urls), str(n),
             str(LOAD_SECONDS), provider],
            env=_env(), stdout=subprocess.PIPE, text=True,
        )  # fmt: skip

    async def phase(loads: list[tuple[list[str], str, int]]) -> tuple[float, dict[str, float]]:
        cpu0 = {n: _cpu_seconds(layout.pid(n)) for n in ("a", "b")}
        busy0 = _machine_busy()
        t0 = time.perf_counter()
        procs = [load(urls, provider, n) for urls, provider, n in loads]
        outs = [json.loads((await asyncio.to_thread(p.communicate, None, 120))[0]) for p in procs]
        wall = time.perf_counter() - t0
        cpu = {n: (_cpu_seconds(layout.pid(n)) - cpu0[n]) / wall for n in ("a", "b")}
        busy1 = _machine_busy()
        # cores in use by every process of the machine (load generators, providers,
        # Redis, nodes): at the core count, the machine, not a node, is the limit
        cpu["machine"] = (busy1[0] - busy0[0]) / (busy1[1] - busy0[1]) * (os.cpu_count() or 1)
        return sum(o["calls"] / o["seconds"] for o in outs), cpu

    a, b = layout.url("a"), layout.url("b")
    one_rates, two_rates = [], []
    one_cpu: dict[str, list[float]] = {"a": [], "b": [], "machine": []}
    two_cpu: dict[str, list[float]] = {"a": [], "b": [], "machine": []}
    for _ in range(3):  # interleaved: one node, two nodes, ...
        rate, cpu = await phase([([a], "solo", IN_FLIGHT // 2), ([a], "solo", IN_FLIGHT // 2)])
        one_rates.append(rate)
        for n in cpu:
            one_cpu[n].append(cpu[n])
        rate, cpu = await phase([([a], "duo", IN_FLIGHT // 2), ([b], "duo", IN_FLIGHT // 2)])
        two_rates.append(rate)
        for n in cpu:
            two_cpu[n].append(cpu[n])
    return {
        "single_p50_ms": statistics.median(single) * 1000,
        "cross_node_p50_ms": statistics.median(cross) * 1000,
        "one_node_calls_per_s": statistics.median(one_rates),
        "two_nodes_calls_per_s": statistics.median(two_rates),
        "one_node_cpu_a": statistics.median(one_cpu["a"]),
        "two_nodes_cpu_a": statistics.median(two_cpu["a"]),
        "two_nodes_cpu_b": statistics.median(two_cpu["b"]),
        "one_node_machine_cores_busy": statistics.median(one_cpu["machine"]),
        "two_nodes_machine_cores_busy": statistics.median(two_cpu["machine"]),
    }


def _pick_median_us(registry) -> float:
    from gleitzeit.config.models import RoutingConfig
    from gleitzeit.request import Request
    from gleitzeit.routing import LeastInFlightRouter

    router = LeastInFlightRouter(RoutingConfig())
    times = []
    for _ in range(PICKS):
        t = time.perf_counter_ns()
        request = Request("llm/x", {}, None, "m")
        request.method = registry.resolve_method(request.method, None)
        router.pick(registry.candidates(request.method, None, "m", None), request)
        times.append(time.perf_counter_ns() - t)
    return statistics.median(times) / 1000


async def _routing(redis_url: str) -> dict:
    from cluster_peers import stub_instances

    from gleitzeit._registry import Registry
    from gleitzeit.cluster.settings import ClusterConfig
    from gleitzeit.cluster.transport import ClusterTransport
    from gleitzeit.health import run_checks

    single = Registry()
    stub_instances(single, INSTANCES)
    per_node = INSTANCES // NODES
    peers: list[subprocess.Popen] = []
    registry = Registry()
    stub_instances(registry, per_node)
    measured = ClusterTransport(
        registry,
        url=redis_url,
        settings=ClusterConfig(node="measured", heartbeat=1.0, ttl=10.0),
        max_payload_bytes=1_000_000,
        call_timeout=60.0,
        check_health=lambda inst: run_checks(inst, {}, 5.0),  # stubs: no checks to run
    )
    try:
        for i in range(NODES - 1):  # one after the other: each joins a settled cluster
            peer = subprocess.Popen(
                [sys.executable, str(HERE / "cluster_peers.py"), "node", redis_url,
                 f"peer-{i}", str(per_node)],
                env=_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            peers.append(peer)
            assert peer.stdout is not None
            line = await asyncio.to_thread(peer.stdout.readline)
            if line.strip() != "ready":
                raise RuntimeError("a peer node did not start")
        t0 = time.perf_counter()
        await measured.start()
        while len(registry) < INSTANCES:
            await asyncio.sleep(0.01)
        joined = time.perf_counter() - t0
        rounds_single, rounds_cluster = [], []
        for _ in range(3):  # interleaved
            rounds_single.append(_pick_median_us(single))
            rounds_cluster.append(_pick_median_us(registry))
    finally:
        await measured.stop()
        for peer in peers:
            peer.communicate(timeout=60)
    return {
        "pick_single_node_us": statistics.median(rounds_single),
        "pick_10_nodes_us": statistics.median(rounds_cluster),
        "join_10k_instances_s": joined,
    }


def run() -> dict:
    from cluster_support import free_port

    with tempfile.TemporaryDirectory() as tmp:
        layout = Layout(Path(tmp))
        try:
            out = asyncio.run(_latency_and_throughput(layout))
        finally:
            layout.close()
        # A Redis of its own: the latency layout's nodes are gone, their keys with them.
        redis = layout.redis
        redis.port = free_port()
        redis.start()
        try:
            out.update(asyncio.run(_routing(redis.url)))
        finally:
            redis.kill()
    added = out["cross_node_p50_ms"] - out["single_p50_ms"]
    scale = out["two_nodes_calls_per_s"] / out["one_node_calls_per_s"]
    pick = out["pick_10_nodes_us"] / out["pick_single_node_us"]
    return {
        "ratio": scale,
        "cross_node_added_p50_ms": round(added, 3),
        "throughput_two_vs_one": round(scale, 3),
        "pick_ratio": round(pick, 3),
        **{k: round(v, 4) for k, v in out.items()},
        "cores": os.cpu_count(),
        "target_ok": added <= 1.0 and scale >= 1.6 and pick <= 2.0,
    }


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
