"""Per-stream flow control: credit that a reader grants and a sender spends.

The sender of a stream's chunks starts with ``window`` credits, spends one per
``stream:data`` and, at zero, waits for ``stream:credit`` from the reader, which grants
credit as it consumes chunks. So a reader that stops reading holds the sender after at
most ``window`` chunks, and nothing in between buffers more (docs/protocol.md).
"""

from __future__ import annotations

import asyncio
from collections import deque


class Credit:
    """Credit of one stream on one hop; optionally also bounded by bytes in flight."""

    __slots__ = ("available", "max_bytes", "_sizes", "_bytes", "_event")

    def __init__(self, window: int, max_bytes: int | None = None) -> None:
        self.available = window
        self.max_bytes = max_bytes
        self._sizes: deque[int] = deque()
        self._bytes = 0
        self._event = asyncio.Event()

    def grant(self, n: int) -> None:
        """The reader consumed ``n`` more chunks."""
        self.available += n
        for _ in range(min(n, len(self._sizes))):
            self._bytes -= self._sizes.popleft()
        self._event.set()

    def _blocked(self) -> bool:
        if self.available <= 0:
            return True
        return self.max_bytes is not None and bool(self._sizes) and self._bytes >= self.max_bytes

    async def spend(self, size: int = 0, timeout: float | None = None) -> bool:
        """Wait for credit for one chunk of ``size`` bytes; False when none came within
        ``timeout`` seconds of waiting."""
        while self._blocked():
            self._event.clear()
            try:
                await asyncio.wait_for(self._event.wait(), timeout)
            except asyncio.TimeoutError:
                return False
        self.available -= 1
        if self.max_bytes is not None:
            self._sizes.append(size)
            self._bytes += size
        return True


class Grants:
    """The reader's side: count consumed chunks and say when to grant them back (in
    batches of half the window, so credit messages stay rare)."""

    __slots__ = ("batch", "consumed")

    def __init__(self, window: int) -> None:
        self.batch = max(1, window // 2)
        self.consumed = 0

    def consumed_one(self) -> int:
        """Count one consumed chunk; the credit to send now (0 for none yet)."""
        self.consumed += 1
        if self.consumed >= self.batch:
            n, self.consumed = self.consumed, 0
            return n
        return 0
