"""Parameter models shared by LLM providers, so that one can be swapped for another.

Every LLM provider accepts these for ``llm/chat``, ``llm/generate`` and ``llm/embed``;
upstream-specific knobs go in ``options`` (passed through unchanged).

Images travel in one neutral form: ``images`` on a message (or on a generate request),
a list of base64 strings, as Ollama takes them. Each provider converts them to its
upstream's format.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Params(BaseModel):
    # defer_build: schemas are built on first use, not when a plugin is imported.
    model_config = ConfigDict(extra="forbid", defer_build=True)


class ChatMessage(BaseModel):
    """One message of a conversation."""

    model_config = ConfigDict(extra="allow", defer_build=True)  # tool calls, names pass through

    role: Literal["system", "user", "assistant", "tool"] = "user"
    content: str | list[Any] = ""
    images: list[str] | None = Field(None, description="base64-encoded images")


class SamplingParams(_Params):
    model: str | None = Field(None, description="model name; the provider's default if omitted")
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, gt=0, description="most tokens to generate")
    stop: str | list[str] | None = None
    seed: int | None = None
    format: Literal["json"] | dict[str, Any] | None = Field(
        None, description="'json' or a JSON Schema for structured output"
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="provider-specific options, passed through"
    )


class ChatParams(SamplingParams):
    """Parameters of ``llm/chat``.

    ``tools`` and ``tool_choice`` take OpenAI's JSON shape (``{"type": "function",
    "function": {"name", "description", "parameters"}}``); a model that calls tools
    answers with ``tool_calls`` and ``finish_reason: tool_calls``. Gleitzeit method
    patterns among the tools (``"calc/*"``) are run by the host (see
    :mod:`gleitzeit.tools`) and never reach a provider.
    """

    messages: list[ChatMessage] = Field(min_length=1)
    tools: list[dict[str, Any]] | None = Field(
        None, description="functions the model may call, in OpenAI's shape"
    )
    tool_choice: str | dict[str, Any] | None = Field(
        None, description="'auto', 'none', 'required' or {type: function, function: {name}}"
    )


class GenerateParams(SamplingParams):
    """Parameters of ``llm/generate``: one prompt, optionally with a system prompt."""

    prompt: str
    system: str | None = None
    images: list[str] | None = Field(None, description="base64-encoded images")


class EmbedParams(_Params):
    """Parameters of ``llm/embed``: one text or a list of texts."""

    model: str | None = None
    input: str | list[str] = Field(description="a text, or a list of texts")
    options: dict[str, Any] = Field(default_factory=dict)


def text_of(content: str | list[Any]) -> str:
    """The text of a message's content, whether a string or a list of parts."""
    if isinstance(content, str):
        return content
    parts = [p.get("text", "") for p in content if isinstance(p, dict)]
    return " ".join(p for p in parts if p)
