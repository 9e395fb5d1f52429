"""The ollama plugin against a local server speaking Ollama's wire format (NDJSON)."""

from __future__ import annotations

import pytest
from gleitzeit_ollama.provider import OllamaProvider
from gleitzeit_ollama.settings import OllamaSettings

import gleitzeit
from gleitzeit.config import parse_config
from gleitzeit.host import Host
from gleitzeit.plugins import Plugins
from gleitzeit.testing.fake_ollama import FakeOllama, Scenario

CHAT = {"model": "llama3.2", "messages": [{"role": "user", "content": "Hello"}]}


@pytest.fixture
async def server():
    async with FakeOllama() as srv:
        yield srv


@pytest.fixture
async def provider(server):
    p = OllamaProvider(OllamaSettings(base_url=server.url, timeout=0.5, keep_alive="1m"))
    await p.start()
    yield p
    await p.stop()


async def test_chat_returns_the_standard_llm_result(server, provider):
    server.scenario = Scenario(reply="Hi there, friend")
    result = await provider.invoke("llm/chat", {**CHAT, "temperature": 0.1, "max_tokens": 20})
    assert result == {
        "response": "Hi there, friend",
        "model": "llama3.2:latest",
        "provider": "ollama",
        "finish_reason": "stop",
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    }
    sent = server.requests[-1]["json"]
    assert sent["stream"] is False
    assert sent["options"] == {"temperature": 0.1, "num_predict": 20}
    assert sent["keep_alive"] == "1m"


async def test_stream_yields_tokens_then_one_final_chunk(server, provider):
    server.scenario = Scenario(reply="one two three")
    chunks = [c async for c in provider.stream("llm/chat", CHAT)]
    assert [c["token"] for c in chunks] == ["one ", "two ", "three", ""]
    assert [c["done"] for c in chunks] == [False, False, False, True]
    assert chunks[-1]["finish_reason"] == "stop"
    assert chunks[-1]["usage"]["completion_tokens"] == 3


async def test_generate_and_its_stream(server, provider):
    server.scenario = Scenario(reply="a short poem")
    result = await provider.invoke(
        "llm/generate", {"model": "llama3.2", "prompt": "Poem", "system": "Rhymes"}
    )
    assert result["response"] == "a short poem"
    assert server.requests[-1]["path"] == "/api/generate"
    assert server.requests[-1]["json"]["system"] == "Rhymes"
    text = "".join(
        [
            c["token"]
            async for c in provider.stream("llm/generate", {"model": "llama3.2", "prompt": "Poem"})
        ]
    )
    assert text == "a short poem"


async def test_embeddings_single_and_list(server, provider):
    one = await provider.invoke("llm/embed", {"model": "nomic-embed-text", "input": "abc"})
    assert one["dimensions"] == 8 and len(one["embedding"]) == 8 and one["provider"] == "ollama"
    many = await provider.invoke("llm/embed", {"model": "nomic-embed-text", "input": ["a", "b"]})
    assert len(many["embeddings"]) == 2


async def test_models_are_discovered_from_api_tags(server, provider):
    assert provider.models == (
        "llama3.2",
        "llama3.2:latest",
        "nomic-embed-text",
        "nomic-embed-text:latest",
    )
    server.models.append("qwen2.5:7b")
    assert "qwen2.5:7b" in await provider.discover_models()


async def test_images_pass_through_to_chat(server, provider):
    await provider.invoke(
        "llm/chat",
        {
            "model": "llama3.2",
            "messages": [{"role": "user", "content": "What?", "images": ["aGVsbG8="]}],
        },
    )
    assert server.requests[-1]["json"]["messages"] == [
        {"role": "user", "content": "What?", "images": ["aGVsbG8="]}
    ]


async def test_health_probes_api_version(server, provider):
    health = await provider.health()
    assert health == {"status": "healthy", "detail": f"Ollama 0.5.7 at {server.url}"}
    assert server.requests[-1]["path"] == "/api/version"


async def test_401_is_an_authentication_error(server, provider):
    server.scenario = Scenario(status=401, error={"error": "unauthorized"})
    with pytest.raises(gleitzeit.AuthenticationError, match="401"):
        await provider.invoke("llm/chat", CHAT)


async def test_404_names_the_available_models(server, provider):
    with pytest.raises(gleitzeit.ModelNotFoundError) as info:
        await provider.invoke("llm/chat", {**CHAT, "model": "mistral"})
    assert "model 'mistral' not found" in info.value.message
    assert "ollama pull mistral" in info.value.hint
    assert "llama3.2, nomic-embed-text" in info.value.hint


async def test_429_carries_retry_after(server, provider):
    server.scenario = Scenario(
        status=429, error={"error": "too many requests"}, headers={"Retry-After": "4"}
    )
    with pytest.raises(gleitzeit.RateLimitError) as info:
        await provider.invoke("llm/chat", CHAT)
    assert info.value.retry_after == 4.0 and info.value.retryable


async def test_500_is_unavailable(server, provider):
    server.scenario = Scenario(status=500, error={"error": "llama runner process has terminated"})
    with pytest.raises(gleitzeit.ProviderUnavailableError, match="llama runner"):
        await provider.invoke("llm/chat", CHAT)


async def test_error_line_inside_the_stream_ends_it_with_an_error(server, provider):
    server.scenario = Scenario(reply="a b c d", error_after=2)
    received = []
    with pytest.raises(
        gleitzeit.StreamError, match="an error was encountered while running the model"
    ):
        async for chunk in provider.stream("llm/chat", CHAT):
            received.append(chunk)
    assert [c["token"] for c in received] == ["a ", "b "]


async def test_connection_dropped_mid_stream_is_an_error_not_a_truncation(server, provider):
    server.scenario = Scenario(reply="a b c d e", drop_after=3)
    received = []
    with pytest.raises(gleitzeit.StreamError):
        async for chunk in provider.stream("llm/chat", CHAT):
            received.append(chunk)
    assert len(received) == 3 and not any(c["done"] for c in received)


async def test_slow_first_byte_is_a_timeout(server, provider):
    server.scenario = Scenario(first_byte_delay=2.0)
    with pytest.raises(gleitzeit.ProviderTimeoutError, match="within 0.5s"):
        await provider.invoke("llm/chat", CHAT)


async def test_unreachable_server(monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:9")
    p = OllamaProvider()
    assert p.base_url == "http://127.0.0.1:9"
    await p.start()
    assert (await p.health())["status"] == "unhealthy"
    with pytest.raises(gleitzeit.ProviderUnavailableError, match="Cannot reach Ollama"):
        await p.invoke("llm/chat", CHAT)
    await p.stop()


async def test_through_the_host_swappable_with_openai_shapes(server):
    config = parse_config(f"plugins:\n  ollama:\n    base_url: {server.url}\n")
    async with Host(config, plugins=Plugins.load(config)) as host:
        out = await host.invoke("llm/chat", CHAT)  # routed by model to ollama
        assert set(out) == {"response", "model", "provider", "finish_reason", "usage"}
        assert out["provider"] == "ollama"


def test_cli_models_command_and_stream(run_cli):
    from gleitzeit.testing.fake_server import ThreadedServer

    with ThreadedServer(FakeOllama()) as srv:
        env = {"OLLAMA_HOST": srv.url}
        listed = run_cli("ollama", "models", env=env)
        assert listed.code == 0, listed.err
        assert "llama3.2:latest" in listed.out and "Q4_K_M" in listed.out
        as_json = run_cli("ollama", "models", "--json", env=env).json()
        assert as_json[0]["details"]["family"] == "llama"
        streamed = run_cli(
            "providers",
            "invoke",
            "ollama",
            "llm/chat",
            "--stream",
            "--args",
            '{"model": "llama3.2", "messages": [{"role": "user", "content": "Hi"}]}',
            env=env,
        )
        assert streamed.code == 0, streamed.err
        assert streamed.out == "Hello from the fake server\n"
        health = run_cli("providers", "health", "ollama", env=env)
        assert health.code == 0 and "healthy" in health.out


class WithoutChat(FakeOllama):
    """An Ollama-compatible proxy that lists models but has no /api/chat."""

    async def chat(self, request):
        from aiohttp import web

        await request.read()
        return web.Response(status=404, text="404 page not found")  # Go's default mux


class Garbled(FakeOllama):
    """A server whose stream lines are JSON but not Ollama's chunk shape."""

    async def chat(self, request):
        from aiohttp import web

        await request.read()
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        await response.write(b'{"model": "llama3.2", "message": {"role": 5}, "done": "maybe"}\n')
        await response.write_eof()
        return response


class ShortEmbed(FakeOllama):
    async def embed(self, request):
        import json

        from aiohttp import web

        response = await super().embed(request)
        body = json.loads(response.body)
        body["embeddings"] = body["embeddings"][:-1]
        return web.json_response(body)


async def _started(server):
    p = OllamaProvider(OllamaSettings(base_url=server.url, timeout=2))
    await p.start()
    return p


async def test_a_404_for_a_missing_path_is_not_reported_as_a_missing_model():
    async with WithoutChat() as srv:
        p = await _started(srv)
        try:
            with pytest.raises(
                gleitzeit.ProviderUnavailableError, match="no such endpoint"
            ) as info:
                await p.invoke("llm/chat", {"model": "llama3.2", "messages": [{"content": "hi"}]})
            assert "ollama pull" not in str(info.value)
        finally:
            await p.stop()


async def test_a_stream_not_in_ollamas_format_is_a_stream_error_naming_the_upstream():
    async with Garbled() as srv:
        p = await _started(srv)
        try:
            with pytest.raises(gleitzeit.StreamError, match="not in Ollama's format"):
                async for _ in p.stream(
                    "llm/chat", {"model": "llama3.2", "messages": [{"content": "hi"}]}
                ):
                    pass
        finally:
            await p.stop()


async def test_an_embedding_count_that_does_not_match_the_inputs_is_an_error():
    async with ShortEmbed() as srv:
        p = await _started(srv)
        try:
            with pytest.raises(gleitzeit.ProviderError, match="returned 1 embeddings for 2"):
                await p.invoke("llm/embed", {"model": "llama3.2", "input": ["a", "b"]})
        finally:
            await p.stop()


class NumberContent(FakeOllama):
    """A server whose chat answer has a message content that is not a string."""

    async def chat(self, request):
        from aiohttp import web

        await request.read()
        return web.json_response(
            {
                "model": "llama3.2:latest",
                "message": {"role": "assistant", "content": 42},
                "done": True,
            }
        )


async def test_a_chat_reply_whose_content_is_not_a_string_is_an_error_naming_the_upstream():
    async with NumberContent() as srv:
        p = await _started(srv)
        try:
            with pytest.raises(gleitzeit.ProviderError) as info:
                await p.invoke("llm/chat", {"model": "llama3.2", "messages": [{"content": "hi"}]})
        finally:
            await p.stop()
    assert f"Ollama at {srv.url}" in info.value.message
    assert "message.content" in info.value.message
