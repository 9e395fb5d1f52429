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


class Flaky(gleitzeit.Provider):
    """Connected, but the service behind it answers 500."""

    name = "flaky"
    kind = "tool"

    @gleitzeit.method("tool/flake")
    async def flake(self, params: dict[str, Any]) -> Any:
        raise gleitzeit.ProviderUnavailableError("upstream failed with 500: boom", status=500)

    @gleitzeit.method("tool/flakes")
    async def flakes(self, params: dict[str, Any]) -> Any:
        raise gleitzeit.ProviderUnavailableError("upstream failed with 500: boom", status=500)
        yield {"token": "never"}


async def test_an_instance_that_fails_as_unavailable_but_stays_is_not_waited_for():
    config = "routing: {wait_for_instance: 60, retries: 2}"
    async with host(providers=[Flaky()], config=config) as h:
        for call in (h.invoke("tool/flake", {}), _drain(h.stream("tool/flakes", {}))):
            with pytest.raises(gleitzeit.ProviderUnavailableError, match="500: boom"):
                # (a guard against a hang: without the rule it waits 60 s)
                await asyncio.wait_for(call, 20)


async def _drain(chunks: Any) -> None:
    async for _chunk in chunks:
        pass


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


class Seen(gleitzeit.Provider):
    """Answers at once, fails at once, or waits; records what the call's context holds
    while it runs, and can call back into the host."""

    name = "seen"
    kind = "tool"

    def __init__(self, settings: Any = None, *, name: str | None = None) -> None:
        super().__init__(settings, name=name)
        self.context: list[tuple[str | None, float | None]] = []
        self.host: Any = None

    def _note(self) -> None:
        from gleitzeit.request import CALL_DEADLINE, CALL_ID

        self.context.append((CALL_ID.get(), CALL_DEADLINE.get()))

    @gleitzeit.method("tool/now")
    async def now(self, params: dict[str, Any]) -> dict[str, Any]:
        self._note()
        if params.get("fail") == "busy":
            raise gleitzeit.ProviderUnavailableError(f"{self.name} is busy")
        if params.get("fail") == "bad":
            raise gleitzeit.InvalidParamsError("bad input")
        if params.get("fail") == "bug":
            raise KeyError("oops")
        if params.get("wait"):
            await asyncio.sleep(0)
            self._note()
        if params.get("nested"):
            inner = await self.host.invoke("tool/now", {})
            return {"result": "outer", "inner": inner["result"]}
        return {"result": self.name}


def _state(h: Any) -> list[tuple[str, int, int, int, int, bool]]:
    return [
        (
            i.id.split("#")[0],
            i.calls,
            i.errors,
            i.in_flight,
            i.consecutive_failures,
            i.latency_ewma is not None,
        )
        for i in sorted(h.registry.instances("seen"), key=lambda i: i.id)
    ]


async def _scenario(watched: bool) -> tuple[list[Any], list[Any], list[Any]]:
    """The same calls, with and without a listener watching (which takes the loop's
    general path for every call): what callers, instances and providers see."""
    from gleitzeit._dispatch import CallListener

    first, second = Seen(name="seen"), Seen(name="seen")
    async with host(providers=[first, second]) as h:
        first.host = second.host = h
        if watched:
            h.dispatcher.listeners.append(CallListener())
        outcomes: list[Any] = []
        for params in (
            {},
            {"wait": True},
            {"fail": "bad"},
            {"fail": "bug"},
            {"nested": True},
            {"fail": "busy"},
        ):
            try:
                result = await h.invoke("tool/now", params, call_id="c1")
                outcomes.append(sorted(result))
            except gleitzeit.GleitzeitError as exc:
                outcomes.append((type(exc).__name__, exc.call_id))
        contexts = [
            (call_id, deadline is not None)
            for p in (first, second)
            for call_id, deadline in p.context
        ]
        from gleitzeit.request import CALL_DEADLINE, CALL_ID

        assert CALL_ID.get() is None and CALL_DEADLINE.get() is None
        return outcomes, _state(h), sorted(contexts)


async def test_the_unwatched_fast_path_does_what_the_attempt_loop_does():
    assert await _scenario(watched=False) == await _scenario(watched=True)


async def test_an_in_process_provider_sees_the_call_id_and_deadline_and_so_does_its_callback():
    seen = Seen()
    async with host(providers=[seen]) as h:
        seen.host = h
        await h.invoke("tool/now", {"nested": True}, timeout=30)
        await h.invoke("tool/now", {"wait": True})
        (outer, inner, waited, waited_later) = seen.context
        assert outer[0] == inner[0] and outer[0] is not None  # the callback keeps the id
        assert waited[0] == waited_later[0] != outer[0]  # a new call, the same id after waiting
        assert all(deadline is not None for _, deadline in seen.context)
        (inst,) = h.registry.instances("seen")
        assert (inst.calls, inst.in_flight, inst.errors) == (3, 0, 0)


async def test_a_first_attempt_that_fails_at_once_is_retried_on_another_instance():
    first, second = Seen(name="seen"), Seen(name="seen")
    async with host(providers=[first, second]) as h:
        with pytest.raises(gleitzeit.ProviderUnavailableError, match="busy") as failed:
            await h.invoke("tool/now", {"fail": "busy"})
        assert failed.value.call_id is not None
        # Both instances were tried, once each, and the failure counted against both.
        assert sorted((i.calls, i.errors, i.in_flight) for i in h.registry.instances("seen")) == [
            (1, 1, 0),
            (1, 1, 0),
        ]
        assert len({call_id for p in (first, second) for call_id, _ in p.context}) == 1


class Waits(gleitzeit.Provider):
    name = "waits"
    kind = "tool"

    @gleitzeit.method("tool/late")
    async def late(self, params: dict[str, Any]) -> dict[str, Any]:
        await asyncio.sleep(0)
        if params.get("fail") == "bug":
            raise KeyError("oops")
        return {"result": "late"}


async def test_a_bare_exception_after_waiting_becomes_the_instances_provider_error():
    async with host(providers=[Waits()]) as h:
        with pytest.raises(gleitzeit.ProviderError, match="'waits' failed in tool/late") as failed:
            await h.invoke("tool/late", {"fail": "bug"})
        assert isinstance(failed.value.__cause__, KeyError)
        assert (await h.invoke("tool/late", {}))["result"] == "late"
        (inst,) = h.registry.instances("waits")
        assert (inst.calls, inst.errors, inst.in_flight) == (2, 1, 0)


async def test_an_invoke_with_bad_parameters_fails_when_awaited_with_a_clear_error():
    async with host(providers=[Seen()]) as h:
        pending = h.invoke("tool/now", 5)  # type: ignore[arg-type]
        with pytest.raises(gleitzeit.InvalidParamsError, match="must be a dict") as failed:
            await pending
        assert "not int" in str(failed.value)
        assert (await h.invoke("tool/now", {}))["result"] == "seen"
