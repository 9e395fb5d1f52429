"""Routing: resolve + candidates + pick, at 10, 1,000 and 10,000 instances, with and
without provider=, and the first route right after a registration."""

from __future__ import annotations

import statistics
import time

NAME = "route"
TARGET = (
    "route with provider= at 10,000 instances / at 10 <= 2; "
    "first route after a registration at 10,000 instances <= 20 us"
)
ROUNDS = 7
PICKS = 20_000


def _registry(n: int):  # noqa: ANN202
    from gleitzeit._registry import Registry
    from gleitzeit.instance import ProviderInstance
    from gleitzeit.methods import MethodDescription

    registry = Registry()
    for i in range(n):
        registry.add(
            ProviderInstance(
                name=f"p{i % 10}",
                kind="tool",
                methods={"calc/add": MethodDescription(), f"calc/x{i % 50}": MethodDescription()},
                instance_id=f"i{i}",
            )
        )
    return registry


def _route_us(registry, router, provider: str | None) -> float:  # noqa: ANN001
    from gleitzeit.request import Request

    request = Request("add", {}, provider)
    start = time.perf_counter()
    for _ in range(PICKS):
        method = registry.resolve_method(request.method, provider)
        candidates = registry.candidates(method, provider)
        router.pick(candidates, request)
    return (time.perf_counter() - start) / PICKS * 1e6


def _after_registration_us(registry, router) -> float:  # noqa: ANN001
    from gleitzeit.instance import ProviderInstance
    from gleitzeit.methods import MethodDescription
    from gleitzeit.request import Request

    request = Request("calc/add", {})
    times = []
    for k in range(200):
        inst = ProviderInstance(
            name="late", kind="tool", methods={"calc/add": MethodDescription()}, instance_id=f"n{k}"
        )
        registry.add(inst)
        start = time.perf_counter()
        router.pick(registry.candidates("calc/add", None), request)
        times.append(time.perf_counter() - start)
        registry.remove(inst.id)
    return statistics.median(times) * 1e6


def run() -> dict:
    from gleitzeit.routing import LeastInFlightRouter

    router = LeastInFlightRouter()
    sizes = (10, 1_000, 10_000)
    registries = {n: _registry(n) for n in sizes}
    plain: dict[int, list[float]] = {n: [] for n in sizes}
    pinned: dict[int, list[float]] = {n: [] for n in sizes}
    for _ in range(ROUNDS):  # sizes interleaved within each round
        for n in sizes:
            plain[n].append(_route_us(registries[n], router, None))
            pinned[n].append(_route_us(registries[n], router, "p3"))
    after = _after_registration_us(registries[10_000], router)
    med = {n: statistics.median(v) for n, v in plain.items()}
    pmed = {n: statistics.median(v) for n, v in pinned.items()}
    ratio = pmed[10_000] / pmed[10]
    return {
        "route_us": {n: round(v, 2) for n, v in med.items()},
        "route_us_range": {n: [round(min(v), 2), round(max(v), 2)] for n, v in plain.items()},
        "route_provider_us": {n: round(v, 2) for n, v in pmed.items()},
        "first_route_after_registration_us_10000": round(after, 2),
        "ratio": round(ratio, 3),
        "target_ok": ratio <= 2 and after <= 20,
    }


if __name__ == "__main__":
    print(run())
