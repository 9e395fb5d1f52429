"""A workflow of 1,000 calculator calls (chains and a fan-out), in-process, persisted to
SQLite, against the same 1,000 calls made through the host's Python API in a plain loop."""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

NAME = "workflow"
TARGET = "1,000-call workflow (persistence on) / 1,000 host.invoke calls in a loop <= 3"
CHAINS, CHAIN_LENGTH, SINGLES, FAN_OUT = 8, 100, 100, 100
ROUNDS = 3


def workflow_text() -> str:
    lines = ["name: bench", "tasks:"]
    for c in range(CHAINS):
        for i in range(CHAIN_LENGTH):
            if i == 0:
                lines.append(f"  - {{id: c{c}_0, method: calc/add, parameters: {{a: {c}, b: 1}}}}")
            else:
                lines.append(
                    f"  - {{id: c{c}_{i}, method: calc/add, dependencies: [c{c}_{i - 1}],"
                    f" parameters: {{a: '${{c{c}_{i - 1}.result}}', b: 1}}}}"
                )
    for s in range(SINGLES):
        lines.append(f"  - {{id: s{s}, method: calc/multiply, parameters: {{a: {s}, b: 2}}}}")
    items = ", ".join(str(i) for i in range(FAN_OUT))
    lines.append(
        f"  - {{id: fan, method: calc/power, for_each: [{items}], parameters: {{a: '${{item}}', b: 2}}}}"
    )
    return "\n".join(lines) + "\n"


def calls() -> list[tuple[str, dict]]:
    out = []
    for c in range(CHAINS):
        value = c
        for _ in range(CHAIN_LENGTH):
            out.append(("calc/add", {"a": value, "b": 1}))
            value += 1
    out += [("calc/multiply", {"a": s, "b": 2}) for s in range(SINGLES)]
    out += [("calc/power", {"a": i, "b": 2}) for i in range(FAN_OUT)]
    return out


async def _measure(db: Path) -> tuple[float, float]:
    from gleitzeit.config import Config
    from gleitzeit.host import Host
    from gleitzeit.plugins import Plugins
    from gleitzeit.workflows import Engine, RunStore, parse_workflow

    config = Config()
    host = Host(config, plugins=Plugins.load(config))
    await host.start()
    flow = parse_workflow(workflow_text())
    store = RunStore(db)
    engine = Engine(host, store=store, concurrency=8)
    plan = calls()
    assert len(plan) == 1000
    await engine.run(flow)  # warm-up
    for method, params in plan[:100]:
        await host.invoke(method, params)
    loop_times, flow_times = [], []
    for _ in range(ROUNDS):
        t = time.perf_counter()
        for method, params in plan:
            await host.invoke(method, params)
        loop_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        result = await engine.run(flow)
        flow_times.append(time.perf_counter() - t)
        assert result.status == "completed"
    store.close()
    await host.stop()
    return statistics.median(loop_times), statistics.median(flow_times)


def run() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        loop_s, flow_s = asyncio.run(_measure(Path(tmp) / "runs.sqlite"))
    ratio = flow_s / loop_s
    return {
        "plain_loop_s": loop_s,
        "workflow_s": flow_s,
        "ratio": ratio,
        "target_ok": ratio <= 3,
    }
