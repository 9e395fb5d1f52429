"""The ollama provider: chat, generate and embeddings, streaming, on the host's HTTP
provider base (Ollama's API: JSON in, NDJSON streams out)."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any

from gleitzeit import (
    ProviderError,
    ProviderUnavailableError,
    embedding_result,
    final_chunk,
    llm_result,
    method,
    token_chunk,
    usage,
)
from gleitzeit.httpllm import HttpLLMProvider, ndjson_lines
from gleitzeit.llm import ChatMessage, ChatParams, EmbedParams, GenerateParams, text_of
from gleitzeit.results import tool_call, tool_call_chunks
from gleitzeit_ollama import __version__, wire
from gleitzeit_ollama.settings import OllamaSettings


def to_ollama_message(message: ChatMessage) -> dict[str, Any]:
    """A neutral message in Ollama's shape: text content; tool calls with their
    arguments as an object; a tool result's function name as ``tool_name``."""
    data = message.model_dump(exclude_none=True)
    if not isinstance(data.get("content", ""), str):
        data["content"] = text_of(data["content"])
    calls = data.get("tool_calls")
    if calls:
        data["tool_calls"] = [_to_ollama_call(c) for c in calls]
    if data.get("role") == "tool" and "name" in data:
        data["tool_name"] = data.pop("name")
    return data


def _to_ollama_call(call: Any) -> dict[str, Any]:
    fn = dict(call.get("function") or {}) if isinstance(call, dict) else {}
    args = fn.get("arguments")
    if isinstance(args, str):
        try:
            args = json.loads(args or "{}")
        except ValueError:
            args = {}
    return {"function": {"name": fn.get("name", ""), "arguments": args or {}}}


def _from_ollama_calls(calls: list[wire.ToolCall] | None) -> list[dict[str, Any]]:
    """Ollama's tool calls (arguments as an object, no id) in the standard shape."""
    return [tool_call(c.function.name, c.function.arguments, id=c.id) for c in calls or []]


class OllamaProvider(HttpLLMProvider[OllamaSettings]):
    """Local models served by Ollama."""

    name = "ollama"
    description = "Local models served by Ollama: chat, generate, embeddings"
    version = __version__
    capabilities = ("chat", "generate", "embed", "streaming", "vision")
    Settings = OllamaSettings
    upstream = "Ollama"
    wire_format = "Ollama"
    unreachable_hint = "start Ollama (`ollama serve`) or set base_url / OLLAMA_HOST"
    timeout_reason = "a model may be loading"

    def model_names(self, names: list[str]) -> tuple[str, ...]:
        """Model names as Ollama lists them, plus the short form of each ``:latest``
        tag, so that ``llama3.2`` routes to ``llama3.2:latest`` as it does in Ollama."""
        out = set(names)
        out.update(n[: -len(":latest")] for n in names if n.endswith(":latest"))
        return tuple(sorted(out))

    def shown_models(self) -> str:
        return ", ".join(m for m in self.models if not m.endswith(":latest"))

    def missing_model_hint(self, model: str | None) -> str:
        return f"run `ollama pull {model}`; available models: {self.shown_models() or '(none)'}"

    def base_url_hint(self) -> str:
        return (
            "(or OLLAMA_HOST) it should be the server's root, such as "
            f"http://localhost:11434 (it is {self.base_url} now)"
        )

    async def list_models(self) -> list[dict[str, Any]]:
        """The models on the server (GET /api/tags), with their details."""
        tags = self.decode(wire.Tags, await self.get("/api/tags"))
        return [t.model_dump(mode="json", exclude_none=True) for t in tags.models]

    async def discover_models(self) -> list[str]:
        found = await self.list_models()
        return [str(n) for m in found if (n := m.get("model") or m.get("name"))]

    async def probe(self) -> str:
        try:
            raw = await self.get("/api/version", timeout=self.cfg.health_timeout)
        except ProviderUnavailableError as exc:
            if self.cfg.base_url is None and not os.environ.get("OLLAMA_HOST"):
                # Nothing configured and nothing at the default address: say so, with
                # the fix, in one line (not a connection error to decode).
                raise ProviderUnavailableError(
                    f"not configured: no Ollama at the default {self.base_url} — start it "
                    "(`ollama serve`), set OLLAMA_HOST or plugins.ollama.base_url, or "
                    "switch the plugin off (plugins: {ollama: false})"
                ) from exc
            raise
        return f"Ollama {self.decode(wire.Version, raw).version} at {self.base_url}"

    # -- requests --------------------------------------------------------------------

    def _common(self, p: ChatParams | GenerateParams) -> dict[str, Any]:
        options = dict(p.options)
        for key, target in (
            ("temperature", "temperature"),
            ("top_p", "top_p"),
            ("max_tokens", "num_predict"),
            ("seed", "seed"),
        ):
            value = getattr(p, key)
            if value is not None:
                options.setdefault(target, value)
        if p.stop is not None:
            options.setdefault("stop", [p.stop] if isinstance(p.stop, str) else p.stop)
        body: dict[str, Any] = {"model": self.model_for(p.model)}
        if options:
            body["options"] = options
        if p.format is not None:
            body["format"] = p.format
        if self.cfg.keep_alive is not None:
            body["keep_alive"] = self.cfg.keep_alive
        return body

    def _chat_body(self, p: ChatParams) -> dict[str, Any]:
        body = self._common(p)
        body["messages"] = [to_ollama_message(m) for m in p.messages]
        if p.tools and p.tool_choice != "none":  # Ollama has no tool_choice: none = no tools
            body["tools"] = p.tools
        return body

    def _generate_body(self, p: GenerateParams) -> dict[str, Any]:
        body = self._common(p)
        body["prompt"] = p.prompt
        if p.system:
            body["system"] = p.system
        if p.images:
            body["images"] = p.images
        return body

    async def _call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        body["stream"] = False
        model = body["model"]
        part = self.decode(wire.Part, await self.post(path, body, model=model))
        calls = _from_ollama_calls(part.message.tool_calls if part.message else None)
        extra: dict[str, Any] = {"tool_calls": calls} if calls else {}
        return llm_result(
            part.text(),
            model=part.model or model,
            provider=self.name,
            finish_reason="tool_calls" if calls else part.done_reason,
            usage=usage(part.prompt_eval_count, part.eval_count),
            **extra,
        )

    async def _stream(
        self, path: str, body: dict[str, Any]
    ) -> AsyncGenerator[dict[str, Any], None]:
        body["stream"] = True
        model = body["model"]
        received = 0
        last: wire.Part | None = None
        calls: list[dict[str, Any]] = []
        async with self.post_stream(path, body, ndjson_lines, model=model) as lines:
            async for line in lines:
                part = self.decode(wire.Part, line, chunks=received)
                if part.error is not None:
                    raise self.stream_error(part.error, received)
                received += 1
                last = part
                if part.message is not None and part.message.tool_calls:
                    # Ollama sends each call whole; shown as OpenAI-style deltas.
                    new = _from_ollama_calls(part.message.tool_calls)
                    for chunk in tool_call_chunks(new):
                        for d in chunk["tool_calls"]:
                            d["index"] += len(calls)
                        yield chunk
                    calls.extend(new)
                piece = part.text()
                if piece:
                    yield token_chunk(piece)
        if last is None or not last.done:
            raise self.stream_error(
                f"the stream ended without its final message after {received} chunks", received
            )
        extra: dict[str, Any] = {"tool_calls": calls} if calls else {}
        yield final_chunk(
            finish_reason="tool_calls" if calls else last.done_reason,
            usage=usage(last.prompt_eval_count, last.eval_count),
            model=last.model or model,
            provider=self.name,
            **extra,
        )

    @method("llm/chat", params=ChatParams)
    async def chat(self, p: ChatParams) -> dict[str, Any]:
        """Chat (POST /api/chat); images on messages pass through."""
        return await self._call("/api/chat", self._chat_body(p))

    @method("llm/chat", params=ChatParams)
    async def chat_stream(self, p: ChatParams) -> AsyncIterator[dict[str, Any]]:
        async with aclosing(self._stream("/api/chat", self._chat_body(p))) as chunks:
            async for chunk in chunks:
                yield chunk

    @method("llm/generate", params=GenerateParams)
    async def generate(self, p: GenerateParams) -> dict[str, Any]:
        """Completion of a prompt (POST /api/generate)."""
        return await self._call("/api/generate", self._generate_body(p))

    @method("llm/generate", params=GenerateParams)
    async def generate_stream(self, p: GenerateParams) -> AsyncIterator[dict[str, Any]]:
        async with aclosing(self._stream("/api/generate", self._generate_body(p))) as chunks:
            async for chunk in chunks:
                yield chunk

    @method("llm/embed", params=EmbedParams)
    async def embed(self, p: EmbedParams) -> dict[str, Any]:
        """Embeddings of one text or a list (POST /api/embed)."""
        model = self.embedding_model(p.model)
        body: dict[str, Any] = {"model": model, "input": p.input}
        if p.options:
            body["options"] = p.options
        reply = self.decode(wire.Embeddings, await self.post("/api/embed", body, model=model))
        asked = 1 if isinstance(p.input, str) else len(p.input)
        if len(reply.embeddings) != asked:
            raise ProviderError(
                f"{self.where} returned {len(reply.embeddings)} embeddings for "
                f"{asked} input(s) with model {model!r}"
            )
        return embedding_result(
            reply.embeddings,
            model=reply.model or model,
            provider=self.name,
            single=isinstance(p.input, str),
        )
