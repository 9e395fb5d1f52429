"""Chat sessions over a raw python-socketio client: history goes with each message,
answers stream, and an answer that breaks off is stored as far as it came."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import pytest
import socketio

import gleitzeit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from observe_support import TOKEN, provider_process, remote, start_server, wait_until  # noqa: E402


class Recorder(gleitzeit.Provider):
    """Streams a fixed answer and keeps every request's messages."""

    name = "recorder"
    kind = "llm"
    models = ("rec-1",)
    seen: list[list[dict[str, Any]]] = []

    @gleitzeit.method("llm/chat")
    async def chat(self, params: dict) -> Any:
        Recorder.seen.append(params["messages"])
        n = len(Recorder.seen)
        for word in (f"answer{n} ", "in ", "parts"):
            yield gleitzeit.token_chunk(word)
        yield gleitzeit.final_chunk(usage=gleitzeit.usage(3, 3))


class Events:
    """A raw Socket.IO client on /clients, its chat events in one queue."""

    def __init__(self) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.queue: asyncio.Queue[tuple[str, dict]] = asyncio.Queue()
        for event in ("chat:chunk", "chat:complete", "chat:error"):
            self.sio.on(event, self._keeper(event), namespace="/clients")

    def _keeper(self, event: str) -> Any:
        async def keep(data: dict) -> None:
            await self.queue.put((event, data))

        return keep

    async def connect(self, url: str) -> None:
        await self.sio.connect(
            url, namespaces=["/clients"], auth={"token": TOKEN}, transports=["websocket"]
        )

    async def call(self, event: str, data: dict | None = None) -> dict:
        return await self.sio.call(event, data or {}, namespace="/clients", timeout=20)

    async def until_end(self) -> tuple[list[str], str, dict]:
        tokens = []
        while True:
            event, data = await asyncio.wait_for(self.queue.get(), 30)
            if event == "chat:chunk":
                tokens.append(data["token"])
            else:
                return tokens, event, data


@pytest.fixture
async def client():
    events = Events()
    yield events
    if events.sio.connected:
        await events.sio.disconnect()


async def test_second_message_carries_the_first_exchange(tmp_path, client):
    Recorder.seen = []
    server = await start_server(tmp_path, providers=[Recorder()])
    try:
        await client.connect(server.url)
        models = await client.call("chat:models")
        assert "rec-1" in models["result"]["models"]

        ack = await client.call("chat:send", {"model": "rec-1", "message": "first question"})
        assert ack["ok"], ack
        session = ack["session_id"]
        tokens, end, done = await client.until_end()
        assert end == "chat:complete"
        assert "".join(tokens) == done["full_response"] == "answer1 in parts"
        assert done["usage"]["completion_tokens"] == 3

        ack = await client.call(
            "chat:send", {"session_id": session, "model": "rec-1", "message": "second"}
        )
        assert ack["ok"] and ack["session_id"] == session
        await client.until_end()

        assert Recorder.seen[1] == [
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "answer1 in parts"},
            {"role": "user", "content": "second"},
        ]
        opened = await client.call("chat:open", {"session_id": session})
        stored = opened["result"]["messages"]
        assert [m["role"] for m in stored] == ["user", "assistant", "user", "assistant"]
        assert all(m["complete"] for m in stored)
        listed = await client.call("chat:sessions")
        assert listed["result"]["sessions"][0]["id"] == session

        bad = await client.call(
            "chat:send", {"session_id": "nope", "model": "rec-1", "message": "x"}
        )
        assert not bad["ok"] and bad["error"]["code"] == "invalid_params"
    finally:
        await server.stop(grace=0)


async def test_history_is_trimmed_to_the_configured_turns(tmp_path, client):
    Recorder.seen = []
    server = await start_server(tmp_path, "chat: {history_turns: 1}\n", providers=[Recorder()])
    try:
        await client.connect(server.url)
        session = None
        for text in ("one", "two", "three"):
            data = {"model": "rec-1", "message": text}
            if session:
                data["session_id"] = session
            session = (await client.call("chat:send", data))["session_id"]
            await client.until_end()
        assert [m["content"] for m in Recorder.seen[2]] == ["two", "answer2 in parts", "three"]
    finally:
        await server.stop(grace=0)


async def test_a_provider_killed_mid_answer_gives_chat_error_and_an_incomplete_message(
    tmp_path, client
):
    server = await start_server(tmp_path)
    proc = provider_process("remote_providers:Talker", server.url, tmp_path)
    try:
        await wait_until(lambda: remote(server, "talker"), "the remote talker")
        await client.connect(server.url)
        ack = await client.call("chat:send", {"model": "talk-1", "message": "talk to me"})
        assert ack["ok"], ack
        got = []
        while len(got) < 3:
            event, data = await asyncio.wait_for(client.queue.get(), 30)
            assert event == "chat:chunk"
            got.append(data["token"])
        proc.kill()
        tokens, end, failed = await client.until_end()
        assert end == "chat:error"
        assert failed["error"]["code"] == "stream_error"
        partial = "".join(got + tokens)
        assert failed["partial"] == partial and partial.startswith("w0 w1 w2 ")

        opened = await client.call("chat:open", {"session_id": ack["session_id"]})
        last = opened["result"]["messages"][-1]
        assert last["role"] == "assistant"
        assert last["content"] == partial
        assert last["complete"] is False
    finally:
        proc.kill()
        proc.wait(10)
        await server.stop(grace=0)


async def test_cancel_stops_the_answer_and_keeps_the_part_that_came(tmp_path, client):
    server = await start_server(tmp_path)
    proc = provider_process("remote_providers:Talker", server.url, tmp_path)
    try:
        await wait_until(lambda: remote(server, "talker"), "the remote talker")
        await client.connect(server.url)
        ack = await client.call("chat:send", {"model": "talk-1", "message": "go on"})
        event, first = await asyncio.wait_for(client.queue.get(), 30)
        assert event == "chat:chunk"
        await client.sio.emit(
            "chat:cancel", {"session_id": ack["session_id"]}, namespace="/clients"
        )
        tokens, end, done = await client.until_end()
        assert end == "chat:complete" and done["cancelled"] is True
        assert done["full_response"] == first["token"] + "".join(tokens)
        (talker,) = remote(server, "talker")
        await wait_until(lambda: talker.in_flight == 0, "the stream to stop")
        opened = await client.call("chat:open", {"session_id": ack["session_id"]})
        assert opened["result"]["messages"][-1]["complete"] is False
    finally:
        proc.kill()
        proc.wait(10)
        await server.stop(grace=0)


async def test_gleitzeit_chat_in_the_terminal_streams_and_reopens_a_session(tmp_path):
    import os

    Recorder.seen = []
    server = await start_server(tmp_path, providers=[Recorder()])
    env = {k: v for k, v in os.environ.items() if not k.startswith("GLEITZEIT_")}
    env.update(GLEITZEIT_TOKEN=TOKEN, XDG_CONFIG_HOME=str(tmp_path / "xdg"))

    async def chat(*args: str, text: str) -> tuple[str, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gleitzeit",
            "chat",
            "--server",
            server.url,
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        out, err = await asyncio.wait_for(proc.communicate(text.encode()), 60)
        assert proc.returncode == 0, err.decode()
        return out.decode(), err.decode()

    try:
        out, err = await chat("--model", "rec-1", text="hello\n\n")
        assert "answer1 in parts" in out
        session = err.strip().splitlines()[-1].split()[-1]
        out, err = await chat("--session", session, text="again\n\n")
        assert "user> hello" in out and "assistant> answer1 in parts" in out
        assert "answer2 in parts" in out
        assert [m["content"] for m in Recorder.seen[1]][:2] == ["hello", "answer1 in parts"]
    finally:
        await server.stop(grace=0)
