"""Routers: strategies that pick one provider instance among the candidates."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from gleitzeit.instance import ProviderInstance


@dataclass(frozen=True)
class Request:
    """What a router may look at when picking an instance."""

    method: str
    provider: str | None = None
    model: str | None = None
    params: dict[str, Any] | None = None


class Router:
    """Base class of routing strategies, registered through the routers hook.

    ``candidates`` is never empty and holds only routable instances that serve the
    request; :meth:`pick` returns one of them. Routers run on the hot path: keep
    :meth:`pick` cheap and non-blocking.
    """

    name: ClassVar[str] = ""

    def __init__(self, config: Any = None) -> None:
        self.config = config

    def pick(self, candidates: Sequence[ProviderInstance], request: Request) -> ProviderInstance:
        raise NotImplementedError


class LeastInFlightRouter(Router):
    """The instance with the fewest calls in flight; ties go to the least used."""

    name = "least-in-flight"

    def pick(self, candidates: Sequence[ProviderInstance], request: Request) -> ProviderInstance:
        best = candidates[0]
        best_key = (best.in_flight, best.calls)
        for inst in candidates:
            key = (inst.in_flight, inst.calls)
            if key < best_key:
                best, best_key = inst, key
        return best


class RoundRobinRouter(Router):
    """Each instance in turn."""

    name = "round-robin"

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self._counter = itertools.count()

    def pick(self, candidates: Sequence[ProviderInstance], request: Request) -> ProviderInstance:
        return candidates[next(self._counter) % len(candidates)]
