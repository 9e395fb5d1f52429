"""``echo``: an offline LLM provider for demos and tests.

It answers with the text of the last user message, streamed word by word, in the
standard LLM result shape, so examples run with no model and no network.

Scripted tool calls (when the request offers ``tools``): each line of the last user
message of the form ``/call NAME {json arguments}`` becomes a tool call, made once —
after the tool results come back, echo answers ``tool results: ...`` with their
contents. A ``/loop NAME {json}`` line is called again every round (a model that never
stops calling tools). See docs/tools.md.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from pydantic import Field

from gleitzeit.llm import ChatParams, GenerateParams, text_of
from gleitzeit.provider import Provider, method
from gleitzeit.results import (
    final_chunk,
    llm_result,
    token_chunk,
    tool_call,
    tool_call_chunks,
    usage,
)


class EchoChatParams(ChatParams):
    prefix: str = Field("", description="text put before the echoed message")
    delay: float = Field(0.0, ge=0, le=10, description="seconds between streamed words")


class EchoGenerateParams(GenerateParams):
    prefix: str = Field("", description="text put before the echoed prompt")
    delay: float = Field(0.0, ge=0, le=10, description="seconds between streamed words")


def _words(text: str) -> list[str]:
    """Split keeping the spaces, so the joined tokens equal the text."""
    pieces = text.split(" ")
    return [p + " " for p in pieces[:-1]] + [pieces[-1]] if text else []


class EchoProvider(Provider):
    """Echoes the last user message back, word by word when streamed."""

    name = "echo"
    kind = "llm"
    description = "Offline echo LLM for demos and tests"
    version = "1"
    models = ("echo",)
    capabilities = ("chat", "generate", "streaming", "vision")

    def _reply(self, text: str, prefix: str) -> tuple[str, int]:
        return prefix + text, len(text.split())

    def _result(self, prompt: str, prefix: str) -> dict[str, Any]:
        reply, n = self._reply(prompt, prefix)
        return llm_result(
            reply,
            model="echo",
            provider=self.name,
            usage=usage(n, len(reply.split())),
        )

    async def _stream(self, prompt: str, prefix: str, delay: float) -> AsyncIterator[dict]:
        reply, n = self._reply(prompt, prefix)
        for word in _words(reply):
            if delay:
                import asyncio

                await asyncio.sleep(delay)
            yield token_chunk(word)
        yield final_chunk(usage=usage(n, len(reply.split())), model="echo", provider=self.name)

    @staticmethod
    def _last_user(params: EchoChatParams) -> str:
        users = [m for m in params.messages if m.role == "user"] or params.messages
        return text_of(users[-1].content)

    @staticmethod
    def _script(params: EchoChatParams) -> tuple[list[dict[str, Any]], str | None]:
        """The tool calls to make now, or the answer after tool results (see above)."""
        if not params.tools:
            return [], None
        last = max((i for i, m in enumerate(params.messages) if m.role == "user"), default=-1)
        if last < 0:
            return [], None
        once: list[dict[str, Any]] = []
        every: list[dict[str, Any]] = []
        for line in text_of(params.messages[last].content).splitlines():
            word, _, rest = line.strip().partition(" ")
            if word in ("/call", "/loop") and rest.strip():
                name, _, args = rest.strip().partition(" ")
                (once if word == "/call" else every).append(tool_call(name, args.strip() or "{}"))
        results = [text_of(m.content) for m in params.messages[last + 1 :] if m.role == "tool"]
        if every:
            return every if results else once + every, None
        if once and not results:
            return once, None
        if results:
            return [], "tool results: " + "; ".join(results)
        return [], None

    @method("llm/chat", params=EchoChatParams)
    async def chat(self, params: EchoChatParams) -> dict[str, Any]:
        """Reply with the last user message (and say how many images came with it)."""
        calls, answer = self._script(params)
        if calls:
            return llm_result(
                "",
                model="echo",
                provider=self.name,
                finish_reason="tool_calls",
                usage=usage(1, len(calls)),
                tool_calls=calls,
            )
        result = self._result(answer or self._last_user(params), params.prefix)
        images = sum(len(m.images or []) for m in params.messages)
        if images:
            result["images"] = images  # so an offline run can see its images arrived
        return result

    @method("llm/chat", params=EchoChatParams)
    async def chat_stream(self, params: EchoChatParams) -> AsyncIterator[dict[str, Any]]:
        calls, answer = self._script(params)
        if calls:
            for chunk in tool_call_chunks(calls):
                yield chunk
            yield final_chunk(
                finish_reason="tool_calls",
                usage=usage(1, len(calls)),
                model="echo",
                provider=self.name,
                tool_calls=calls,
            )
            return
        text = answer or self._last_user(params)
        async for chunk in self._stream(text, params.prefix, params.delay):
            yield chunk

    @method("llm/generate", params=EchoGenerateParams)
    async def generate(self, params: EchoGenerateParams) -> dict[str, Any]:
        """Reply with the prompt."""
        return self._result(params.prompt, params.prefix)

    @method("llm/generate", params=EchoGenerateParams)
    async def generate_stream(self, params: EchoGenerateParams) -> AsyncIterator[dict[str, Any]]:
        async for chunk in self._stream(params.prompt, params.prefix, params.delay):
            yield chunk
