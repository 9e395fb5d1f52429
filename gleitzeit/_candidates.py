"""Candidate lists: the routable instances for each request shape, kept up to date.

A request shape is ``(method, provider, model, capability)``. Its list is built once,
on the first request of that shape, and from then on changed in place by the events that
affect it — an instance added or removed, its models or methods changed, its health
turning, a cool-down starting or ending — each touching only the lists of the methods
that instance serves. Routing a request is then a dictionary lookup however many
instances there are, also right after a registration.

Lists are shared with the router for the duration of one pick: they are only read there,
and changed only between picks (everything runs on the event loop).
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections import defaultdict

from gleitzeit.instance import ProviderInstance

Shape = tuple[str, "str | None", "str | None", "str | None"]

#: More shapes than this and the lists are dropped and rebuilt on demand (a bound on
#: memory when requests name many distinct models).
MAX_SHAPES = 4096


class _List:
    """Instances in a list for the router, with O(1) removal (swap with the last)."""

    __slots__ = ("items", "pos")

    def __init__(self, items: list[ProviderInstance]) -> None:
        self.items = items
        self.pos = {inst.id: i for i, inst in enumerate(items)}

    def add(self, inst: ProviderInstance) -> None:
        if inst.id not in self.pos:
            self.pos[inst.id] = len(self.items)
            self.items.append(inst)

    def discard(self, instance_id: str) -> None:
        i = self.pos.pop(instance_id, None)
        if i is None:
            return
        last = self.items.pop()
        if i < len(self.items):
            self.items[i] = last
            self.pos[last.id] = i


def fits(shape: Shape, inst: ProviderInstance) -> bool:
    """Whether ``inst`` serves requests of this shape (routability aside)."""
    method, provider, model, capability = shape
    if method not in inst.methods:
        return False
    if provider is not None and inst.name != provider:
        return False
    # An instance that lists no models (not discovered, or a tool) may take any.
    if model is not None and inst.models and model not in inst.models:
        return False
    if model is None and method in inst.model_required:
        return False
    return capability is None or capability in inst.capabilities


def routable(inst: ProviderInstance, now: float) -> bool:
    return inst.health.status != "unhealthy" and inst.cooldown_until <= now


class CandidateLists:
    """The candidate list of every request shape seen, maintained incrementally."""

    def __init__(self) -> None:
        self._lists: dict[Shape, _List] = {}
        #: Each shape's list as the router gets it (``_List.items``, the same object):
        #: read by :meth:`Registry.candidates` itself, after :meth:`wake_due`.
        self.items: dict[Shape, list[ProviderInstance]] = {}
        #: The same lists for the plainest shape, a method and nothing else (most
        #: requests), by the method's name alone.
        self.by_method: dict[str, list[ProviderInstance]] = {}
        self._shapes_of: dict[str, set[Shape]] = defaultdict(set)
        #: (cool-down end, order, instance): instances to put back when their rest ends.
        self.cooling_heap: list[tuple[float, int, ProviderInstance]] = []
        self._order = itertools.count()

    def wake_due(self) -> None:
        """Put back the instances whose rest is over (cheap when none rests)."""
        if self.cooling_heap and self.cooling_heap[0][0] <= time.monotonic():
            self._wake()

    def get(self, shape: Shape) -> list[ProviderInstance] | None:
        self.wake_due()
        return self.items.get(shape)

    def put(self, shape: Shape, items: list[ProviderInstance]) -> list[ProviderInstance]:
        if len(self._lists) >= MAX_SHAPES:
            self.clear()
        self._lists[shape] = _List(items)
        self.items[shape] = items
        if shape[1] is None and shape[2] is None and shape[3] is None:
            self.by_method[shape[0]] = items
        self._shapes_of[shape[0]].add(shape)
        return items

    def clear(self) -> None:
        self._lists.clear()
        self.items.clear()
        self.by_method.clear()
        self._shapes_of.clear()

    # -- events ----------------------------------------------------------------------

    def joined(self, inst: ProviderInstance) -> None:
        """``inst`` was added, or became routable again: into every list it fits."""
        if not routable(inst, time.monotonic()):
            if inst.cooldown_until > time.monotonic():
                self.cooling(inst)
            return
        for method in inst.methods:
            for shape in self._shapes_of.get(method, ()):
                if fits(shape, inst):
                    self._lists[shape].add(inst)

    def left(self, inst: ProviderInstance) -> None:
        """``inst`` was removed, or may no longer be picked: out of every list."""
        for method in inst.methods:
            for shape in self._shapes_of.get(method, ()):
                self._lists[shape].discard(inst.id)

    def cooling(self, inst: ProviderInstance) -> None:
        """``inst`` rests until ``inst.cooldown_until``; it comes back by itself."""
        self.left(inst)
        heapq.heappush(self.cooling_heap, (inst.cooldown_until, next(self._order), inst))

    def _wake(self) -> None:
        now = time.monotonic()
        while self.cooling_heap and self.cooling_heap[0][0] <= now:
            _, _, inst = heapq.heappop(self.cooling_heap)
            if inst.registry is not None and routable(inst, now):
                self.joined(inst)
