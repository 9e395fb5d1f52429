"""A local server that speaks Ollama's wire format: NDJSON streams, /api/tags, errors.

For tests of code that uses the ollama plugin, with no Ollama running; needs aiohttp::

    from gleitzeit.testing.fake_ollama import FakeOllama, Scenario

    async with FakeOllama() as server:
        server.scenario = Scenario(reply="Hi", chunks=20)
        # point the plugin (or any Ollama client) at server.url
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from typing import Any

from gleitzeit.testing.fake_server import FakeServer, Scenario

__all__ = ["FakeOllama", "Scenario"]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def _tag(name: str) -> dict[str, Any]:
    family = name.split(":")[0].rstrip("0123456789.") or name
    return {
        "name": name,
        "model": name,
        "modified_at": "2024-10-01T12:00:00.000000Z",
        "size": 2019393189,
        "digest": "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72",
        "details": {
            "parent_model": "",
            "format": "gguf",
            "family": family,
            "families": [family],
            "parameter_size": "3.2B",
            "quantization_level": "Q4_K_M",
        },
    }


class FakeOllama(FakeServer):
    """Ollama-compatible server on 127.0.0.1; ``url`` is its base URL."""

    def __init__(
        self, *, models: tuple[str, ...] = ("llama3.2:latest", "nomic-embed-text:latest")
    ) -> None:
        super().__init__()
        self.models = list(models)

    def routes(self, router: Any) -> None:
        router.add_post("/api/chat", self.chat)
        router.add_post("/api/generate", self.generate)
        router.add_post("/api/embed", self.embed)
        router.add_get("/api/tags", self.tags)
        router.add_get("/api/version", self.version)

    def _known(self, model: str | None) -> str | None:
        """The full name of a model (``llama3.2`` means ``llama3.2:latest``), or None."""
        if model in self.models:
            return model
        if model and ":" not in model and f"{model}:latest" in self.models:
            return f"{model}:latest"
        return None

    def _check(self, model: str | None, needs_model: bool = True) -> Any:
        from aiohttp import web

        sc = self.scenario
        if sc.status is not None:
            return web.json_response(
                sc.error if sc.error is not None else {"error": "scripted error"},
                status=sc.status,
                headers=sc.headers,
            )
        if needs_model and self._known(model) is None:
            return web.json_response({"error": f"model '{model}' not found"}, status=404)
        return None

    async def version(self, request: Any) -> Any:
        from aiohttp import web

        await self._record(request)
        return self._check(None, needs_model=False) or web.json_response({"version": "0.5.7"})

    async def tags(self, request: Any) -> Any:
        from aiohttp import web

        await self._record(request)
        failure = self._check(None, needs_model=False)
        return failure or web.json_response({"models": [_tag(m) for m in self.models]})

    async def embed(self, request: Any) -> Any:
        from aiohttp import web

        body = await self._record(request)
        failure = self._check(body.get("model"))
        if failure is not None:
            return failure
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
        return web.json_response(
            {
                "model": body.get("model"),
                "embeddings": [self.scenario.embedding(t) for t in texts],
                "total_duration": 14143917,
                "load_duration": 1019500,
                "prompt_eval_count": sum(len(t.split()) for t in texts),
            }
        )

    async def chat(self, request: Any) -> Any:
        return await self._answer(request, "message")

    async def generate(self, request: Any) -> Any:
        return await self._answer(request, "response")

    async def _answer(self, request: Any, shape: str) -> Any:
        from aiohttp import web

        body = await self._record(request)
        failure = self._check(body.get("model"))
        if failure is not None:
            return failure
        sc = self.scenario
        model = self._known(body.get("model"))
        # Ollama sends tool calls whole, arguments as an object, with done_reason "stop".
        calls = [
            {"function": {"name": c["name"], "arguments": c.get("arguments", {})}}
            for c in (sc.calls_for(body) if shape == "message" else [])
        ]
        pieces = [] if calls else sc.pieces()
        started = time.perf_counter_ns()

        def line(piece: str, done: bool) -> dict[str, Any]:
            out: dict[str, Any] = {"model": model, "created_at": _now()}
            if shape == "message":
                out["message"] = {"role": "assistant", "content": piece}
                if calls and (done == (body.get("stream") is False)):
                    out["message"]["tool_calls"] = calls
            else:
                out["response"] = piece
            out["done"] = done
            if done:
                took = time.perf_counter_ns() - started
                out.update(
                    done_reason=sc.finish_reason,
                    total_duration=took + 1000,
                    load_duration=1000,
                    prompt_eval_count=sc.prompt_tokens,
                    prompt_eval_duration=500,
                    eval_count=len(pieces),
                    eval_duration=took,
                )
                if shape == "response":
                    out["context"] = [1, 2, 3]
            return out

        if body.get("stream") is False:
            return web.json_response(line("".join(pieces), True))
        resp = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        if calls:
            await resp.write(json.dumps(line("", False), separators=(",", ":")).encode() + b"\n")

        async def send(i: int, piece: str) -> None:
            await resp.write(json.dumps(line(piece, False), separators=(",", ":")).encode() + b"\n")

        async def fail() -> None:  # an error line, the HTTP status staying 200
            await resp.write(b'{"error":"an error was encountered while running the model"}\n')
            await resp.write_eof()

        if await self.script(request, pieces, send, fail):
            await resp.write(json.dumps(line("", True), separators=(",", ":")).encode() + b"\n")
            await resp.write_eof()
        return resp
