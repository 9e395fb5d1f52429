"""Providers that the remote tests run in subprocesses (`gleitzeit provider run`)."""

from __future__ import annotations

import asyncio
import os

from pydantic import BaseModel

import gleitzeit


def _log(what: str, job: int) -> None:
    """With $EXEC_LOG set, one line per start and end of a call: the fault tests count
    calls that ran twice from it."""
    path = os.environ.get("EXEC_LOG")
    if path:
        with open(path, "a") as fh:
            fh.write(f"{what} {job} {os.getpid()}\n")


class Job(BaseModel):
    id: int
    delay: float = 0.02


class Worker(gleitzeit.Provider):
    """Answers with the request's id and its own pid, after a short delay."""

    name = "worker"
    kind = "tool"

    @gleitzeit.method("work/do", params=Job)
    async def do(self, p: Job) -> dict:
        _log("start", p.id)
        await asyncio.sleep(p.delay)
        _log("done", p.id)
        return {"result": p.id, "pid": os.getpid()}

    @gleitzeit.method("work/big")
    async def big(self, params) -> dict:
        return {"result": "x" * int(params.get("size", 50_000_000))}

    @gleitzeit.method("work/fail")
    async def fail(self, params) -> dict:
        raise gleitzeit.ToolError("this always fails", hint="by design")

    @gleitzeit.method("work/crash")
    async def crash(self, params) -> dict:
        raise RuntimeError("unexpected")


class Count(BaseModel):
    n: int = 5
    delay: float = 0.0


class Ticker(gleitzeit.Provider):
    """Streams n numbered tokens."""

    name = "ticker"
    kind = "llm"
    models = ("tick-1",)

    @gleitzeit.method("llm/generate", params=Count)
    async def ticks(self, p: Count):
        for i in range(p.n):
            if p.delay:
                await asyncio.sleep(p.delay)
            yield gleitzeit.token_chunk(f"t{i} ")
        yield gleitzeit.final_chunk(usage=gleitzeit.usage(0, p.n))

    async def health(self) -> dict:
        return {"status": "healthy", "detail": f"pid {os.getpid()}"}


class Announcer(Worker):
    """A worker that appends to $ANNOUNCE_FILE on every (re)connection."""

    name = "announcer"

    async def on_connected(self) -> None:
        with open(os.environ["ANNOUNCE_FILE"], "a") as fh:
            fh.write("connected\n")

    async def on_disconnected(self) -> None:
        with open(os.environ["ANNOUNCE_FILE"], "a") as fh:
            fh.write("disconnected\n")


class SlowChat(gleitzeit.Provider):
    """An LLM serving model slow-1 whose answers take a moment and name its pid."""

    name = "slowchat"
    kind = "llm"
    models = ("slow-1",)

    @gleitzeit.method("llm/chat", params=gleitzeit.llm.ChatParams)
    async def chat(self, p) -> dict:
        await asyncio.sleep(0.3)
        return gleitzeit.llm_result(
            f"{p.messages[-1].content} from {os.getpid()}", model="slow-1", provider=self.name
        )


class Talk(BaseModel):
    messages: list[dict]
    model: str | None = None
    delay: float = 0.05


class Talker(gleitzeit.Provider):
    """A chat model in its own process: answers word by word, slowly."""

    name = "talker"
    kind = "llm"
    models = ("talk-1",)

    @gleitzeit.method("llm/chat", params=Talk)
    async def chat(self, p: Talk):
        words = [f"w{i} " for i in range(200)]
        for word in words:
            await asyncio.sleep(p.delay)
            yield gleitzeit.token_chunk(word)
        yield gleitzeit.final_chunk(usage=gleitzeit.usage(1, len(words)))


class Size(BaseModel):
    n: int = 1000
    size: int = 100_000


class Bulk(gleitzeit.Provider):
    """Streams n chunks of `size` characters each (100 MB by default)."""

    name = "bulk"
    kind = "llm"

    @gleitzeit.method("llm/bulk", params=Size)
    async def bulk(self, p: Size):
        block = "x" * p.size
        for _ in range(p.n):
            yield gleitzeit.token_chunk(block)
        yield gleitzeit.final_chunk()


class Flaky(Worker):
    """A worker whose own health check says unhealthy while a file SICK is in its working
    directory."""

    name = "flaky"

    async def health(self) -> dict:
        if os.path.exists("SICK"):
            return {"status": "unhealthy", "detail": "SICK flag present"}
        return {"status": "healthy", "detail": "fine"}
