"""A cheap per-chunk timeout for streams.

``asyncio.timeout`` or ``wait_for`` around every chunk schedules (and cancels) a timer per
chunk, which costs more than a fast upstream takes to send one. :class:`StallWatch`
keeps one timer per stream: the waiting side writes a timestamp per chunk, and the
timer, when it fires, checks whether the wait has really lasted ``timeout`` seconds;
only then does it cancel the waiting task.
"""

from __future__ import annotations

import asyncio


class StallWatch:
    """Cancel the current task when one wait for a chunk lasts longer than ``timeout``.

    Call :meth:`waiting` before awaiting the next chunk and :meth:`got` after it; time the
    consumer spends between chunks does not count. After a cancellation, :attr:`fired`
    tells a stall apart from a cancel that came from elsewhere.
    """

    __slots__ = ("_loop", "_task", "_timeout", "_handle", "since", "fired")

    def __init__(self, timeout: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        self._timeout = timeout
        self.since: float | None = None
        self.fired = False
        self._handle: asyncio.TimerHandle | None = self._loop.call_later(timeout, self._check)

    def waiting(self) -> None:
        self.since = self._loop.time()

    def got(self) -> None:
        self.since = None

    def _check(self) -> None:
        now = self._loop.time()
        since = self.since
        if since is not None and now - since >= self._timeout:
            self.fired = True
            self._handle = None
            if self._task is not None:
                self._task.cancel()
            return
        self._handle = self._loop.call_at((since or now) + self._timeout, self._check)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        if self.fired and self._task is not None and hasattr(self._task, "uncancel"):
            self._task.uncancel()
