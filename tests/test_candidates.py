"""Candidate lists stay exact as instances come, go, fall ill, cool down and recover —
without being rebuilt (routing is a lookup, also right after a registration)."""

from __future__ import annotations

import random
import time

from gleitzeit._candidates import fits, routable
from gleitzeit._registry import Registry
from gleitzeit.health import HealthReport
from gleitzeit.instance import ProviderInstance
from gleitzeit.methods import MethodDescription

METHODS = ["llm/chat", "llm/embed", "calc/add"]
MODELS = ["a", "b", "c"]


def instance(rng: random.Random, n: int) -> ProviderInstance:
    methods = rng.sample(METHODS, rng.randint(1, len(METHODS)))
    return ProviderInstance(
        name=rng.choice(["p", "q", "r"]),
        kind="llm",
        methods={m: MethodDescription() for m in methods},
        models=rng.sample(MODELS, rng.randint(0, 2)),
        capabilities=rng.sample(["vision", "tools"], rng.randint(0, 2)),
        model_required=[m for m in methods if rng.random() < 0.3],
        instance_id=f"i{n}",
    )


SHAPES = [
    (m, p, model, cap)
    for m in METHODS
    for p in (None, "p", "q")
    for model in (None, "a", "c")
    for cap in (None, "vision")
]


def brute(registry: Registry, shape: tuple) -> set[str]:
    now = time.monotonic()
    return {i.id for i in registry if fits(shape, i) and routable(i, now)}


def test_lists_follow_every_event_without_a_rebuild():
    rng = random.Random(7)
    registry = Registry()
    n = 0
    for _ in range(20):
        registry.add(instance(rng, n := n + 1))
    for shape in SHAPES:  # build every list once
        registry.candidates(*shape)
    for step in range(1500):
        live = list(registry)
        action = rng.random()
        if action < 0.25 or not live:
            registry.add(instance(rng, n := n + 1))
        elif action < 0.4:
            registry.remove(rng.choice(live).id)
        elif action < 0.6:
            inst = rng.choice(live)
            inst.health = HealthReport(status=rng.choice(["healthy", "unhealthy", "degraded"]))
        elif action < 0.7:
            inst = rng.choice(live)
            inst.cooldown_until = time.monotonic() + rng.choice([0.0, 60.0])
            registry.cooling(inst)
        elif action < 0.85:
            registry.update_models(rng.choice(live), rng.sample(MODELS, rng.randint(0, 3)))
        else:
            inst = rng.choice(live)
            methods = rng.sample(METHODS, rng.randint(1, 3))
            registry.update_methods(inst, {m: MethodDescription() for m in methods})
        for shape in SHAPES:
            got = registry.candidates(*shape)
            assert len(got) == len({i.id for i in got}), (step, shape)  # no duplicates
            assert {i.id for i in got} == brute(registry, shape), (step, shape)


def test_an_instance_registered_after_the_first_route_is_routable_at_once():
    registry = Registry()
    first = ProviderInstance(
        name="calc", kind="tool", methods={"calc/add": MethodDescription()}, instance_id="a"
    )
    registry.add(first)
    listed = registry.candidates("calc/add")
    second = ProviderInstance(
        name="calc", kind="tool", methods={"calc/add": MethodDescription()}, instance_id="b"
    )
    registry.add(second)
    again = registry.candidates("calc/add")
    assert again is listed  # the same list, changed in place: no rebuild
    assert {i.id for i in again} == {"a", "b"}
    first.cooldown_until = time.monotonic() + 0.05
    registry.cooling(first)
    assert [i.id for i in registry.candidates("calc/add")] == ["b"]
    deadline = time.monotonic() + 5
    while len(registry.candidates("calc/add")) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert {i.id for i in registry.candidates("calc/add")} == {"a", "b"}  # back by itself
