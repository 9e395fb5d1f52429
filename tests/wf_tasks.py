"""Python tasks for the workflow tests (imported by workflows through `imports:`)."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import gleitzeit


@gleitzeit.task
def mark(name: str, hold: bool = False) -> str:
    """Append NAME to $MARK_FILE; with hold, wait while $HOLD_FILE exists."""
    with open(os.environ["MARK_FILE"], "a") as fh:
        fh.write(name + "\n")
    if hold:
        while Path(os.environ["HOLD_FILE"]).exists():
            time.sleep(0.02)
    return name


@gleitzeit.task(name="shout")
async def shout_async(text: str, times: int = 1) -> str:
    await asyncio.sleep(0)
    return (text.upper() + "!") * times


@gleitzeit.task
def split(text: str) -> list:
    return text.split()


#: Calls of `flaky` so far, per key.
FLAKY_CALLS: dict[str, int] = {}


@gleitzeit.task
def flaky(key: str, fail_times: int) -> int:
    """Raise on the first FAIL_TIMES calls for KEY, then return the number of calls."""
    calls = FLAKY_CALLS[key] = FLAKY_CALLS.get(key, 0) + 1
    if calls <= fail_times:
        raise RuntimeError(f"flaky failure {calls}")
    return calls
