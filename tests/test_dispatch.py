"""The dispatcher's one rule and one request shape, in-process and over the wire."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import gleitzeit
from gleitzeit.api import Api
from gleitzeit.socketio.client import Client
from gleitzeit.testing import host, local_server
from gleitzeit.workflows.runner import HybridApi

CHAT = {"messages": [{"role": "user", "content": "hi there"}]}


class Strict(gleitzeit.Provider):
    """Streams only for a valid 'n'; fails as the provider when told to."""

    name = "strict"
    kind = "tool"

    @gleitzeit.method("tool/count")
    async def count(self, params: dict[str, Any]) -> Any:
        n = params.get("n")
        if not isinstance(n, int):
            raise gleitzeit.InvalidParamsError("tool/count needs an integer 'n'")
        if n < 0:
            raise gleitzeit.ProviderError("the counter broke")
        for i in range(n):
            yield {"token": str(i)}


async def test_a_callers_bad_stream_requests_leave_the_instance_healthy_and_routable():
    config = "routing: {failure_threshold: 3, cooldown: 30}"
    async with host(providers=[Strict()], config=config) as h:
        (inst,) = h.registry.instances("strict")
        for _ in range(3):
            with pytest.raises(gleitzeit.InvalidParamsError):
                async for _chunk in h.stream("tool/count", {"n": "x"}):
                    pass
        assert inst.routable and inst.consecutive_failures == 0
        assert h.registry.candidates("tool/count") == [inst]
        chunks = [c async for c in h.stream("tool/count", {"n": 2})]
        assert [c["token"] for c in chunks if not c["done"]] == ["0", "1"]
        # The instance's own failures do count: three in a row cool it down.
        for _ in range(3):
            with pytest.raises(gleitzeit.ProviderError, match="broke"):
                async for _chunk in h.stream("tool/count", {"n": -1}):
                    pass
        assert not inst.routable


async def test_invoke_and_stream_share_the_rule_for_caller_errors():
    async with host(providers=[Strict()], config="routing: {failure_threshold: 1}") as h:
        (inst,) = h.registry.instances("strict")
        for _ in range(2):
            with pytest.raises(gleitzeit.InvalidParamsError):
                await h.invoke("tool/count", {"n": "x"})
        assert inst.routable and inst.errors == 2


async def test_capability_given_to_a_client_reaches_routing_on_the_server():
    async with local_server() as server, Client(server.url, token=server.token) as client:
        answer = await client.invoke("llm/chat", CHAT, capability="streaming")
        assert answer["response"] == "hi there"
        with pytest.raises(gleitzeit.RoutingError, match="capability 'telepathy'"):
            await client.invoke("llm/chat", CHAT, capability="telepathy")
        with pytest.raises(gleitzeit.RoutingError, match="capability 'telepathy'"):
            async for _chunk in client.stream("llm/chat", CHAT, capability="telepathy"):
                pass


async def test_host_client_and_hybrid_keep_the_api_contract():
    async with local_server() as server:
        async with host() as h:
            apis: list[Api] = [h, Client(server.url, token=server.token)]
            apis.append(HybridApi(Client(server.url, token=server.token), h))
            for api in apis:
                assert isinstance(api, Api)
                if api is not h:
                    await api.__aenter__()
                try:
                    listed = await api.providers()
                    assert "echo" in {p["name"] for p in listed}
                    assert all("method_schemas" in p for p in listed)
                    rows = await api.health("echo")
                    assert rows and rows[0]["status"] == "healthy"
                    tokens = [c["token"] async for c in api.stream("llm/chat", CHAT, model="echo")]
                    assert "".join(tokens).strip() == "hi there"
                finally:
                    if api is not h:
                        await api.__aexit__(None, None, None)


async def test_a_call_past_its_deadline_times_out_and_the_host_goes_on():
    class Slow(gleitzeit.Provider):
        name = "slow"
        kind = "tool"

        @gleitzeit.method("tool/wait")
        async def wait(self, params: dict[str, Any]) -> dict[str, Any]:
            await asyncio.sleep(params["s"])
            return {"result": params["s"]}

    async with host(providers=[Slow()]) as h:
        with pytest.raises(gleitzeit.ProviderTimeoutError, match="longer than 0.05s"):
            await h.invoke("tool/wait", {"s": 5}, timeout=0.05)
        # Short calls with a long timeout are not cut by the earlier deadline's timer.
        results = await asyncio.gather(*(h.invoke("tool/wait", {"s": 0.01}) for _ in range(20)))
        assert [r["result"] for r in results] == [0.01] * 20
        (inst,) = h.registry.instances("slow")
        assert inst.in_flight == 0
        # The task that timed out is not left cancelled: it can await again.
        await asyncio.sleep(0)
