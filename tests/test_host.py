"""The host: routing by method, model and provider; retries; in-flight counters; errors."""

from __future__ import annotations

import asyncio
import types

import pytest

import gleitzeit
from gleitzeit.config import Config, parse_config
from gleitzeit.errors import InstancesDownError
from gleitzeit.host import Host
from gleitzeit.plugins import Plugins


class Flaky(gleitzeit.Provider):
    """Fails with a retryable error a set number of times, then answers."""

    name = "flaky"
    kind = "tool"

    def __init__(self, settings=None, *, name=None, failures=0, retryable=True):
        super().__init__(settings, name=name)
        self.failures = failures
        self.retryable = retryable
        self.calls = 0

    @gleitzeit.method("tool/work")
    async def work(self, params):
        self.calls += 1
        if self.calls <= self.failures:
            if self.retryable:
                raise gleitzeit.ProviderUnavailableError(f"{self.name} is busy")
            raise gleitzeit.ToolError("bad input")
        return {"result": self.name}


class Slow(gleitzeit.Provider):
    name = "slow"
    kind = "tool"

    @gleitzeit.method("tool/slow")
    async def slow(self, params):
        await asyncio.sleep(params.get("seconds", 10))
        return {"result": "late"}

    @gleitzeit.method("tool/crash")
    async def crash(self, params):
        raise KeyError("oops")


class Gate(gleitzeit.Provider):
    """Holds calls until released, to count what is in flight."""

    name = "gate"
    kind = "llm"
    models = ("m1",)

    def __init__(self, settings=None, *, name=None, models=("m1",)):
        super().__init__(settings, name=name)
        self.models = tuple(models)
        self.release = asyncio.Event()

    @gleitzeit.method("llm/chat")
    async def chat(self, params):
        await self.release.wait()
        return gleitzeit.llm_result("ok", model=params.get("model", "m1"), provider=self.name)

    @gleitzeit.method("llm/chat")
    async def chat_stream(self, params):
        yield gleitzeit.token_chunk("a")
        await self.release.wait()
        yield gleitzeit.token_chunk("b")


def _host(*providers, config: Config | None = None) -> Host:
    config = config or Config()
    return Host(config, plugins=Plugins.load(config, installed=False), providers=list(providers))


async def test_retryable_failure_moves_to_another_instance():
    a, b = Flaky(name="flaky", failures=5), Flaky(name="flaky")
    async with _host(a, b) as host:
        results = [await host.invoke("tool/work", provider="flaky") for _ in range(4)]
        assert [r["result"] for r in results] == ["flaky"] * 4
        assert a.calls >= 1 and b.calls == 4
        assert all(i.in_flight == 0 for i in host.registry)


async def test_non_retryable_error_is_raised_at_once():
    a = Flaky(name="flaky", failures=1, retryable=False)
    b = Flaky(name="flaky")
    async with _host(a, b, config=parse_config("routing: {strategy: round-robin}")) as host:
        with pytest.raises(gleitzeit.ToolError, match="bad input"):
            await host.invoke("tool/work")
        assert a.calls + b.calls == 1


async def test_retries_are_bounded_and_the_last_error_is_raised():
    providers = [Flaky(name="flaky", failures=99) for _ in range(5)]
    async with _host(*providers, config=parse_config("routing: {retries: 2}")) as host:
        with pytest.raises(gleitzeit.ProviderUnavailableError, match="busy"):
            await host.invoke("tool/work")
        assert sum(p.calls for p in providers) == 3


async def test_failing_instance_cools_down_and_leaves_routing():
    bad, good = Flaky(name="flaky", failures=99), Flaky(name="flaky")
    config = parse_config("routing: {failure_threshold: 1, cooldown: 60, strategy: round-robin}")
    async with _host(bad, good, config=config) as host:
        for _ in range(5):
            assert (await host.invoke("tool/work"))["result"] == "flaky"
        assert bad.calls == 1  # cooled down after its first failure
        described = {i.describe()["cooling_down"] for i in host.registry}
        assert described == {True, False}


async def test_timeout_is_a_clear_error_and_in_flight_returns_to_zero():
    async with _host(Slow()) as host:
        with pytest.raises(gleitzeit.ProviderTimeoutError, match="longer than 0.05s"):
            await host.invoke("tool/slow", timeout=0.05)
        (inst,) = host.registry.instances("slow")
        assert inst.in_flight == 0


async def test_bare_exception_in_a_provider_becomes_a_provider_error():
    async with _host(Slow()) as host:
        with pytest.raises(gleitzeit.ProviderError, match="'slow' failed in tool/crash: KeyError"):
            await host.invoke("tool/crash")
        assert (await host.invoke("tool/slow", {"seconds": 0}))["result"] == "late"


async def test_least_in_flight_spreads_concurrent_calls():
    one, two = Gate(name="gate"), Gate(name="gate")
    async with _host(one, two) as host:
        calls = [asyncio.ensure_future(host.invoke("llm/chat", provider="gate")) for _ in range(6)]
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert sorted(i.in_flight for i in host.registry.instances("gate")) == [3, 3]
        one.release.set()
        two.release.set()
        await asyncio.gather(*calls)
        assert [i.in_flight for i in host.registry.instances("gate")] == [0, 0]


async def test_cancelled_calls_and_streams_leave_no_in_flight_behind():
    gate = Gate(name="gate")
    async with _host(gate) as host:
        (inst,) = host.registry.instances("gate")
        call = asyncio.ensure_future(host.invoke("llm/chat", provider="gate"))
        await asyncio.sleep(0.01)
        assert inst.in_flight == 1
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert inst.in_flight == 0

        stream = host.stream("llm/chat", provider="gate")
        assert (await stream.__anext__())["token"] == "a"
        assert inst.in_flight == 1
        await stream.aclose()
        assert inst.in_flight == 0


async def test_stream_that_stalls_ends_with_a_timeout_and_no_in_flight():
    gate = Gate(name="gate")
    async with _host(gate) as host:
        (inst,) = host.registry.instances("gate")
        received = []
        with pytest.raises(gleitzeit.ProviderTimeoutError, match="sent nothing for 0.05s"):
            async for chunk in host.stream("llm/chat", provider="gate", chunk_timeout=0.05):
                received.append(chunk)
        assert [c["token"] for c in received] == ["a"]
        assert inst.in_flight == 0
        # A slow consumer is not a stalled provider: time between chunks does not count.
        gate.release.set()
        chunks = []
        async for chunk in host.stream("llm/chat", provider="gate", chunk_timeout=0.05):
            await asyncio.sleep(0.1)
            chunks.append(chunk)
        assert [c["token"] for c in chunks] == ["a", "b", ""]


async def test_routing_by_model_and_the_error_when_no_one_serves_it():
    small, big = Gate(name="small", models=("m-small",)), Gate(name="big", models=("m-big",))
    small.release.set()
    big.release.set()
    async with _host(small, big) as host:
        assert (await host.invoke("llm/chat", {"model": "m-big"}))["provider"] == "big"
        assert (await host.invoke("llm/chat", model="m-small"))["provider"] == "small"
        with pytest.raises(gleitzeit.RoutingError) as info:
            await host.invoke("llm/chat", {"model": "m-bigg"})
        text = str(info.value)
        assert "No provider serves model 'm-bigg'" in text
        assert "did you mean 'm-big'" in text
        assert "echo, m-big, m-small" in text


async def test_unknown_method_and_provider_errors_say_what_exists():
    async with _host() as host:
        with pytest.raises(gleitzeit.MethodNotFoundError) as info:
            await host.invoke("llm/chatt")
        assert "did you mean 'llm/chat'" in str(info.value)
        assert "available methods: llm/chat, llm/generate" in str(info.value)
        with pytest.raises(
            gleitzeit.RoutingError, match="No provider named 'ecko'; did you mean 'echo'"
        ):
            await host.invoke("llm/chat", provider="ecko")
        with pytest.raises(gleitzeit.MethodNotFoundError, match="'echo' has no method 'llm/embed'"):
            await host.invoke("llm/embed", provider="echo")


async def test_unprefixed_method_resolves_when_unambiguous():
    async with _host() as host:
        out = await host.invoke("generate", {"prompt": "short and sweet"})
        assert out["response"] == "short and sweet"


async def test_stream_yields_tokens_then_exactly_one_done_chunk():
    async with _host() as host:
        chunks = [
            c
            async for c in host.stream(
                "llm/chat", {"messages": [{"role": "user", "content": "one two three"}]}
            )
        ]
        assert "".join(c["token"] for c in chunks) == "one two three"
        assert [c["done"] for c in chunks] == [False, False, False, True]
        assert chunks[-1]["usage"] == {
            "prompt_tokens": 3,
            "completion_tokens": 3,
            "total_tokens": 6,
        }


async def test_streaming_a_method_that_does_not_stream_is_a_clear_error():
    async with Host(Config(), plugins=Plugins.load(Config())) as host:
        with pytest.raises(gleitzeit.MethodNotFoundError, match="does not stream"):
            async for _ in host.stream("calc/add", {"a": 1, "b": 2}, provider="calculator"):
                pass


async def test_provider_that_fails_to_start_is_down_with_its_reason_and_others_serve():
    class NoKey(gleitzeit.Provider):
        name = "nokey"
        kind = "llm"

        async def start(self):
            raise gleitzeit.AuthenticationError("no API key", hint="set NOKEY_API_KEY")

        @gleitzeit.method("llm/chat")
        async def chat(self, params):
            return {}

    async with _host(NoKey()) as host:
        (inst,) = host.registry.instances("nokey")
        assert inst.health.status == "unhealthy"
        with pytest.raises(gleitzeit.RoutingError, match="no API key"):
            await host.invoke("llm/chat", provider="nokey")
        (checked,) = await host.check_health("nokey")
        assert "no API key" in checked.health.detail
        assert (await host.invoke("llm/chat", {"messages": [{"content": "hi"}]}))[
            "response"
        ] == "hi"


async def test_local_class_from_config_providers_section(tmp_path, monkeypatch):
    (tmp_path / "my_local_provider.py").write_text(
        "import gleitzeit\n"
        "class Local(gleitzeit.Provider):\n"
        "    name = 'local'\n"
        "    kind = 'extension'\n"
        "    @gleitzeit.method('ext/who')\n"
        "    async def who(self, params):\n"
        "        return {'result': [self.name, self.settings]}\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    config = parse_config(
        "providers:\n"
        "  mine:\n    class: my_local_provider:Local\n    settings: {colour: blue}\n"
        "  calc2:\n    type: calculator\n    settings: {precision: 1}\n"
        "  broken:\n    type: calculatr\n"
    )
    async with Host(config, plugins=Plugins.load(config)) as host:
        assert (await host.invoke("ext/who"))["result"] == ["mine", {"colour": "blue"}]
        assert (await host.invoke("calc/divide", {"a": 1, "b": 3}, provider="calc2"))[
            "result"
        ] == 0.3
        assert "did you mean 'calculator'" in host.plugin_errors["providers.broken"]


async def test_registry_indexes_and_unindexes():
    async with _host(Gate(name="g1", models=("a", "b"))) as host:
        (inst,) = host.registry.instances("g1")
        assert host.registry.models() == ["a", "b", "echo"]
        host.registry.update_models(inst, ["c"])
        assert host.registry.models() == ["c", "echo"]
        host.registry.remove(inst.id)
        assert host.registry.names() == ["echo"]


async def test_scheduled_health_checks_take_instances_out_and_back():
    class Moody(gleitzeit.Provider):
        name = "moody"
        kind = "tool"
        well = True

        @gleitzeit.method("tool/ask")
        async def ask(self, params):
            return {"result": "ok"}

        async def health(self):
            return {"status": "healthy" if self.well else "unhealthy", "detail": "mood"}

    moody = Moody()
    config = parse_config("health: {interval: 0.05, timeout: 1}")
    async with _host(moody, config=config) as host:
        host.watch_health()
        (inst,) = host.registry.instances("moody")
        moody.well = False
        for _ in range(200):
            if inst.health.status == "unhealthy":
                break
            await asyncio.sleep(0.02)
        with pytest.raises(gleitzeit.RoutingError, match="down"):
            await host.invoke("tool/ask")
        moody.well = True
        for _ in range(200):
            if inst.health.status == "healthy":
                break
            await asyncio.sleep(0.02)
        assert (await host.invoke("tool/ask"))["result"] == "ok"


async def test_slow_health_check_counts_as_unhealthy():
    class Sleepy(gleitzeit.Provider):
        name = "sleepy"
        kind = "tool"

        @gleitzeit.method("tool/nap")
        async def nap(self, params):
            return {}

        async def health(self):
            await asyncio.sleep(5)
            return {"status": "healthy"}

    async with _host(Sleepy(), config=parse_config("health: {timeout: 0.05}")) as host:
        (inst,) = await host.check_health("sleepy")
        assert inst.health.status == "unhealthy"
        assert "no answer within 0.05s" in inst.health.detail


def test_provider_handlers_may_not_shadow_provider_methods():
    with pytest.raises(TypeError, match="may not be named 'stream'"):

        class Bad(gleitzeit.Provider):
            name = "bad"

            @gleitzeit.method("x/stream")
            async def stream(self, params):
                yield {}


async def test_lazy_start_is_shared_by_concurrent_requests():
    class SlowStart(gleitzeit.Provider):
        name = "slowstart"
        kind = "tool"
        starts = 0

        async def start(self):
            type(self).starts += 1
            await asyncio.sleep(0.05)

        @gleitzeit.method("tool/go")
        async def go(self, params):
            return {"result": "ok"}

    config = Config()
    host = Host(
        config, plugins=Plugins.load(config, installed=False), providers=[SlowStart()], lazy=True
    )
    async with host:
        results = await asyncio.gather(*(host.invoke("tool/go") for _ in range(5)))
    assert [r["result"] for r in results] == ["ok"] * 5
    assert SlowStart.starts == 1


class Discovering(gleitzeit.Provider):
    """Learns a method when it starts, and another when told to."""

    name = "discovering"
    kind = "tool"
    dynamic_methods = True

    @gleitzeit.method("disc/static")
    async def static(self, params):
        return {"result": "static"}

    async def start(self):
        self.__methods__ = dict(type(self).__methods__)
        self._learn("disc/found")

    def _learn(self, name):
        self.__methods__[name] = gleitzeit.provider.MethodSpec(
            name, "learnt", invoke_handler="static"
        )

    def method_specs(self):  # instance-level: what this instance has learnt
        return dict(self.__methods__)


async def test_methods_a_provider_learns_at_start_route_even_through_a_lazy_host():
    config = Config()
    provider = Discovering()
    host = Host(
        config, plugins=Plugins.load(config, installed=False), providers=[provider], lazy=True
    )
    async with host:
        assert "disc/found" not in host.registry.methods()
        assert (await host.invoke("disc/found"))["result"] == "static"
        provider._learn("disc/later")
        provider.methods_changed()
        assert (await host.invoke("disc/later"))["result"] == "static"
        assert "disc/later" in host.registry.methods()


async def test_a_lazy_host_starts_what_a_request_needs_once_and_again_for_a_new_provider():
    config = Config()
    host = Host(
        config,
        plugins=Plugins.load(config, installed=False),
        providers=[Flaky(name="flaky"), Slow()],
        lazy=True,
    )
    starts: list[tuple[str | None, str | None]] = []
    ensure_started = host.ensure_started

    async def counted(*, provider=None, method=None, model=None):
        starts.append((method, provider))
        await ensure_started(provider=provider, method=method, model=model)

    host.ensure_started = counted  # type: ignore[method-assign]
    async with host:
        for _ in range(3):
            assert (await host.invoke("tool/work"))["result"] == "flaky"
        # Started on the first call; the next find nothing left to start for it.
        assert starts == [("tool/work", None), ("tool/work", None)]
        (slow,) = host.registry.instances("slow")
        assert not slow.started  # nothing asked for it
        late = host.add_provider(Flaky(name="flaky"))
        for _ in range(2):
            await host.invoke("tool/work")
        assert late.started  # the new instance could take the request: started for it
        assert not slow.started


def test_params_that_are_not_a_model_class_are_refused_where_the_method_is_declared():
    with pytest.raises(TypeError, match=r"takes a pydantic model class .* got dict"):

        @gleitzeit.method("bad/go", params={"type": "object"})  # type: ignore[arg-type]
        async def go(self, params):  # pragma: no cover - never declared
            return {}


class _Opaque:
    """A type pydantic can validate (arbitrary_types_allowed) but not describe."""


async def test_a_provider_whose_params_have_no_json_schema_stays_out_and_the_rest_serve():
    import pydantic

    from gleitzeit.socketio.runner import ProviderRunner

    class Params(pydantic.BaseModel):
        model_config = pydantic.ConfigDict(arbitrary_types_allowed=True)
        thing: _Opaque

    class Undescribed(gleitzeit.Provider):
        name = "undescribed"

        @gleitzeit.method("odd/go", params=Params)
        async def go(self, params):  # pragma: no cover - never routed
            return {}

    plugin = types.SimpleNamespace(
        gleitzeit_register_providers=gleitzeit.hookimpl(lambda register: register(Undescribed))
    )
    cfg = Config()
    host = Host(cfg, plugins=Plugins.load(cfg, installed=False, extra=[("odd", plugin)]))
    async with host:
        problem = host.plugin_errors["undescribed"]
        assert "'odd/go': its params model Params has no JSON Schema" in problem
        with pytest.raises(gleitzeit.PluginError, match=r"'odd/go': its params model Params"):
            host.add_provider(Undescribed())
        assert (await host.invoke("llm/chat", {"messages": [{"role": "user", "content": "hi"}]}))[
            "response"
        ] == "hi"
    # As its own process, it stops at once with the reason (rather than retry forever).
    with pytest.raises(gleitzeit.PluginError, match="has no JSON Schema"):
        await ProviderRunner(Undescribed(), "http://127.0.0.1:9").run()


async def test_a_provider_hook_written_without_async_is_named_when_awaited():
    import functools

    class Hooks(gleitzeit.Provider):
        name = "hooks"

        def start(self):  # a mistake: the host awaits it
            return None

        @staticmethod
        async def health():  # not a mistake: awaitable all the same
            return {"status": "healthy"}

        def stop(self):  # not a mistake either: returns a coroutine
            return functools.partial(asyncio.sleep, 0)()

    async with _host(Hooks()) as host:
        (inst,) = host.registry.instances("hooks")
        await host.ensure_started(provider="hooks")
        assert "Hooks.start must be 'async def' (the host awaits it); it returned NoneType" in (
            str(inst.start_error)
        )
    from gleitzeit.provider import awaited

    assert await awaited(Hooks(), "health") == {"status": "healthy"}
    await awaited(Hooks(), "stop")


async def test_a_method_that_returns_nothing_gives_an_empty_result():
    class Quiet(gleitzeit.Provider):
        name = "quiet"

        @gleitzeit.method("quiet/notify")
        async def notify(self, params):
            pass

    async with _host(Quiet()) as host:
        assert await host.invoke("quiet/notify") == {}


class Limited(gleitzeit.Provider):
    """An upstream that rate-limits: every call gets 429, with or without retry-after."""

    name = "limited"
    kind = "tool"
    retry_after: float | None = None

    @gleitzeit.method("tool/limited")
    async def limited(self, params):
        raise gleitzeit.RateLimitError("429: slow down", retry_after=self.retry_after)


async def test_a_rate_limited_instance_rests_as_asked_and_never_by_the_failure_count():
    config = parse_config("routing: {failure_threshold: 1, cooldown: 600}")
    without = Limited()
    async with _host(without, config=config) as host:
        for _ in range(3):  # no retry-after: nothing to rest for, however often
            with pytest.raises(gleitzeit.RateLimitError):
                await host.invoke("tool/limited")
        (inst,) = host.registry.instances("limited")
        assert inst.routable and inst.errors == 3
        without.retry_after = 30
        with pytest.raises(gleitzeit.RateLimitError):
            await host.invoke("tool/limited")
        assert not inst.routable
        # It rests as long as the upstream asked (not routing.cooldown), and says when
        # to come back.
        with pytest.raises(InstancesDownError, match=r"back in (29|30)s") as down:
            await host.invoke("tool/limited")
        assert 29 <= down.value.details["retry_after"] <= 30


async def test_a_provider_whose_init_raises_is_named_with_why_where_it_is_missing():
    from gleitzeit._factory import build_provider

    class Raiser(gleitzeit.Provider):
        name = "raiser"

        def __init__(self, settings=None, *, name=None):
            super().__init__(settings, name=name)
            raise RuntimeError("no credentials file")

        @gleitzeit.method("raise/go")
        async def go(self, params):  # pragma: no cover - never built
            return {}

    plugin = types.SimpleNamespace(
        gleitzeit_register_providers=gleitzeit.hookimpl(lambda register: register(Raiser))
    )
    cfg = Config()
    plugins = Plugins.load(cfg, installed=False, extra=[("raising", plugin)])
    async with Host(cfg, plugins=plugins) as host:
        with pytest.raises(gleitzeit.GleitzeitError) as missing:
            await host.invoke("raise/go", {}, provider="raiser")
        assert "could not create provider: RuntimeError: no credentials file" in str(missing.value)
    # `gleitzeit provider run raiser` says the same, not "internal error".
    with pytest.raises(gleitzeit.PluginError, match="no credentials file") as made:
        build_provider(plugins, "raiser")
    assert "Raiser.__init__ raised" in (made.value.hint or "")


async def test_a_method_that_returns_no_dict_fails_in_process_as_it_would_remotely():
    class Bare(gleitzeit.Provider):
        name = "bare"

        @gleitzeit.method("bare/one")
        async def one(self, params):
            return 1

    async with _host(Bare()) as host:
        with pytest.raises(gleitzeit.ProviderError, match="bare/one returned int") as info:
            await host.invoke("bare/one")
    assert "{'result': ...} in" in (info.value.hint or "")


async def test_health_rows_show_how_long_an_instance_still_rests():
    config = parse_config("routing: {failure_threshold: 1, cooldown: 600}")
    limited = Limited()
    limited.retry_after = 30
    async with _host(limited, config=config) as host:
        (before,) = await host.health("limited")
        assert before["cooling_down_s"] is None
        with pytest.raises(gleitzeit.RateLimitError):
            await host.invoke("tool/limited")
        (after,) = await host.health("limited")
        assert 29 <= after["cooling_down_s"] <= 30
