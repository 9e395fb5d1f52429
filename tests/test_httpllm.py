"""The HTTP LLM provider base: framing of streamed bodies, reading upstream errors,
base URLs, and a provider written on it in a few lines, against real sockets."""

from __future__ import annotations

from email.utils import formatdate
from typing import Any, ClassVar

import pytest
from aiohttp import web
from pydantic import BaseModel

import gleitzeit
from gleitzeit import ConfigError, method
from gleitzeit.httpllm import (
    HttpLLMProvider,
    HttpLLMSettings,
    UpstreamFailure,
    ndjson_lines,
    retry_after,
    sse_data,
)
from gleitzeit.llm import ChatParams
from gleitzeit.testing.fake_openai import FakeOpenAI, Scenario


async def _pieces(*pieces: bytes):
    for piece in pieces:
        yield piece


async def _all(gen) -> list[bytes]:
    return [item async for item in gen]


# -- framing -----------------------------------------------------------------------------


async def test_sse_events_are_assembled_across_reads_as_the_specification_says():
    events = await _all(
        sse_data(
            _pieces(
                b'data: {"a"',
                b":1}\n\n: a comment\nevent: delta\nid: 7\n",
                b"data: line one\r\ndata:line two\r\n\r\nretry: 10\n\n",
                b"data: [DONE]\n\n",
            )
        )
    )
    assert events == [b'{"a":1}', b"line one\nline two", b"[DONE]"]


async def test_a_last_sse_event_without_its_blank_line_is_still_dispatched():
    assert await _all(sse_data(_pieces(b"data: 1\n\ndata: [DONE]\n"))) == [b"1", b"[DONE]"]
    assert await _all(sse_data(_pieces(b"data: 1\r\n\r\nda", b"ta: 2"))) == [b"1", b"2"]
    assert await _all(sse_data(_pieces(b"data\ndata: x\n\n"))) == [b"\nx"]


async def test_ndjson_lines_skip_blank_lines_and_keep_a_last_line_without_newline():
    lines = await _all(ndjson_lines(_pieces(b'{"a":1}\n\n{"b"', b':2}\r\n{"c":3}')))
    assert lines == [b'{"a":1}', b'{"b":2}', b'{"c":3}']


# -- upstream errors -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message", "code"),
    [
        (
            b'{"error": {"message": "Bad key", "type": "invalid_request_error", "code": "invalid_api_key"}}',
            "Bad key",
            "invalid_api_key",
        ),
        (b'{"error": "model \'x\' not found"}', "model 'x' not found", None),
        (b'{"detail": "Not Found"}', "Not Found", None),
        (b'{"object": "error", "message": "no such model", "code": 404}', "no such model", "404"),
        (b"<html><body><h1>502 Bad Gateway</h1></body></html>", "502 Bad Gateway", None),
        (b"", "Service Unavailable", None),
    ],
)
def test_every_error_shape_upstreams_use_is_read(body, message, code):
    failure = UpstreamFailure.read(503, body, {})
    assert (failure.message, failure.code) == (message, code)


def test_a_404_says_model_missing_only_when_the_upstream_says_so():
    assert UpstreamFailure(404, "model 'mistral' not found").says_model_missing()
    assert UpstreamFailure(404, "The model `gpt-5` does not exist").says_model_missing()
    assert UpstreamFailure(404, "whatever", code="model_not_found").says_model_missing()
    assert not UpstreamFailure(404, "404 page not found").says_model_missing()


def test_retry_after_prefers_milliseconds_and_reads_http_dates():
    assert retry_after({"retry-after-ms": "1500", "retry-after": "2"}) == 1.5
    assert retry_after({"retry-after": "4"}) == 4.0
    later = retry_after({"retry-after": formatdate(2_000_000_000, usegmt=True)})
    assert later is not None and later > 0
    assert retry_after({"retry-after": "soon"}) is None
    assert retry_after({}) is None


# -- settings --------------------------------------------------------------------------------


class TinySettings(HttpLLMSettings):
    base_url_env: ClassVar[str | None] = "TINY_URL"
    api_key_env: ClassVar[str | None] = "TINY_KEY"


class Listed(BaseModel):
    data: list[dict[str, Any]]


class Answer(BaseModel):
    choices: list[dict[str, Any]]


class Tiny(HttpLLMProvider[TinySettings]):
    """A whole HTTP LLM provider: non-streamed chat against an OpenAI-style server."""

    name = "tiny"
    Settings = TinySettings
    upstream = "Tiny"
    wire_format = "OpenAI"

    async def discover_models(self) -> list[str]:
        return [m["id"] for m in self.decode(Listed, await self.get("/models")).data]

    @method("llm/chat", params=ChatParams)
    async def chat(self, p: ChatParams) -> dict[str, Any]:
        """Chat."""
        model = self.model_for(p.model)
        body = {"model": model, "messages": [m.model_dump() for m in p.messages]}
        reply = self.decode(Answer, await self.post("/chat/completions", body, model=model))
        text = reply.choices[0]["message"]["content"]
        return gleitzeit.llm_result(text, model=model, provider=self.name)


CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}


def test_base_urls_are_normalised_and_a_bad_one_names_where_it_came_from(monkeypatch):
    monkeypatch.delenv("TINY_URL", raising=False)
    assert Tiny({"base_url": "localhost:11434/"}).base_url == "http://localhost:11434"
    with pytest.raises(ConfigError) as info:
        Tiny({"base_url": "ftp://files.example"})
    assert "base_url" in str(info.value) and "not an http(s) URL" in str(info.value)
    monkeypatch.setenv("TINY_URL", "https://")
    with pytest.raises(ConfigError, match="TINY_URL"):
        Tiny()


class Recording(FakeOpenAI):
    """Records the client port of each request, to see connections reused."""

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self.ports: list[int] = []

    async def chat(self, request: web.Request) -> web.StreamResponse:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.ports.append(peer[1] if peer else -1)
        return await super().chat(request)


async def test_a_provider_on_the_base_keeps_one_session_alive_from_start_to_stop(monkeypatch):
    monkeypatch.setenv("TINY_KEY", "sk-test")
    async with Recording() as server:
        provider = Tiny({"base_url": server.url})
        with pytest.raises(gleitzeit.ProviderUnavailableError, match="not started"):
            await provider.invoke("llm/chat", CHAT)
        await provider.start()
        assert provider.models == ("gpt-4o-mini", "text-embedding-3-small")
        for _ in range(3):
            assert (await provider.invoke("llm/chat", CHAT))["response"] == server.scenario.reply
        assert len(set(server.ports)) == 1  # one kept-alive connection
        assert server.requests[-1]["headers"]["Authorization"] == "Bearer sk-test"
        session = provider._session
        await provider.stop()
        assert session is not None and session.closed


async def test_the_base_maps_statuses_and_failures_to_errors_naming_the_upstream():
    async with FakeOpenAI(api_key=None) as server:
        provider = Tiny({"base_url": server.url, "timeout": 0.3})
        await provider.start()
        try:
            server.scenario = Scenario(
                status=429, error={"error": "slow down"}, headers={"Retry-After": "3"}
            )
            with pytest.raises(gleitzeit.RateLimitError) as limited:
                await provider.invoke("llm/chat", CHAT)
            assert limited.value.retry_after == 3.0
            assert f"Tiny at {server.url} is rate limiting" in limited.value.message
            server.scenario = Scenario(first_byte_delay=1.0)
            with pytest.raises(gleitzeit.ProviderTimeoutError, match="did not answer within 0.3s"):
                await provider.invoke("llm/chat", CHAT)
            server.scenario = Scenario()
            with pytest.raises(gleitzeit.ProviderUnavailableError, match="no such endpoint"):
                await provider.get("/nowhere")
            health = await provider.health()
            assert health == {"status": "healthy", "detail": f"2 models at {server.url}"}
            server.scenario = Scenario(first_byte_delay=1.0)
            provider.cfg.health_timeout = 0.2
            health = await provider.health()
            assert health["status"] == "unhealthy"
            assert "did not answer within 0.2s" in health["detail"]
            assert "health_timeout" in health["detail"]
        finally:
            await provider.stop()
    provider = Tiny({"base_url": server.url})  # the server is gone now
    await provider.start()
    try:
        with pytest.raises(
            gleitzeit.ProviderUnavailableError, match=f"Cannot reach Tiny at {server.url}"
        ):
            await provider.invoke("llm/chat", CHAT)
    finally:
        await provider.stop()


class NotJson(FakeOpenAI):
    async def list_models(self, request: web.Request) -> web.StreamResponse:
        return web.Response(text="<html>a login page</html>", content_type="text/html")


async def test_a_reply_that_is_not_json_is_an_error_naming_the_upstream():
    async with NotJson(api_key=None) as server:
        provider = Tiny({"base_url": server.url})
        await provider.start()
        try:
            report = await provider.health()
        finally:
            await provider.stop()
    assert report["status"] == "unhealthy"
    assert report["detail"].startswith(f"Tiny at {server.url} sent invalid JSON")


def _doc_provider() -> Any:
    """The llamafile provider of docs/writing-plugins.md, as written there."""
    import re
    import sys
    import types
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "writing-plugins.md").read_text()
    (code,) = [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "Llamafile" in b]
    module = types.ModuleType("gleitzeit_llamafile_doc")
    sys.modules[module.__name__] = module
    exec(compile(code, "writing-plugins.md", "exec"), module.__dict__)
    return module.LlamafileProvider


async def test_the_http_llm_plugin_of_the_tutorial_chats_and_streams(monkeypatch):
    from gleitzeit.testing import check_result_shape, check_stream

    monkeypatch.delenv("LLAMAFILE_URL", raising=False)
    provider_class = _doc_provider()
    assert provider_class().base_url == "http://localhost:8080/v1"
    async with FakeOpenAI(api_key=None, models=("LLaMA_CPP",)) as server:
        monkeypatch.setenv("LLAMAFILE_URL", server.url)
        provider = provider_class()
        await provider.start()
        try:
            assert provider.models == ("LLaMA_CPP",)
            params = {"messages": [{"role": "user", "content": "Hi"}]}
            result = await provider.invoke("llm/chat", params)
            check_result_shape("llm", "llm/chat", result)
            assert result["response"] == "Hello from the fake server"
            chunks = [c async for c in provider.stream("llm/chat", params)]
            check_stream("llm/chat", chunks)
            assert "".join(c["token"] for c in chunks) == "Hello from the fake server"
            with pytest.raises(gleitzeit.ModelNotFoundError, match="llamafile at"):
                await provider.invoke("llm/chat", {**params, "model": "nope"})
        finally:
            await provider.stop()


async def test_a_finished_stream_keeps_its_connection_and_an_abandoned_one_closes_it():
    from gleitzeit_openai.provider import OpenAIProvider
    from gleitzeit_openai.settings import OpenAISettings

    async with Recording() as server:
        provider = OpenAIProvider(OpenAISettings(api_key="sk-test", base_url=server.url))
        await provider.start()
        try:
            server.scenario = Scenario(reply="a b c d e f")
            for _ in range(2):
                assert len([c async for c in provider.stream("llm/chat", CHAT)]) == 7
            assert len(set(server.ports)) == 1  # read to the end: kept alive, reused
            server.scenario = Scenario(reply="a b c d e f", delay=0.2)
            stream = provider.stream("llm/chat", CHAT)
            assert (await stream.__anext__())["token"] == "a "
            await stream.aclose()  # left early: the request ends, its connection closes
            server.scenario = Scenario(reply="a b c d e f")
            assert (await provider.invoke("llm/chat", CHAT))["response"] == "a b c d e f"
            assert len(set(server.ports)) == 2
        finally:
            await provider.stop()


def test_the_environments_proxy_is_looked_up_once_and_no_proxy_is_honoured(monkeypatch):
    from gleitzeit.httpllm.provider import _env_proxy

    for name in ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
    assert _env_proxy("http://127.0.0.1:8080/v1") is None
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.internal:3128")
    assert _env_proxy("http://127.0.0.1:8080/v1") == "http://proxy.internal:3128"
    assert _env_proxy("https://api.openai.com/v1") is None  # no HTTPS_PROXY
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    assert _env_proxy("http://127.0.0.1:8080/v1") is None


# -- the HTTP/1.1 client of answers read whole ---------------------------------------------


class RawServer:
    """A TCP server on 127.0.0.1 that answers each request with the next scripted bytes
    (None: close the connection without answering), recording the connections' ports."""

    def __init__(self, *answers: bytes | None) -> None:
        self.answers = list(answers)
        self.requests: list[bytes] = []
        self.ports: list[int] = []
        self.server: Any = None

    async def __aenter__(self) -> RawServer:
        import asyncio

        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/v1"

    async def _serve(self, reader: Any, writer: Any) -> None:
        self.ports.append(writer.get_extra_info("peername")[1])
        try:
            while self.answers:
                head = await reader.readuntil(b"\r\n\r\n")
                length = [
                    int(line.split(b":")[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ]
                body = await reader.readexactly(length[0]) if length else b""
                self.requests.append(head + body)
                answer = self.answers.pop(0)
                if answer is None:
                    break
                writer.write(answer)
                await writer.drain()
        except Exception:
            pass
        writer.close()


async def test_the_http1_client_reads_length_chunked_and_closing_bodies_and_reuses_connections():
    import gzip

    from gleitzeit.httpllm.http1 import ConnectionPool

    zipped = gzip.compress(b'{"z":1}')
    answers = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n" + b'{"a":1}',
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'3\r\n{"b\r\n4;ext=1\r\n":2}\r\n0\r\nX-Trailer: t\r\n\r\n',
        b"HTTP/1.1 429 Too Many\r\nRetry-After: 3\r\nretry-after: 4\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: "
        + str(len(zipped)).encode()
        + b"\r\n\r\n"
        + zipped,
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b'{"c":3}',
    ]
    async with RawServer(*answers) as server:
        pool = ConnectionPool(
            server.url, {"Authorization": "Bearer k"}, connect_timeout=1, read_timeout=1
        )
        try:
            first = await pool.request("POST", "/chat", b'{"q":1}')
            assert (first.status, first.body) == (200, b'{"a":1}')
            assert (await pool.request("GET", "/models")).body == b'{"b":2}'
            limited = await pool.request("GET", "/models")
            assert limited.status == 429 and limited.headers["retry-after"] == "3, 4"
            assert (await pool.request("GET", "/models")).body == b'{"z":1}'
            assert (await pool.request("GET", "/models")).body == b'{"c":3}'
        finally:
            pool.close()
    assert len(set(server.ports)) == 1  # one kept-alive connection for all five
    assert server.requests[0].startswith(b"POST /v1/chat HTTP/1.1\r\n")
    assert b"\r\nAuthorization: Bearer k\r\n" in server.requests[0]
    assert server.requests[0].endswith(b'Content-Length: 7\r\n\r\n{"q":1}')


async def test_the_http1_client_retries_once_when_a_kept_connection_was_closed_unread():
    from gleitzeit.httpllm.http1 import ConnectionPool, ServerDisconnected

    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
    async with RawServer(ok, None, ok, None, None) as server:
        pool = ConnectionPool(server.url, {}, connect_timeout=1, read_timeout=1)
        try:
            assert (await pool.request("GET", "/a")).body == b"{}"
            # The server drops the kept connection unanswered: the request goes again
            # on a new connection, which answers.
            assert (await pool.request("GET", "/a")).body == b"{}"
            assert len(set(server.ports)) == 2
            # Dropped again, and then on the new connection too: an error, not a loop.
            with pytest.raises(ServerDisconnected):
                await pool.request("GET", "/a")
            assert len(set(server.ports)) == 3
        finally:
            pool.close()


async def test_the_http1_client_times_out_between_bytes_and_in_total():
    import asyncio

    from gleitzeit.httpllm.http1 import ConnectFailed, ConnectionPool, ReadTimeout

    async def slow(reader: Any, writer: Any) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n{")
        for piece in (b'"', b"}", b"\n"):
            await asyncio.sleep(0.15)
            writer.write(piece)
        await asyncio.sleep(1)
        writer.close()

    server = await asyncio.start_server(slow, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        pool = ConnectionPool(url, {}, connect_timeout=1, read_timeout=0.4)
        assert (await pool.request("GET", "/")).body == b'{"}\n'  # each byte in time
        pool = ConnectionPool(url, {}, connect_timeout=1, read_timeout=0.1)
        with pytest.raises(ReadTimeout):
            await pool.request("GET", "/")
        pool = ConnectionPool(url, {}, connect_timeout=1, read_timeout=0.4)
        with pytest.raises(ReadTimeout):
            await pool.request("GET", "/", timeout=0.25)
    finally:
        server.close()
        await server.wait_closed()
    with pytest.raises(ConnectFailed) as refused:
        await ConnectionPool(url, {}, connect_timeout=1, read_timeout=1).request("GET", "/")
    assert isinstance(refused.value.os_error, ConnectionRefusedError)


def test_only_plain_http_upstreams_without_a_proxy_take_the_http1_client():
    from gleitzeit.httpllm.http1 import ConnectionPool

    assert ConnectionPool.usable("http://127.0.0.1:11434", None)
    assert not ConnectionPool.usable("https://api.openai.com/v1", None)
    assert not ConnectionPool.usable("http://127.0.0.1:11434", "http://proxy:3128")


def test_base_urls_with_credentials_stay_with_aiohttp():
    from gleitzeit.httpllm.http1 import ConnectionPool

    assert not ConnectionPool.usable("http://alice:s3cret@127.0.0.1:11434", None)
    with pytest.raises(ValueError):
        ConnectionPool("http://alice@127.0.0.1:11434", {}, connect_timeout=1, read_timeout=1)


async def test_the_http1_client_never_sends_a_post_twice():
    from gleitzeit.httpllm import http1

    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
    async with RawServer(ok, None, ok) as server:
        pool = http1.ConnectionPool(server.url, {}, connect_timeout=1, read_timeout=5)
        try:
            await pool.request("GET", "/models")
            # Read, then the connection closed unanswered (a worker died): the upstream
            # may have acted on it, so it is an error, not a second POST.
            with pytest.raises(http1.ServerDisconnected):
                await pool.request("POST", "/chat", b'{"q":1}')
        finally:
            pool.close()
    assert [r.split(b" ")[0] for r in server.requests] == [b"GET", b"POST"]


async def test_a_post_takes_only_a_connection_idle_for_a_short_while(monkeypatch):
    from gleitzeit.httpllm import http1

    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
    async with RawServer(ok, ok, ok, ok) as server:
        pool = http1.ConnectionPool(server.url, {}, connect_timeout=1, read_timeout=5)
        try:
            await pool.request("POST", "/chat", b"{}")
            await pool.request("POST", "/chat", b"{}")
            assert len(set(server.ports)) == 1
            monkeypatch.setattr(http1, "FRESH_SECONDS", -1.0)  # every idle one too old
            await pool.request("POST", "/chat", b"{}")
            assert len(set(server.ports)) == 2
            await pool.request("GET", "/models")  # a GET may take it still
            assert len(set(server.ports)) == 2
        finally:
            pool.close()


_CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0_2\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\n{}",
        _CHUNKED + b"3\r\nabcXY1\r\nz\r\n0\r\n\r\n",  # data longer than its size
        _CHUNKED + b"0x3\r\nabc\r\n0\r\n\r\n",
        _CHUNKED + b"-1\r\nabc\r\n0\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 \xb200 OK\r\nContent-Length: 0\r\n\r\n",  # '\xb2'.isdigit()
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\njunk line\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nConnection: close\r\n\r\nnot gzip",
        b"HTTP/1.1 200 OK\r\nContent-Encoding: br\r\nContent-Length: 2\r\n\r\n{}",
        _CHUNKED + b"1" * 2000,  # a chunk-size line without end
        _CHUNKED + b"0\r\n" + b"X-T: t\r\n" * 10000,  # trailers beyond 64 KiB
    ],
)
async def test_the_http1_client_rejects_malformed_or_oversized_answers(answer):
    from gleitzeit.httpllm.http1 import BadResponse, ConnectionPool

    async with RawServer(answer) as server:
        # The server closes after its answer: a misread framing, or a parse error
        # escaping the protocol, ends in a ServerDisconnected, not a BadResponse.
        pool = ConnectionPool(server.url, {}, connect_timeout=1, read_timeout=5)
        try:
            with pytest.raises(BadResponse):
                await pool.request("GET", "/models")
        finally:
            pool.close()


async def test_the_http1_client_bounds_the_body_however_it_is_framed(monkeypatch):
    import gzip

    from gleitzeit.httpllm import http1

    monkeypatch.setattr(http1, "MAX_BODY", 100)
    zipped = gzip.compress(b"x" * 200)
    for answer in (
        b"HTTP/1.1 200 OK\r\nContent-Length: 101\r\n\r\n",
        _CHUNKED + b"40\r\n" + b"x" * 64 + b"\r\n40\r\n",
        b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n" + b"x" * 101,
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: "
        + str(len(zipped)).encode()
        + b"\r\n\r\n"
        + zipped,
    ):
        async with RawServer(answer) as server:
            pool = http1.ConnectionPool(server.url, {}, connect_timeout=1, read_timeout=5)
            try:
                with pytest.raises(http1.BadResponse):
                    await pool.request("GET", "/models")
            finally:
                pool.close()


async def test_the_http1_client_reads_what_the_rfc_allows_and_answers_without_a_body_at_once():
    from gleitzeit.httpllm.http1 import ConnectionPool

    answers = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n",  # to HEAD: no body
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 7\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\nContent-Length: 7\r\n\r\n",
        b"HTTP/1.1 200 OK\nContent-Length: 2\nX-Note: first\n  second\n\n{}",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n\r\n{}",
        b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n2\n{}\n0\n\n",
        # Both framings: read as chunked, the connection not kept.
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n"
        b"2\r\n{}\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}",
    ]
    async with RawServer(*answers) as server:
        # Each answer in time: a wait for a body that does not come would fire this.
        pool = ConnectionPool(server.url, {}, connect_timeout=1, read_timeout=30)
        try:
            assert (await pool.request("HEAD", "/models")).body == b""
            assert (await pool.request("GET", "/models")).status == 304
            assert (await pool.request("GET", "/models")).body == b""
            folded = await pool.request("GET", "/models")
            assert folded.body == b"{}" and folded.headers["x-note"] == "first second"
            assert (await pool.request("GET", "/models")).body == b"{}"
            assert (await pool.request("GET", "/models")).body == b""
            assert (await pool.request("GET", "/models")).body == b"{}"
            assert len(set(server.ports)) == 1  # all of them on one kept connection
            assert (await pool.request("GET", "/models")).body == b"{}"
            assert (await pool.request("GET", "/models")).body == b"{}"
            assert len(set(server.ports)) == 2
        finally:
            pool.close()
    assert b"\r\nAccept-Encoding: identity\r\n" in server.requests[0]


async def test_idle_connections_expire_from_the_longest_idle_and_at_most_so_many_open(
    monkeypatch,
):
    import asyncio

    from gleitzeit.httpllm import http1

    monkeypatch.setattr(http1, "MAX_CONNECTIONS", 3)
    held: list[asyncio.Event] = []
    peak = open_now = received = 0

    async def serve(reader: Any, writer: Any) -> None:
        nonlocal peak, open_now, received
        open_now += 1
        peak = max(peak, open_now)
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                received += 1
                go = asyncio.Event()
                held.append(go)
                if len(held) == 3 or received == 10:  # answered in bursts of three
                    for each in held:
                        each.set()
                    held.clear()
                await go.wait()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        except Exception:
            pass
        open_now -= 1
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    pool = http1.ConnectionPool(url, {}, connect_timeout=1, read_timeout=5)
    try:
        await asyncio.gather(*(pool.request("GET", "/") for _ in range(10)))
        assert peak == 3 and len(pool._idle) == 3  # a burst, three at a time
        kept = list(pool._idle)
        monkeypatch.setattr(http1, "KEEPALIVE_SECONDS", -1.0)  # every idle one too old
        held.clear()
        received = 9  # the next request is answered at once
        await pool.request("GET", "/")
        assert all(conn.closed for conn in kept) and len(pool._idle) == 1
    finally:
        pool.close()
        server.close()
        await server.wait_closed()


async def test_the_request_line_is_escaped_and_checked():
    from gleitzeit.httpllm.http1 import ConnectionPool

    ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"
    async with RawServer(ok, ok) as server:
        for base in (server.url + "/my models", server.url + "/modèle"):
            pool = ConnectionPool(base, {}, connect_timeout=1, read_timeout=5)
            try:
                await pool.request("GET", "/models")
                with pytest.raises(ValueError):
                    await pool.request("GET", "/models HTTP/1.1\r\nX-Injected: yes\r\nX-Pad:")
                with pytest.raises(ValueError):
                    await pool.request("GET /x", "/models")
            finally:
                pool.close()
    lines = [request.split(b"\r\n")[0] for request in server.requests]
    assert lines == [
        b"GET /v1/my%20models/models HTTP/1.1",
        b"GET /v1/mod%C3%A8le/models HTTP/1.1",
    ]
    international = ConnectionPool(
        "http://bücher.example:8080", {}, connect_timeout=1, read_timeout=1
    )
    assert international._fixed.startswith(b"Host: xn--bcher-kva.example:8080\r\n")


async def test_a_request_cancelled_while_waiting_for_a_connection_gives_up_its_turn(monkeypatch):
    import asyncio

    from gleitzeit.httpllm import http1

    monkeypatch.setattr(http1, "MAX_CONNECTIONS", 1)
    arrived, release = asyncio.Event(), asyncio.Event()

    async def serve(reader: Any, writer: Any) -> None:
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                arrived.set()
                await release.wait()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        except Exception:
            pass
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    pool = http1.ConnectionPool(url, {}, connect_timeout=1, read_timeout=5)
    try:
        first = asyncio.create_task(pool.request("GET", "/"))
        waiting = asyncio.create_task(pool.request("GET", "/"))
        await arrived.wait()
        assert len(pool._waiting) == 1  # the one connection is in use
        waiting.cancel()
        release.set()
        assert (await first).body == b"{}"
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert (await pool.request("GET", "/")).body == b"{}"  # the slot came back
        assert pool._busy == 0 and not pool._waiting
    finally:
        pool.close()
        server.close()
        await server.wait_closed()
