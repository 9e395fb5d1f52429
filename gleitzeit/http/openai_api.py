"""OpenAI's request and response shapes, and their translation to Gleitzeit's.

Requests are pydantic models that know the fields the gateway translates; every other
field is kept (``extra="allow"``) and passed to the provider in ``options`` — for the
openai plugin, that is the upstream request body — rather than refused. Responses are
built as plain dicts, field for field as OpenAI publishes them, because they are
written per request and per streamed chunk.
"""

from __future__ import annotations

import base64
import os
import struct
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "ChatCompletionRequest",
    "CompletionRequest",
    "EmbeddingRequest",
    "chat_chunk",
    "chat_completion",
    "completion",
    "completion_chunk",
    "embeddings",
    "error_body",
    "new_id",
    "usage_of",
]


class _Request(BaseModel):
    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1)

    def passthrough(self) -> dict[str, Any]:
        """The fields this model does not know, for the provider's ``options``."""
        return dict(self.model_extra or {})


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class _Sampling(_Request):
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None

    @field_validator("n")
    @classmethod
    def _one_choice(cls, value: int | None) -> int | None:
        if value is not None and value != 1:
            raise ValueError("only n=1 is supported: send the request again for another")
        return value

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage

    def sampling(self) -> dict[str, Any]:
        params: dict[str, Any] = {"model": self.model}
        for key in ("temperature", "top_p", "max_tokens", "stop", "seed"):
            value = getattr(self, key)
            if value is not None:
                params[key] = value
        return params


class ChatCompletionRequest(_Sampling):
    """``POST /v1/chat/completions``."""

    messages: list[dict[str, Any]] = Field(min_length=1)
    max_completion_tokens: int | None = None
    response_format: dict[str, Any] | None = None
    tools: list[str | dict[str, Any]] | None = None
    tool_choice: str | dict[str, Any] | None = None
    gleitzeit_tools: list[str] | None = Field(
        None, description="Gleitzeit method patterns the host runs as tools (extra_body)"
    )
    max_tool_rounds: int | None = Field(None, ge=1, le=100)

    @field_validator("messages")
    @classmethod
    def _contents(cls, messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for i, m in enumerate(messages):
            role = m.get("role")
            if role in ("user", "system", "developer", "tool") and m.get("content") is None:
                raise ValueError(f"messages[{i}] ({role}) needs a content")
        return messages

    @field_validator("response_format")
    @classmethod
    def _format(cls, fmt: dict[str, Any] | None) -> dict[str, Any] | None:
        if fmt is not None and fmt.get("type") not in ("text", "json_object", "json_schema"):
            raise ValueError(
                f"response_format.type {fmt.get('type')!r} is not one of text, json_object, "
                "json_schema"
            )
        return fmt

    @field_validator("tools")
    @classmethod
    def _functions(cls, tools: list[str | dict[str, Any]] | None) -> Any:
        for i, tool in enumerate(tools or []):
            if isinstance(tool, dict) and not (
                isinstance(tool.get("function"), dict) and tool["function"].get("name")
            ):
                raise ValueError(
                    f"tools[{i}] needs a function with a name: "
                    '{"type": "function", "function": {"name": ..., "parameters": {...}}}'
                )
        return tools

    def params(self) -> dict[str, Any]:
        """The ``llm/chat`` parameters."""
        params = self.sampling()
        params["messages"] = [_message(m) for m in self.messages]
        if self.max_completion_tokens is not None and "max_tokens" not in params:
            params["max_tokens"] = self.max_completion_tokens
        fmt = self.response_format or {}
        if fmt.get("type") == "json_object":
            params["format"] = "json"
        elif fmt.get("type") == "json_schema":
            params["format"] = (fmt.get("json_schema") or {}).get("schema") or {"type": "object"}
        for key in ("tools", "tool_choice", "gleitzeit_tools", "max_tool_rounds"):
            value = getattr(self, key)
            if value is not None:
                params[key] = value
        extra = self.passthrough()
        if extra:
            params["options"] = extra
        return params


def _message(message: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI message in the neutral shape: ``developer`` is ``system``; an
    assistant message with only tool calls has ``content: null``."""
    out = dict(message)
    if out.get("role") == "developer":
        out["role"] = "system"
    if out.get("content") is None:
        out["content"] = ""
    return out


class CompletionRequest(_Sampling):
    """``POST /v1/completions`` (legacy), served by ``llm/generate``."""

    prompt: str | list[str]
    suffix: str | None = None

    @field_validator("prompt")
    @classmethod
    def _one_prompt(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and len(value) != 1:
            raise ValueError("only one prompt per request is supported")
        return value

    def params(self) -> dict[str, Any]:
        """The ``llm/generate`` parameters."""
        params = self.sampling()
        params["prompt"] = self.prompt if isinstance(self.prompt, str) else self.prompt[0]
        extra = self.passthrough()
        if self.suffix is not None:
            extra["suffix"] = self.suffix
        if extra:
            params["options"] = extra
        return params


class EmbeddingRequest(_Request):
    """``POST /v1/embeddings``."""

    input: str | list[str] = Field(description="a text or a list of texts")
    encoding_format: Literal["float", "base64"] = "float"

    @field_validator("input")
    @classmethod
    def _texts(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list) and not value:
            raise ValueError("input must not be empty")
        return value

    def params(self) -> dict[str, Any]:
        """The ``llm/embed`` parameters."""
        params: dict[str, Any] = {"model": self.model, "input": self.input}
        extra = self.passthrough()
        extra.pop("user", None)
        if extra:
            params["options"] = extra
        return params


# -- responses -----------------------------------------------------------------------


def new_id(prefix: str) -> str:
    """A fresh response id, ``chatcmpl-`` and 24 hex digits as OpenAI's."""
    return f"{prefix}-{os.urandom(12).hex()}"


def error_body(
    message: str, type_: str, code: str | None = None, param: str | None = None
) -> dict[str, Any]:
    """OpenAI's error shape."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def usage_of(result: dict[str, Any]) -> dict[str, int]:
    """OpenAI's ``usage`` from a result's or final chunk's (zeros when unknown)."""
    u = result.get("usage") or {}
    p, c = int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0)
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def _extras(result: dict[str, Any]) -> dict[str, Any]:
    """What Gleitzeit adds beside OpenAI's fields (the SDK keeps unknown fields)."""
    out: dict[str, Any] = {}
    if result.get("provider"):
        out["provider"] = result["provider"]
    if result.get("tool_rounds"):
        out["tool_rounds"] = result["tool_rounds"]
    return out


def chat_completion(result: dict[str, Any], model: str) -> dict[str, Any]:
    """A ``chat.completion`` from an ``llm/chat`` result."""
    calls = result.get("tool_calls")
    message: dict[str, Any] = {
        "role": "assistant",
        "content": result.get("response") or (None if calls else ""),
        "refusal": None,
    }
    if calls:
        message["tool_calls"] = calls
    body: dict[str, Any] = {
        "id": new_id("chatcmpl"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": result.get("model") or model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": result.get("finish_reason") or "stop",
            }
        ],
        "usage": usage_of(result),
    }
    if result.get("system_fingerprint"):
        body["system_fingerprint"] = result["system_fingerprint"]
    extras = _extras(result)
    if extras:
        body["gleitzeit"] = extras
    return body


def chat_chunk(
    cid: str,
    created: int,
    model: str,
    delta: dict[str, Any] | None,
    finish: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """One ``chat.completion.chunk``; ``delta=None`` is the usage chunk (no choices)."""
    chunk: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": []
        if delta is None
        else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
    }
    chunk.update(extra)
    return chunk


def completion(result: dict[str, Any], model: str) -> dict[str, Any]:
    """A ``text_completion`` from an ``llm/generate`` result."""
    body: dict[str, Any] = {
        "id": new_id("cmpl"),
        "object": "text_completion",
        "created": int(time.time()),
        "model": result.get("model") or model,
        "choices": [
            {
                "text": result.get("response") or "",
                "index": 0,
                "logprobs": None,
                "finish_reason": result.get("finish_reason") or "stop",
            }
        ],
        "usage": usage_of(result),
    }
    extras = _extras(result)
    if extras:
        body["gleitzeit"] = extras
    return body


def completion_chunk(
    cid: str, created: int, model: str, text: str | None, finish: str | None = None, **extra: Any
) -> dict[str, Any]:
    """One streamed ``text_completion``; ``text=None`` is the usage chunk."""
    chunk: dict[str, Any] = {
        "id": cid,
        "object": "text_completion",
        "created": created,
        "model": model,
        "choices": []
        if text is None
        else [{"text": text, "index": 0, "logprobs": None, "finish_reason": finish}],
    }
    chunk.update(extra)
    return chunk


def _b64(vector: list[float]) -> str:
    """A vector as OpenAI sends it with ``encoding_format: base64``: little-endian
    float32, base64-encoded."""
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()


def embeddings(result: dict[str, Any], request: EmbeddingRequest) -> dict[str, Any]:
    """An embeddings ``list`` from an ``llm/embed`` result."""
    vectors = result.get("embeddings")
    if vectors is None:
        vectors = [result.get("embedding") or []]
    encode = _b64 if request.encoding_format == "base64" else list
    texts = [request.input] if isinstance(request.input, str) else request.input
    u = result.get("usage") or {}
    tokens = int(u.get("prompt_tokens") or sum(len(t.split()) for t in texts))
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": encode(v)}
            for i, v in enumerate(vectors)
        ],
        "model": result.get("model") or request.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
