"""Deadlines for calls, with one timer for all of them.

``asyncio.timeout`` schedules and cancels a timer per call, which costs more than a fast
in-process provider takes to answer. Calls made with the same timeout reach their
deadlines in the order they started, so :class:`Deadlines` keeps the calls in flight in
one insertion-ordered dict per timeout value (the oldest first) and a single loop
timer armed for the earliest deadline of all. A call that ends in time only leaves its
dict. When the timer fires, the task of each call still running past its deadline is
cancelled and the call is marked :attr:`Timed.expired`, which tells that cancellation
apart from any other.
"""

from __future__ import annotations

import asyncio
import math

__all__ = ["Deadlines", "Timed"]


class Timed:
    """What :class:`Deadlines` needs of a call: its task, its deadline, its timeout,
    and where to say it expired. The dispatcher's call object is one."""

    __slots__ = ("task", "when", "timeout", "expired")

    def __init__(self) -> None:
        self.task: asyncio.Task[object] | None = None
        self.when = math.inf
        self.timeout = math.inf
        self.expired = False


class Deadlines:
    """Cancels the task of each call that outlives its deadline."""

    __slots__ = ("_by_timeout", "_handle", "_armed_for", "_loop")

    def __init__(self) -> None:
        self._by_timeout: dict[float, dict[Timed, None]] = {}
        self._handle: asyncio.TimerHandle | None = None
        self._armed_for = math.inf
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self, call: Timed, timeout: float, elapsed: float = 0.0) -> None:
        """Start ``call``'s deadline for the current task: ``timeout`` seconds from its
        start, ``elapsed`` seconds ago."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a new event loop (tests, asyncio.run twice)
            self._loop, self._by_timeout, self._handle = loop, {}, None
            self._armed_for = math.inf
        call.task = asyncio.current_task(loop)
        call.timeout = timeout
        call.when = when = loop.time() + timeout - elapsed
        calls = self._by_timeout.get(timeout)
        if calls is None:
            calls = self._by_timeout[timeout] = {}
        calls[call] = None
        if when < self._armed_for:
            self._arm(loop, when)

    def end(self, call: Timed) -> None:
        """The call is over, however it ended."""
        calls = self._by_timeout.get(call.timeout)
        if calls is not None:
            calls.pop(call, None)

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
        for timeout, calls in list(self._by_timeout.items()):
            due = []
            for call in calls:
                if call.when > now:
                    earliest = min(earliest, call.when)
                    break
                due.append(call)
            for call in due:
                del calls[call]
                task = call.task
                if task is not None and not task.done():
                    call.expired = True
                    task.cancel()
            if not calls:
                del self._by_timeout[timeout]
        if earliest < math.inf:
            self._arm(loop, earliest)
