"""The replies of OpenAI's API that the provider reads, as pydantic models.

Lenient where compatible servers differ (extra fields are ignored, most fields may be
missing) and strict where a wrong type would pass garbage on: a message's ``content``
is a string or null, never a list or a number.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class _Reply(BaseModel):
    model_config = ConfigDict(defer_build=True)


class Function(_Reply):
    name: str | None = None
    arguments: str | None = None


class ToolCall(_Reply):
    index: int = 0
    id: str | None = None
    type: str | None = None
    function: Function | None = None


class Message(_Reply):
    """A choice's ``message``, or a stream chunk's ``delta``."""

    content: str | None = None
    tool_calls: list[ToolCall] | None = None


class Choice(_Reply):
    message: Message | None = None
    delta: Message | None = None
    finish_reason: str | None = None


class Usage(_Reply):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class Completion(_Reply):
    """A ``chat.completion``, or one ``chat.completion.chunk`` of a stream (which may
    instead carry an ``error``)."""

    model: str | None = None
    choices: list[Choice] = []
    usage: Usage | None = None
    error: Any = None


class Model(_Reply):
    id: str


class ModelList(_Reply):
    data: list[Model]


class Embedding(_Reply):
    index: int = 0
    embedding: list[float]


class Embeddings(_Reply):
    model: str | None = None
    data: list[Embedding]
    usage: Usage | None = None
