"""The openai provider: chat, generate (mapped onto chat) and embeddings, streaming, for
OpenAI and any OpenAI-compatible server, through the official ``openai`` client."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

from gleitzeit import (
    AuthenticationError,
    InvalidParamsError,
    ModelNotFoundError,
    Provider,
    ProviderError,
    embedding_result,
    final_chunk,
    llm_result,
    method,
    token_chunk,
    usage,
)
from gleitzeit.llm import ChatMessage, ChatParams, EmbedParams, GenerateParams
from gleitzeit.results import tool_call
from gleitzeit_openai import __version__
from gleitzeit_openai.errors import map_error
from gleitzeit_openai.settings import OpenAISettings

log = logging.getLogger("gleitzeit.openai")

_MAGIC = {"iVBOR": "image/png", "/9j/": "image/jpeg", "R0lG": "image/gif", "UklG": "image/webp"}


def _mime(b64: str) -> str:
    for prefix, mime in _MAGIC.items():
        if b64.startswith(prefix):
            return mime
    return "image/png"


def to_openai_message(message: ChatMessage) -> dict[str, Any]:
    """A neutral message (``images`` as base64) in OpenAI's format (image content parts)."""
    data = message.model_dump(exclude_none=True)
    if data.get("role") == "tool":
        data.pop("name", None)  # OpenAI's tool messages take only tool_call_id and content
    images = data.pop("images", None)
    if images:
        content = data.get("content", "")
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else list(content)
        for b64 in images:
            url = b64 if b64.startswith("data:") else f"data:{_mime(b64)};base64,{b64}"
            parts.append({"type": "image_url", "image_url": {"url": url}})
        data["content"] = parts
    return data


def _deltas(deltas: Any, calls: dict[int, dict[str, Any]]) -> list[dict[str, Any]]:
    """Tool-call deltas as plain dicts, each also folded into ``calls`` (by index)."""
    out = []
    for d in deltas:
        fn = d.function
        piece: dict[str, Any] = {"index": d.index}
        if d.id:
            piece["id"] = d.id
        if d.type:
            piece["type"] = d.type
        piece["function"] = {
            k: v
            for k, v in (
                ("name", fn.name if fn else None),
                ("arguments", fn.arguments if fn else None),
            )
            if v is not None
        }
        out.append(piece)
        call = calls.setdefault(d.index, tool_call("", "", id=d.id or None))
        if d.id:
            call["id"] = d.id
        if fn is not None and fn.name:
            call["function"]["name"] += fn.name
        if fn is not None and fn.arguments:
            call["function"]["arguments"] += fn.arguments
    return out


class OpenAIProvider(Provider):
    """OpenAI, or any server that speaks its API (vLLM, LM Studio, llama.cpp, ...)."""

    name = "openai"
    kind = "llm"
    description = "OpenAI and OpenAI-compatible chat, completion and embedding models"
    version = __version__
    capabilities = ("chat", "generate", "embed", "streaming", "vision")
    Settings = OpenAISettings

    def __init__(self, settings: Any = None, *, name: str | None = None) -> None:
        super().__init__(settings, name=name)
        if self.settings.default_model is None:
            # Chat and generate need a model then; embed has embedding_model.
            self.model_required = ("llm/chat", "llm/generate")
        self._client: Any = None

    @property
    def cfg(self) -> OpenAISettings:
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
        key = self.cfg.resolved_api_key()
        if key is None and self.cfg.require_api_key:
            raise AuthenticationError(
                f"No OpenAI API key for provider {self.name!r}",
                hint="set the OPENAI_API_KEY environment variable, or api_key under "
                "plugins.openai in gleitzeit.yaml (require_api_key: false for a local "
                "server that needs none)",
            )
        import openai  # imported here, not at plugin load: it takes ~0.5 s

        self._client = openai.AsyncOpenAI(
            api_key=key or "no-key",
            base_url=self.base_url,
            organization=self.cfg.organization,
            # The host retries on other instances; SDK retries would multiply with it.
            max_retries=0,
            timeout=openai.Timeout(self.cfg.timeout, connect=self.cfg.connect_timeout),
        )
        if self.cfg.models is not None:
            self.models = tuple(self.cfg.models)
            return
        try:
            self.models = await self._discover(self.cfg.timeout)
        except AuthenticationError:
            await self.stop()
            raise
        except Exception as exc:  # unreachable now: start anyway, health will say why
            log.info("openai: model discovery at %s failed: %s", self.base_url, exc)

    async def _discover(self, timeout: float) -> tuple[str, ...]:
        try:
            page = await self._client.with_options(timeout=timeout).models.list()
        except Exception as exc:
            raise self._err(exc) from None
        return tuple(sorted(m.id for m in page.data))

    async def stop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def health(self) -> dict[str, Any]:
        if self._client is None:
            return {"status": "unhealthy", "detail": "not started"}
        try:
            found = await self._discover(self.cfg.health_timeout)
        except Exception as exc:
            err = self._err(exc)
            if self.cfg.models is not None and "404" in str(err):
                return {"status": "healthy", "detail": f"reachable at {self.base_url}"}
            return {"status": "unhealthy", "detail": str(err)}
        if self.cfg.models is None:
            self.models = found
        return {"status": "healthy", "detail": f"{len(found)} models at {self.base_url}"}

    # -- requests --------------------------------------------------------------------

    def _model(self, requested: str | None) -> str:
        model = requested or self.cfg.default_model
        if not model:
            raise InvalidParamsError(
                f"{self.name}: no model given and no default_model set",
                hint=f'pass "model"; available: {", ".join(self.models[:20]) or "(unknown)"}',
            )
        return model

    @staticmethod
    def _sampling(p: ChatParams | GenerateParams) -> dict[str, Any]:
        kw: dict[str, Any] = {}
        if isinstance(p, ChatParams):
            if p.tools:
                kw["tools"] = p.tools
            if p.tool_choice is not None:
                kw["tool_choice"] = p.tool_choice
        for key in ("temperature", "top_p", "max_tokens", "stop", "seed"):
            value = getattr(p, key)
            if value is not None:
                kw[key] = value
        if p.format == "json":
            kw["response_format"] = {"type": "json_object"}
        elif isinstance(p.format, dict):
            kw["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": p.format},
            }
        if p.options:
            kw["extra_body"] = dict(p.options)
        return kw

    @staticmethod
    def _generate_messages(p: GenerateParams) -> list[ChatMessage]:
        messages = []
        if p.system:
            messages.append(ChatMessage(role="system", content=p.system))
        messages.append(ChatMessage(role="user", content=p.prompt, images=p.images))
        return messages

    async def _complete(self, model: str, messages: list[ChatMessage], kw: dict) -> dict:
        try:
            resp = await self._client.chat.completions.create(
                model=model, messages=[to_openai_message(m) for m in messages], stream=False, **kw
            )
        except Exception as exc:
            raise self._err(exc, model) from None
        choice = resp.choices[0] if resp.choices else None
        u = resp.usage
        extra: dict[str, Any] = {}
        calls = choice.message.tool_calls if choice else None
        if calls:
            extra["tool_calls"] = [
                tool_call(c.function.name, c.function.arguments, id=c.id) for c in calls
            ]
        return llm_result(
            (choice.message.content if choice else "") or "",
            model=resp.model or model,
            provider=self.name,
            finish_reason=choice.finish_reason if choice else None,
            usage=usage(u.prompt_tokens, u.completion_tokens) if u else None,
            **extra,
        )

    async def _stream(
        self, model: str, messages: list[ChatMessage], kw: dict
    ) -> AsyncIterator[dict[str, Any]]:
        received = 0
        finish: str | None = None
        used: dict[str, int] | None = None
        calls: dict[int, dict[str, Any]] = {}  # tool calls assembled from their deltas
        try:
            stream = await self._client.chat.completions.create(
                model=model,
                messages=[to_openai_message(m) for m in messages],
                stream=True,
                stream_options={"include_usage": True},
                **kw,
            )
        except Exception as exc:
            raise self._err(exc, model) from None
        try:
            async for chunk in stream:
                received += 1
                if chunk.usage is not None:
                    used = usage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                if choice.finish_reason:
                    finish = choice.finish_reason
                delta = choice.delta
                if delta is None:
                    continue
                if delta.tool_calls:
                    yield {
                        "token": "",
                        "done": False,
                        "tool_calls": _deltas(delta.tool_calls, calls),
                    }
                if delta.content:
                    yield token_chunk(delta.content)
        except Exception as exc:
            raise self._err(exc, model, chunks=received) from None
        finally:
            await stream.close()
        extra: dict[str, Any] = {}
        if calls:
            extra["tool_calls"] = [calls[i] for i in sorted(calls)]
        yield final_chunk(
            finish_reason=finish, usage=used, model=model, provider=self.name, **extra
        )

    @method("llm/chat", params=ChatParams)
    async def chat(self, p: ChatParams) -> dict[str, Any]:
        """Chat completion (POST /chat/completions)."""
        return await self._complete(self._model(p.model), p.messages, self._sampling(p))

    @method("llm/chat", params=ChatParams)
    async def chat_stream(self, p: ChatParams) -> AsyncIterator[dict[str, Any]]:
        async for chunk in self._stream(self._model(p.model), p.messages, self._sampling(p)):
            yield chunk

    @method("llm/generate", params=GenerateParams)
    async def generate(self, p: GenerateParams) -> dict[str, Any]:
        """Text from a prompt (mapped onto chat completions)."""
        return await self._complete(
            self._model(p.model), self._generate_messages(p), self._sampling(p)
        )

    @method("llm/generate", params=GenerateParams)
    async def generate_stream(self, p: GenerateParams) -> AsyncIterator[dict[str, Any]]:
        messages = self._generate_messages(p)
        async for chunk in self._stream(self._model(p.model), messages, self._sampling(p)):
            yield chunk

    def _embedding_model(self) -> str:
        """The model for an embedding request that names none: the configured one, or —
        when the server's discovered list lacks the default — one it lists."""
        default = self.cfg.embedding_model
        if "embedding_model" in self.cfg.model_fields_set or not self.models:
            return default
        if default in self.models:
            return default
        listed = [m for m in self.models if "embed" in m.lower()]
        if listed:
            return listed[0]
        raise ModelNotFoundError(
            f"{self.base_url} lists no embedding model (the default {default!r} is not "
            "among its models)",
            hint=f"pass a model, or set plugins.{self.name}.embedding_model; "
            f"its models: {', '.join(self.models[:20])}",
        )

    @method("llm/embed", params=EmbedParams)
    async def embed(self, p: EmbedParams) -> dict[str, Any]:
        """Embeddings of one text or a list (POST /embeddings)."""
        model = p.model or self._embedding_model()
        try:
            resp = await self._client.embeddings.create(
                model=model, input=p.input, extra_body=p.options or None
            )
        except Exception as exc:
            raise self._err(exc, model) from None
        vectors = [d.embedding for d in sorted(resp.data, key=lambda d: d.index)]
        asked = 1 if isinstance(p.input, str) else len(p.input)
        if len(vectors) != asked:
            raise ProviderError(
                f"{self.base_url} returned {len(vectors)} embeddings for {asked} input(s) "
                f"with model {model!r}"
            )
        u = getattr(resp, "usage", None)
        return embedding_result(
            vectors,
            model=resp.model or model,
            provider=self.name,
            single=isinstance(p.input, str),
            usage=usage(u.prompt_tokens, 0) if u else None,
        )
