"""The openai plugin against a local server speaking OpenAI's wire format (SSE, [DONE])."""

from __future__ import annotations

import base64

import pytest
from gleitzeit_openai.provider import OpenAIProvider
from gleitzeit_openai.settings import OpenAISettings

import gleitzeit
from gleitzeit.config import parse_config
from gleitzeit.host import Host
from gleitzeit.plugins import Plugins
from gleitzeit.testing.fake_openai import FakeOpenAI, Scenario, error_body

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}


@pytest.fixture
async def server():
    async with FakeOpenAI() as srv:
        yield srv


@pytest.fixture
async def provider(server):
    p = OpenAIProvider(OpenAISettings(api_key="sk-test", base_url=server.url, timeout=0.5))
    await p.start()
    yield p
    await p.stop()


async def test_chat_returns_the_standard_llm_result(server, provider):
    server.scenario = Scenario(reply="Hi there, friend")
    result = await provider.invoke("llm/chat", CHAT)
    assert result == {
        "response": "Hi there, friend",
        "model": "gpt-4o-mini",
        "provider": "openai",
        "finish_reason": "stop",
        "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
    }
    sent = server.requests[-1]
    assert sent["path"] == "/v1/chat/completions"
    assert sent["headers"]["Authorization"] == "Bearer sk-test"
    assert sent["json"]["stream"] is False


async def test_stream_yields_tokens_then_one_final_chunk_with_usage(server, provider):
    server.scenario = Scenario(reply="one two three four")
    chunks = [c async for c in provider.stream("llm/chat", CHAT)]
    assert [c["token"] for c in chunks] == ["one ", "two ", "three ", "four", ""]
    assert [c["done"] for c in chunks] == [False] * 4 + [True]
    assert chunks[-1]["finish_reason"] == "stop"
    assert chunks[-1]["usage"] == {"prompt_tokens": 7, "completion_tokens": 4, "total_tokens": 11}
    assert server.requests[-1]["json"]["stream_options"] == {"include_usage": True}


async def test_generate_maps_onto_chat_with_system_prompt(server, provider):
    result = await provider.invoke(
        "llm/generate",
        {"model": "gpt-4o-mini", "prompt": "Write", "system": "Be brief", "temperature": 0.2},
    )
    assert result["response"] == "Hello from the fake server"
    sent = server.requests[-1]["json"]
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief"},
        {"role": "user", "content": "Write"},
    ]
    assert sent["temperature"] == 0.2


async def test_embeddings_single_and_list(server, provider):
    one = await provider.invoke("llm/embed", {"input": "abc"})
    assert one["model"] == "text-embedding-3-small" and one["dimensions"] == 8
    assert len(one["embedding"]) == 8
    many = await provider.invoke(
        "llm/embed", {"model": "text-embedding-3-small", "input": ["a", "b"]}
    )
    assert len(many["embeddings"]) == 2 and "embedding" not in many


async def test_models_are_discovered_from_v1_models(server, provider):
    assert provider.models == ("gpt-4o-mini", "text-embedding-3-small")
    assert (await provider.health())["status"] == "healthy"


async def test_fixed_model_list_for_servers_without_v1_models():
    async with FakeOpenAI(models_endpoint=False, api_key=None, models=("local-llm",)) as srv:
        p = OpenAIProvider(
            OpenAISettings(base_url=srv.url, models=["local-llm"], require_api_key=False)
        )
        await p.start()
        assert p.models == ("local-llm",)
        result = await p.invoke("llm/chat", {**CHAT, "model": "local-llm"})
        assert result["model"] == "local-llm"
        assert (await p.health())["status"] == "healthy"
        await p.stop()


async def test_images_become_image_content_parts(server, provider):
    png = base64.b64encode(b"\x89PNG\r\n\x1a\nfake").decode()
    await provider.invoke(
        "llm/chat",
        {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "What is it?", "images": [png]}],
        },
    )
    (message,) = server.requests[-1]["json"]["messages"]
    assert message["content"] == [
        {"type": "text", "text": "What is it?"},
        {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{png}"}},
    ]


async def test_401_is_an_authentication_error(server):
    p = OpenAIProvider(
        OpenAISettings(api_key="sk-wrong", base_url=server.url, models=["gpt-4o-mini"])
    )
    await p.start()
    with pytest.raises(gleitzeit.AuthenticationError, match="rejected the API key") as info:
        await p.invoke("llm/chat", CHAT)
    assert info.value.retryable is False
    await p.stop()


async def test_401_at_discovery_fails_the_start(server):
    p = OpenAIProvider(OpenAISettings(api_key="sk-wrong", base_url=server.url))
    with pytest.raises(gleitzeit.AuthenticationError, match="401"):
        await p.start()


async def test_404_names_the_available_models(server, provider):
    with pytest.raises(gleitzeit.ModelNotFoundError) as info:
        await provider.invoke("llm/chat", {**CHAT, "model": "gpt-5"})
    assert "gpt-5" in info.value.message
    assert "gpt-4o-mini, text-embedding-3-small" in info.value.hint


async def test_429_carries_retry_after_and_is_retryable(server, provider):
    server.scenario = Scenario(
        status=429,
        error=error_body("Rate limit reached for requests", "requests", "rate_limit_exceeded"),
        headers={"retry-after": "2", "retry-after-ms": "1500"},
    )
    with pytest.raises(gleitzeit.RateLimitError) as info:
        await provider.invoke("llm/chat", CHAT)
    assert info.value.retry_after == 1.5  # retry-after-ms is the more precise one
    assert info.value.retryable
    assert (
        len([r for r in server.requests if r["path"].endswith("completions")]) == 1
    )  # no SDK retries


async def test_5xx_is_unavailable_and_sent_once(server, provider):
    server.scenario = Scenario(status=503)
    before = len(server.requests)
    with pytest.raises(gleitzeit.ProviderUnavailableError, match="503"):
        await provider.invoke("llm/chat", CHAT)
    assert len(server.requests) == before + 1


async def test_error_inside_the_stream_ends_it_with_a_stream_error(server, provider):
    server.scenario = Scenario(reply="a b c d e", error_after=2)
    received = []
    with pytest.raises(gleitzeit.StreamError, match="error inside the stream"):
        async for chunk in provider.stream("llm/chat", CHAT):
            received.append(chunk)
    assert [c["token"] for c in received] == ["a ", "b "]
    assert not any(c["done"] for c in received)


async def test_connection_dropped_mid_stream_is_an_error_not_a_truncation(server, provider):
    server.scenario = Scenario(reply="a b c d e", drop_after=3)
    received = []
    with pytest.raises(gleitzeit.StreamError, match="broke off"):
        async for chunk in provider.stream("llm/chat", CHAT):
            received.append(chunk)
    assert len(received) == 3 and not any(c["done"] for c in received)


async def test_slow_first_byte_is_a_timeout(server, provider):
    server.scenario = Scenario(first_byte_delay=2.0)
    with pytest.raises(gleitzeit.ProviderTimeoutError, match="within 0.5s"):
        await provider.invoke("llm/chat", CHAT)


async def test_stall_mid_stream_is_a_timeout(server, provider):
    server.scenario = Scenario(reply="a b c", delay=2.0)
    with pytest.raises(gleitzeit.ProviderTimeoutError):
        async for _ in provider.stream("llm/chat", CHAT):
            pass


async def test_unreachable_server_is_unavailable():
    p = OpenAIProvider(OpenAISettings(api_key="k", base_url="http://127.0.0.1:9/v1", timeout=1))
    await p.start()  # starts; the server may come up later
    health = await p.health()
    assert health["status"] == "unhealthy" and "Cannot reach" in health["detail"]
    with pytest.raises(gleitzeit.ProviderUnavailableError):
        await p.invoke("llm/chat", CHAT)
    await p.stop()


async def test_missing_key_fails_only_this_provider(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    config = parse_config("plugins:\n  openai:\n    api_key: ${OPENAI_API_KEY}\n", env={})
    async with Host(config, plugins=Plugins.load(config)) as host:
        (inst,) = host.registry.instances("openai")
        assert inst.health.status == "unhealthy"
        (checked,) = await host.check_health("openai")
        assert "OPENAI_API_KEY" in checked.health.detail
        assert "plugins.openai" in checked.health.detail
        assert (await host.invoke("calc/add", {"a": 1, "b": 1}))["result"] == 2
        with pytest.raises(gleitzeit.RoutingError, match="OPENAI_API_KEY"):
            await host.invoke("llm/chat", CHAT, provider="openai")


async def test_through_the_host_with_config(server):
    config = parse_config(
        f"plugins:\n  openai:\n    api_key: sk-test\n    base_url: {server.url}\n"
    )
    async with Host(config, plugins=Plugins.load(config)) as host:
        assert "gpt-4o-mini" in host.registry.models()
        out = await host.invoke("llm/chat", CHAT)  # routed by model: only openai serves it
        assert out["provider"] == "openai"
        text = "".join([c["token"] async for c in host.stream("llm/chat", CHAT)])
        assert text == "Hello from the fake server"


def test_cli_invoke_against_the_fake_server(run_cli, server_url_env):
    env, url = server_url_env
    result = run_cli(
        "providers",
        "invoke",
        "openai",
        "llm/chat",
        "--json",
        "--args",
        '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}',
        env=env,
    )
    assert result.code == 0, result.err
    assert result.json()["response"] == "Hello from the fake server"
    streamed = run_cli(
        "providers",
        "invoke",
        "openai",
        "llm/chat",
        "--stream",
        "--args",
        '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "Hello"}]}',
        env=env,
    )
    assert streamed.out == "Hello from the fake server\n"
    listed = run_cli("providers", "list", "--json", env=env).json()
    openai = next(p for p in listed if p["name"] == "openai")
    assert openai["models"] == ["gpt-4o-mini", "text-embedding-3-small"]


@pytest.fixture
def server_url_env():
    from gleitzeit.testing.fake_server import ThreadedServer

    with ThreadedServer(FakeOpenAI()) as srv:
        yield {"OPENAI_API_KEY": "sk-test", "GLEITZEIT_OPENAI_BASE_URL": srv.url}, srv.url


class ShortEmbeddings(FakeOpenAI):
    """A compatible server that answers one embedding too few."""

    async def embeddings(self, request):
        from aiohttp import web

        response = await super().embeddings(request)
        import json

        body = json.loads(response.body)
        body["data"] = body["data"][:-1]
        return web.json_response(body)


async def test_an_embedding_count_that_does_not_match_the_inputs_is_an_error():
    async with ShortEmbeddings() as srv:
        p = OpenAIProvider(OpenAISettings(api_key="sk-test", base_url=srv.url))
        await p.start()
        try:
            with pytest.raises(gleitzeit.ProviderError, match="returned 1 embeddings for 2"):
                await p.invoke("llm/embed", {"input": ["a", "b"]})
        finally:
            await p.stop()


async def test_embed_without_a_model_uses_one_the_server_lists():
    async with FakeOpenAI(models=("gpt-4o-mini", "nomic-embed-text")) as srv:
        p = OpenAIProvider(OpenAISettings(api_key="sk-test", base_url=srv.url))
        await p.start()
        try:
            result = await p.invoke("llm/embed", {"input": "hello"})
            assert result["model"] == "nomic-embed-text"
        finally:
            await p.stop()
    async with FakeOpenAI(models=("gpt-4o-mini",)) as srv:
        p = OpenAIProvider(OpenAISettings(api_key="sk-test", base_url=srv.url))
        await p.start()
        try:
            with pytest.raises(gleitzeit.ModelNotFoundError, match="lists no embedding model"):
                await p.invoke("llm/embed", {"input": "hello"})
        finally:
            await p.stop()


class ListContent(FakeOpenAI):
    """A compatible server whose chat message content is not a string."""

    async def chat(self, request):
        import json

        from aiohttp import web

        response = await super().chat(request)
        body = json.loads(response.body)
        body["choices"][0]["message"]["content"] = [{"type": "text", "text": "hi"}]
        return web.json_response(body)


async def test_a_chat_reply_whose_content_is_not_a_string_is_an_error_naming_the_upstream():
    async with ListContent() as srv:
        p = OpenAIProvider(OpenAISettings(api_key="sk-test", base_url=srv.url))
        await p.start()
        try:
            with pytest.raises(gleitzeit.ProviderError) as info:
                await p.invoke("llm/chat", CHAT)
        finally:
            await p.stop()
    assert srv.url in info.value.message
    assert "choices.0.message.content" in info.value.message
    assert "not in OpenAI's format" in info.value.message


def test_openai_base_url_is_not_read_it_belongs_to_clients_of_the_gateway(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:8000/v1")
    monkeypatch.delenv("GLEITZEIT_OPENAI_BASE_URL", raising=False)
    assert OpenAIProvider(OpenAISettings(api_key="k")).base_url == "https://api.openai.com/v1"
    monkeypatch.setenv("GLEITZEIT_OPENAI_BASE_URL", "http://127.0.0.1:8080/v1/")
    assert OpenAIProvider(OpenAISettings(api_key="k")).base_url == "http://127.0.0.1:8080/v1"
