"""Deadlines for calls, with one timer for all of them.

``asyncio.timeout`` schedules and cancels a timer per call, which costs more than a fast
in-process provider takes to answer. Calls made with the same timeout finish their
deadlines in the order they started, so :class:`Deadlines` keeps one queue per timeout
value and a single loop timer armed for the earliest deadline of all; a call that ends
in time only marks its entry done. When the timer fires, the tasks of the calls that
are still running past their deadline are cancelled and told apart from other
cancellations by :attr:`Deadline.expired`.
"""

from __future__ import annotations

import asyncio
import math
from collections import deque

__all__ = ["Deadline", "Deadlines"]


class Deadline:
    """One call's deadline; set :attr:`done` when the call ends, however it ends."""

    __slots__ = ("task", "when", "done", "expired")

    def __init__(self, task: asyncio.Task[object] | None, when: float) -> None:
        self.task = task
        self.when = when
        self.done = False
        self.expired = False

    def clear(self) -> None:
        """The call is over. After an expiry, take back the cancellation this deadline
        asked for, so the task may go on (Python 3.11+ counts cancellation requests)."""
        self.done = True
        if self.expired and self.task is not None and hasattr(self.task, "uncancel"):
            self.task.uncancel()


class Deadlines:
    """Cancels the task of each call that outlives its deadline."""

    __slots__ = ("_queues", "_handle", "_armed_for", "_loop")

    def __init__(self) -> None:
        self._queues: dict[float, deque[Deadline]] = {}
        self._handle: asyncio.TimerHandle | None = None
        self._armed_for = math.inf
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, timeout: float) -> Deadline:
        """A deadline ``timeout`` seconds from now for the current task."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop (tests, asyncio.run twice)
            self._loop, self._queues, self._handle, self._armed_for = loop, {}, None, math.inf
        entry = Deadline(asyncio.current_task(), loop.time() + timeout)
        queue = self._queues.get(timeout)
        if queue is None:
            queue = self._queues[timeout] = deque()
        else:
            while queue and queue[0].done:  # keep the queue as short as what is running
                queue.popleft()
        queue.append(entry)
        if entry.when < self._armed_for:
            self._arm(loop, entry.when)
        return entry

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._armed_for = when
        self._handle = loop.call_at(when, self._fire)

    def _fire(self) -> None:
        loop = self._loop
        assert loop is not None
        self._handle, self._armed_for = None, math.inf
        now = loop.time()
        earliest = math.inf
        for timeout, queue in list(self._queues.items()):
            while queue and (queue[0].done or queue[0].when <= now):
                entry = queue.popleft()
                if not entry.done and entry.task is not None:
                    entry.expired = True
                    entry.task.cancel()
            if queue:
                earliest = min(earliest, queue[0].when)
            else:
                del self._queues[timeout]
        if earliest < math.inf:
            self._arm(loop, earliest)
