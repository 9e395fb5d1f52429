"""Python functions as workflow tasks, used by examples/python_tasks.yaml."""

from __future__ import annotations

import asyncio

import gleitzeit


@gleitzeit.task
def word_count(text: str) -> int:
    """Count the words of a text (a plain function: it runs in a worker thread)."""
    return len(text.split())


@gleitzeit.task
def char_count(text: str) -> int:
    """Count the characters of a text."""
    return len(text)


@gleitzeit.task
async def title_case(text: str) -> str:
    """Title-case a text (an async function: awaited on the event loop)."""
    await asyncio.sleep(0)
    return text.title()


@gleitzeit.task(name="stats")
def text_stats(words: int, chars: int) -> dict:
    return {"words": words, "chars": chars, "chars_per_word": round(chars / max(words, 1), 2)}
