"""The ollama provider: chat, generate and embeddings, streaming, through the official
``ollama`` client."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

from gleitzeit import (
    InvalidParamsError,
    Provider,
    embedding_result,
    final_chunk,
    llm_result,
    method,
    token_chunk,
    usage,
)
from gleitzeit.llm import ChatMessage, ChatParams, EmbedParams, GenerateParams, text_of
from gleitzeit.results import tool_call, tool_call_chunks
from gleitzeit_ollama import __version__
from gleitzeit_ollama.errors import map_error, record_retry_after
from gleitzeit_ollama.settings import OllamaSettings

log = logging.getLogger("gleitzeit.ollama")


def _names(tags: list[str]) -> tuple[str, ...]:
    """Model names as Ollama lists them, plus the short form of each ``:latest`` tag, so
    that ``llama3.2`` routes to ``llama3.2:latest`` as it does in Ollama itself."""
    out = set(tags)
    out.update(t[: -len(":latest")] for t in tags if t.endswith(":latest"))
    return tuple(sorted(out))


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


def _from_ollama_calls(calls: Any) -> list[dict[str, Any]]:
    """Ollama's tool calls (arguments as an object, no id) in the standard shape."""
    return [
        tool_call(c.function.name, dict(c.function.arguments or {}), id=getattr(c, "id", None))
        for c in calls or []
    ]


class OllamaProvider(Provider):
    """Local models served by Ollama."""

    name = "ollama"
    kind = "llm"
    description = "Local models served by Ollama: chat, generate, embeddings"
    version = __version__
    capabilities = ("chat", "generate", "embed", "streaming", "vision")
    Settings = OllamaSettings

    def __init__(self, settings: Any = None, *, name: str | None = None) -> None:
        super().__init__(settings, name=name)
        if self.settings.default_model is None:
            # Chat and generate need a model then; embed has embedding_model.
            self.model_required = ("llm/chat", "llm/generate")
        self._client: Any = None
        self._http: Any = None

    @property
    def cfg(self) -> OllamaSettings:
        return self.settings

    @property
    def base_url(self) -> str:
        return self.cfg.resolved_base_url()

    def _err(self, exc: BaseException, model: str | None = None, chunks: int | None = None):
        return map_error(
            exc,
            base_url=self.base_url,
            model=model,
            models=tuple(self.models),
            timeout=self.cfg.timeout,
            chunks_received=chunks,
        )

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        import httpx  # the ollama client's own HTTP library
        import ollama  # imported here, not at plugin load

        timeout = httpx.Timeout(self.cfg.timeout, connect=self.cfg.connect_timeout)
        self._client = ollama.AsyncClient(
            host=self.base_url,
            timeout=timeout,
            event_hooks={"response": [record_retry_after]},
        )
        self._http = httpx.AsyncClient(
            base_url=self.base_url, timeout=httpx.Timeout(self.cfg.health_timeout)
        )
        if self.cfg.models is not None:
            self.models = _names(self.cfg.models)
            return
        try:
            await self.discover_models()
        except Exception as exc:  # Ollama may start later: run, and let health say why
            log.info("ollama: model discovery at %s failed: %s", self.base_url, exc)

    async def stop(self) -> None:
        client, self._client = self._client, None
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()
        if client is not None:
            inner = getattr(client, "_client", None)
            if inner is not None:
                await inner.aclose()

    async def list_models(self) -> list[dict[str, Any]]:
        """The models on the server (GET /api/tags), with their details."""
        try:
            listed = await self._client.list()
        except Exception as exc:
            raise self._err(exc) from None
        return [m.model_dump(mode="json") for m in listed.models]

    async def discover_models(self) -> tuple[str, ...]:
        """Refresh ``models`` from the server."""
        found = await self.list_models()
        self.models = _names([str(n) for m in found if (n := m.get("model") or m.get("name"))])
        return self.models

    async def health(self) -> dict[str, Any]:
        if self._http is None:
            return {"status": "unhealthy", "detail": "not started"}
        try:
            resp = await self._http.get("/api/version")
            resp.raise_for_status()
            version = resp.json().get("version", "?")
        except Exception as exc:
            import httpx

            if isinstance(exc, httpx.TimeoutException):
                detail = (
                    f"Ollama at {self.base_url} did not answer within {self.cfg.health_timeout:g}s"
                )
            elif isinstance(exc, httpx.HTTPStatusError):
                detail = f"Ollama at {self.base_url} answered {exc.response.status_code}"
            elif self.cfg.base_url is None and not os.environ.get("OLLAMA_HOST"):
                # Nothing configured and nothing at the default address: say so, with
                # the fix, in one line (not a connection error to decode).
                detail = (
                    f"not configured: no Ollama at the default {self.base_url} — start it "
                    "(`ollama serve`), set OLLAMA_HOST or plugins.ollama.base_url, or "
                    "switch the plugin off (plugins: {ollama: false})"
                )
            else:
                detail = f"Cannot reach Ollama at {self.base_url}: {type(exc).__name__}"
            return {"status": "unhealthy", "detail": detail}
        return {"status": "healthy", "detail": f"Ollama {version} at {self.base_url}"}

    # -- requests --------------------------------------------------------------------

    def _model(self, requested: str | None) -> str:
        model = requested or self.cfg.default_model
        if not model:
            shown = ", ".join(m for m in self.models if not m.endswith(":latest"))
            raise InvalidParamsError(
                f"{self.name}: no model given and no default_model set",
                hint=f'pass "model"; available: {shown or "(unknown)"}',
            )
        return model

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
        kw: dict[str, Any] = {}
        if options:
            kw["options"] = options
        if p.format is not None:
            kw["format"] = p.format
        if self.cfg.keep_alive is not None:
            kw["keep_alive"] = self.cfg.keep_alive
        return kw

    @staticmethod
    def _usage(part: Any) -> dict[str, int] | None:
        return usage(getattr(part, "prompt_eval_count", None), getattr(part, "eval_count", None))

    async def _call(self, model: str, call: str, request: dict[str, Any]) -> Any:
        try:
            return await getattr(self._client, call)(model=model, stream=False, **request)
        except Exception as exc:
            raise self._err(exc, model) from None

    async def _stream(
        self, model: str, call: str, request: dict[str, Any], text: Any
    ) -> AsyncIterator[dict[str, Any]]:
        received = 0
        last: Any = None
        calls: list[dict[str, Any]] = []
        try:
            parts = await getattr(self._client, call)(model=model, stream=True, **request)
            async for part in parts:
                received += 1
                last = part
                message = getattr(part, "message", None)
                if message is not None and message.tool_calls:
                    # Ollama sends each call whole; shown as OpenAI-style deltas.
                    new = _from_ollama_calls(message.tool_calls)
                    for chunk in tool_call_chunks(new):
                        for d in chunk["tool_calls"]:
                            d["index"] += len(calls)
                        yield chunk
                    calls.extend(new)
                piece = text(part)
                if piece:
                    yield token_chunk(piece)
        except Exception as exc:
            raise self._err(exc, model, chunks=received) from None
        if last is None or not last.done:
            from gleitzeit import StreamError

            raise StreamError(
                f"The stream from Ollama at {self.base_url} ended without its final message "
                f"after {received} chunks"
            )
        extra: dict[str, Any] = {"tool_calls": calls} if calls else {}
        yield final_chunk(
            finish_reason="tool_calls" if calls else last.done_reason,
            usage=self._usage(last),
            model=last.model or model,
            provider=self.name,
            **extra,
        )

    def _chat_request(self, p: ChatParams) -> dict[str, Any]:
        request = {"messages": [to_ollama_message(m) for m in p.messages], **self._common(p)}
        if p.tools and p.tool_choice != "none":  # Ollama has no tool_choice: none = no tools
            request["tools"] = p.tools
        return request

    def _generate_request(self, p: GenerateParams) -> dict[str, Any]:
        request: dict[str, Any] = {"prompt": p.prompt, **self._common(p)}
        if p.system:
            request["system"] = p.system
        if p.images:
            request["images"] = p.images
        return request

    @method("llm/chat", params=ChatParams)
    async def chat(self, p: ChatParams) -> dict[str, Any]:
        """Chat (POST /api/chat); images on messages pass through."""
        model = self._model(p.model)
        resp = await self._call(model, "chat", self._chat_request(p))
        calls = _from_ollama_calls(resp.message.tool_calls)
        extra: dict[str, Any] = {"tool_calls": calls} if calls else {}
        return llm_result(
            resp.message.content or "",
            model=resp.model or model,
            provider=self.name,
            finish_reason="tool_calls" if calls else resp.done_reason,
            usage=self._usage(resp),
            **extra,
        )

    @method("llm/chat", params=ChatParams)
    async def chat_stream(self, p: ChatParams) -> AsyncIterator[dict[str, Any]]:
        model = self._model(p.model)
        async for chunk in self._stream(
            model, "chat", self._chat_request(p), lambda part: part.message.content
        ):
            yield chunk

    @method("llm/generate", params=GenerateParams)
    async def generate(self, p: GenerateParams) -> dict[str, Any]:
        """Completion of a prompt (POST /api/generate)."""
        model = self._model(p.model)
        resp = await self._call(model, "generate", self._generate_request(p))
        return llm_result(
            resp.response or "",
            model=resp.model or model,
            provider=self.name,
            finish_reason=resp.done_reason,
            usage=self._usage(resp),
        )

    @method("llm/generate", params=GenerateParams)
    async def generate_stream(self, p: GenerateParams) -> AsyncIterator[dict[str, Any]]:
        model = self._model(p.model)
        async for chunk in self._stream(
            model, "generate", self._generate_request(p), lambda part: part.response
        ):
            yield chunk

    @method("llm/embed", params=EmbedParams)
    async def embed(self, p: EmbedParams) -> dict[str, Any]:
        """Embeddings of one text or a list (POST /api/embed)."""
        model = p.model or self.cfg.embedding_model
        kw: dict[str, Any] = {"options": p.options} if p.options else {}
        try:
            resp = await self._client.embed(model=model, input=p.input, **kw)
        except Exception as exc:
            raise self._err(exc, model) from None
        asked = 1 if isinstance(p.input, str) else len(p.input)
        if len(resp.embeddings) != asked:
            from gleitzeit import ProviderError

            raise ProviderError(
                f"Ollama at {self.base_url} returned {len(resp.embeddings)} embeddings for "
                f"{asked} input(s) with model {model!r}"
            )
        return embedding_result(
            [list(v) for v in resp.embeddings],
            model=resp.model or model,
            provider=self.name,
            single=isinstance(p.input, str),
        )
