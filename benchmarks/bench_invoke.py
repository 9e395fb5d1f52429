"""In-process `host.invoke` of `calc/add` against a direct call of the provider's own
`invoke`, in the same process and event loop, rounds interleaved."""

from __future__ import annotations

import asyncio
import statistics
import time

NAME = "invoke"
TARGET = "median host.invoke / median provider.invoke (calc/add, in-process) <= 2"
CALLS = 5_000
ROUNDS = 7


async def _measure() -> dict:
    from gleitzeit.config import parse_config
    from gleitzeit.host import Host
    from gleitzeit.plugins import Plugins

    config = parse_config("{}")
    async with Host(config, plugins=Plugins.load(config)) as host:
        (inst,) = host.registry.instances("calculator")
        provider = inst.provider  # type: ignore[attr-defined]
        params = {"a": 5, "b": 3}

        async def direct() -> float:
            start = time.perf_counter()
            for _ in range(CALLS):
                await provider.invoke("calc/add", params)
            return (time.perf_counter() - start) / CALLS

        async def routed() -> float:
            start = time.perf_counter()
            for _ in range(CALLS):
                await host.invoke("calc/add", params)
            return (time.perf_counter() - start) / CALLS

        await direct()
        await routed()  # warm-up: schemas built, candidate lists cached
        base, ours = [], []
        for _ in range(ROUNDS):  # A B A B
            base.append(await direct())
            ours.append(await routed())
    return {"base": base, "ours": ours}


def run() -> dict:
    data = asyncio.run(_measure())
    base, ours = data["base"], data["ours"]
    ratio = statistics.median(ours) / statistics.median(base)
    return {
        "provider_invoke_us": round(statistics.median(base) * 1e6, 2),
        "provider_invoke_us_range": [round(min(base) * 1e6, 2), round(max(base) * 1e6, 2)],
        "host_invoke_us": round(statistics.median(ours) * 1e6, 2),
        "host_invoke_us_range": [round(min(ours) * 1e6, 2), round(max(ours) * 1e6, 2)],
        "ratio": round(ratio, 3),
        "target_ok": ratio <= 2,
    }


if __name__ == "__main__":
    print(run())
