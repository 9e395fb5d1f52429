"""The replies of Ollama's API that the provider reads, as pydantic models.

One model serves ``/api/chat`` and ``/api/generate``, streamed (each NDJSON line) or
not: a chat line has ``message``, a generate line ``response``; the last has
``done: true`` with ``done_reason`` and the counters. A line with ``error`` is an error
reported inside the stream.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Reply(BaseModel):
    model_config = ConfigDict(defer_build=True)


class Function(_Reply):
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class ToolCall(_Reply):
    id: str | None = None
    function: Function


class Message(_Reply):
    role: str = "assistant"
    content: str = ""
    tool_calls: list[ToolCall] | None = None


class Part(_Reply):
    """One line of a chat or generate answer (the whole answer when not streamed)."""

    model: str | None = None
    message: Message | None = None
    response: str | None = None
    done: bool = False
    done_reason: str | None = None
    prompt_eval_count: int | None = None
    eval_count: int | None = None
    error: str | None = None

    def text(self) -> str:
        if self.message is not None:
            return self.message.content
        return self.response or ""


class Tag(_Reply):
    """One model of ``GET /api/tags``; its other fields are kept for ``ollama models``."""

    model_config = ConfigDict(extra="allow", defer_build=True)

    name: str | None = None
    model: str | None = None


class Tags(_Reply):
    models: list[Tag]


class Version(_Reply):
    version: str = "?"


class Embeddings(_Reply):
    model: str | None = None
    embeddings: list[list[float]]
