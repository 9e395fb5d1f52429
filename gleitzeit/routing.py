"""Routers: strategies that pick one provider instance among the candidates."""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from gleitzeit.request import Request

if TYPE_CHECKING:  # not at run time: instances bring pydantic (health reports)
    from gleitzeit.instance import ProviderInstance

__all__ = ["LatencyRouter", "LeastInFlightRouter", "Request", "RoundRobinRouter", "Router"]


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
    """The instance with the fewest calls in flight; ties go to the least used.

    Exact up to 64 candidates. Above that it compares two instances drawn at random
    ("power of two choices"), which keeps the load as even in practice and the pick
    constant-time however many instances there are.
    """

    name = "least-in-flight"
    exact_up_to = 64

    def pick(self, candidates: Sequence[ProviderInstance], request: Request) -> ProviderInstance:
        n = len(candidates)
        if n > self.exact_up_to:
            a = candidates[random.randrange(n)]
            b = candidates[random.randrange(n)]
            return a if (a.in_flight, a.calls) <= (b.in_flight, b.calls) else b
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


class LatencyRouter(Router):
    """The instance expected to answer soonest: its recent latency times the calls
    queued on it. Instances with no latency yet are tried first, so each gets measured."""

    name = "latency"

    def pick(self, candidates: Sequence[ProviderInstance], request: Request) -> ProviderInstance:
        pool: Sequence[ProviderInstance]
        if len(candidates) > LeastInFlightRouter.exact_up_to:
            pool = [candidates[random.randrange(len(candidates))] for _ in range(2)]
        else:
            pool = candidates
        best = pool[0]
        best_score = (best.latency_ewma or 0.0) * (best.in_flight + 1)
        for inst in pool:
            score = (inst.latency_ewma or 0.0) * (inst.in_flight + 1)
            if score < best_score or (score == best_score and inst.in_flight < best.in_flight):
                best, best_score = inst, score
        return best
