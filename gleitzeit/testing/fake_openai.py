"""A local server that speaks OpenAI's chat, models and embeddings wire format.

For tests of code that uses the openai plugin (or any OpenAI client), with no network
and no key; needs aiohttp::

    from gleitzeit.testing.fake_openai import FakeOpenAI, Scenario

    async with FakeOpenAI() as server:
        server.scenario = Scenario(reply="Hi there", chunks=50)
        # point the plugin (or the openai SDK) at server.url
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from gleitzeit.testing.fake_server import FakeServer, Scenario

__all__ = ["FakeOpenAI", "Scenario", "error_body"]


#: The request fields of POST /v1/chat/completions the real service knows; like it, the
#: fake refuses any other with 400 "Unrecognized request argument supplied".
CHAT_FIELDS = frozenset(
    """model messages stream stream_options temperature top_p max_tokens
    max_completion_tokens stop seed response_format tools tool_choice parallel_tool_calls
    n user presence_penalty frequency_penalty logit_bias logprobs top_logprobs metadata
    store service_tier modalities audio prediction reasoning_effort functions
    function_call""".split()
)


def error_body(message: str, type_: str, code: str | None, param: str | None = None) -> dict:
    """OpenAI's error shape, for ``Scenario(error=...)``."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


class FakeOpenAI(FakeServer):
    """OpenAI-compatible server on 127.0.0.1; ``url`` ends in ``/v1``."""

    def __init__(
        self,
        *,
        models: tuple[str, ...] = ("gpt-4o-mini", "text-embedding-3-small"),
        api_key: str | None = "sk-test",
        models_endpoint: bool = True,
    ) -> None:
        super().__init__()
        self.models = list(models)
        self.api_key = api_key
        self.models_endpoint = models_endpoint

    base_path = "/v1"

    def routes(self, router: Any) -> None:
        router.add_post("/v1/chat/completions", self.chat)
        router.add_post("/v1/embeddings", self.embeddings)
        if self.models_endpoint:
            router.add_get("/v1/models", self.list_models)

    def _json_error(self, status: int, body: dict, headers: dict | None = None) -> Any:
        from aiohttp import web

        return web.json_response(body, status=status, headers=headers or {})

    def _check(self, request: Any, model: str | None) -> Any:
        """The error response the real service would give, or None."""
        sc = self.scenario
        if sc.status is not None:
            body = sc.error or error_body("scripted error", "server_error", None)
            return self._json_error(sc.status, body, sc.headers)
        if self.api_key is not None:
            auth = request.headers.get("Authorization", "")
            if auth != f"Bearer {self.api_key}":
                return self._json_error(
                    401,
                    error_body(
                        "Incorrect API key provided: sk-wr***. You can find your API key at "
                        "https://platform.openai.com/account/api-keys.",
                        "invalid_request_error",
                        "invalid_api_key",
                    ),
                )
        if model is not None and model not in self.models:
            return self._json_error(
                404,
                error_body(
                    f"The model `{model}` does not exist or you do not have access to it.",
                    "invalid_request_error",
                    "model_not_found",
                ),
            )
        return None

    async def list_models(self, request: Any) -> Any:
        from aiohttp import web

        await self._record(request)
        failure = self._check(request, None)
        if failure is not None:
            return failure
        data = [
            {"id": m, "object": "model", "created": 1700000000, "owned_by": "system"}
            for m in self.models
        ]
        return web.json_response({"object": "list", "data": data})

    async def embeddings(self, request: Any) -> Any:
        from aiohttp import web

        body = await self._record(request)
        failure = self._check(request, body.get("model"))
        if failure is not None:
            return failure
        inputs = body.get("input")
        texts = [inputs] if isinstance(inputs, str) else list(inputs or [])
        data = [
            {"object": "embedding", "index": i, "embedding": self.scenario.embedding(t)}
            for i, t in enumerate(texts)
        ]
        tokens = sum(len(t.split()) for t in texts)
        return web.json_response(
            {
                "object": "list",
                "data": data,
                "model": body.get("model"),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            }
        )

    async def chat(self, request: Any) -> Any:
        from aiohttp import web

        body = await self._record(request)
        failure = self._check(request, body.get("model"))
        if failure is not None:
            return failure
        unknown = sorted(set(body) - CHAT_FIELDS)
        if unknown:
            return self._json_error(
                400,
                error_body(
                    f"Unrecognized request argument supplied: {unknown[0]}",
                    "invalid_request_error",
                    None,
                ),
            )
        sc = self.scenario
        calls: list[dict[str, Any]] = [
            {
                "id": f"call_{uuid.uuid4().hex[:24]}",
                "type": "function",
                "function": {"name": c["name"], "arguments": json.dumps(c.get("arguments", {}))},
            }
            for c in sc.calls_for(body)
        ]
        pieces = [] if calls else sc.pieces()
        cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        created = int(time.time())
        model = body.get("model")
        usage = {
            "prompt_tokens": sc.prompt_tokens,
            "completion_tokens": len(pieces),
            "total_tokens": sc.prompt_tokens + len(pieces),
        }
        if not body.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": "".join(pieces)}
            if calls:
                message = {"role": "assistant", "content": None, "tool_calls": calls}
            return web.json_response(
                {
                    "id": cid,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": message,
                            "logprobs": None,
                            "finish_reason": "tool_calls" if calls else sc.finish_reason,
                        }
                    ],
                    "usage": usage,
                }
            )
        resp = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await resp.prepare(request)

        def chunk(delta: dict, finish: str | None) -> dict:
            return {
                "id": cid,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [
                    {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
                ],
            }

        async def send(data: Any) -> None:
            text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
            await resp.write(f"data: {text}\n\n".encode())

        if calls:
            # As the service streams them: per call, its id and name first, then the
            # arguments in pieces; the last chunk has an empty delta and the reason.
            for i, call in enumerate(calls):
                head: dict[str, Any] = {"index": i, "id": call["id"], "type": "function"}
                head["function"] = {"name": call["function"]["name"], "arguments": ""}
                first: dict[str, Any] = {"role": "assistant", "content": None} if i == 0 else {}
                await send(chunk({**first, "tool_calls": [head]}, None))
                args = call["function"]["arguments"]
                for j in range(0, len(args), 8):
                    part = {"index": i, "function": {"arguments": args[j : j + 8]}}
                    await send(chunk({"tool_calls": [part]}, None))
            await send(chunk({}, "tool_calls"))
            await send("[DONE]")
            await resp.write_eof()
            return resp
        await send(chunk({"role": "assistant", "content": ""}, None))
        last = len(pieces) - 1

        async def piece(i: int, text: str) -> None:
            await send(chunk({"content": text}, sc.finish_reason if i == last else None))

        async def fail() -> None:  # an error event; the stream then simply stops
            message = "The server had an error while processing your request."
            await send(error_body(message, "server_error", None))

        if not await self.script(request, pieces, piece, fail):
            return resp
        if not pieces:
            await send(chunk({}, sc.finish_reason))
        if (body.get("stream_options") or {}).get("include_usage"):
            await send(
                {
                    "id": cid,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": model,
                    "choices": [],
                    "usage": usage,
                }
            )
        await send("[DONE]")
        await resp.write_eof()
        return resp
