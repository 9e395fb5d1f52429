"""The conformance suite: what every provider must do, as pytest tests.

Subclass it in your plugin's tests (one class, a few attributes)::

    from gleitzeit.testing import ProviderConformance
    from gleitzeit_weather.provider import WeatherProvider

    class TestWeatherConformance(ProviderConformance):
        provider_class = WeatherProvider
        sample_params = {"weather/today": {"city": "Berlin"}}

The tests are plain (synchronous) pytest tests: no asyncio plugin is needed. They check
that the metadata is valid; that every declared method has a schema and answers; that
results have the standard shape for the provider's kind; that streams end with exactly
one ``done`` chunk; that unknown methods and bad parameters raise gleitzeit errors, not
bare exceptions; that health has the standard shape and answers in time; that start and
stop can be repeated; and that the provider works through a host in-process and as a
remote provider over Socket.IO.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ClassVar, TypeVar

from gleitzeit.errors import GleitzeitError, MethodNotFoundError
from gleitzeit.methods import KINDS
from gleitzeit.provider import Provider
from gleitzeit.socketio.wire import METHOD_RE, NAME_RE

T = TypeVar("T")

HEALTH_STATUSES = ("healthy", "degraded", "unhealthy")


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]


def check_result_shape(kind: str, method: str, result: Any) -> None:
    """Assert the standard result shape of a provider of ``kind``."""
    assert isinstance(result, dict), f"{method} returned {type(result).__name__}, expected a dict"
    if method.endswith("/embed"):
        assert "embedding" in result or "embeddings" in result, (
            f"{method}: an embedding result has 'embedding' or 'embeddings'"
        )
        for key in ("model", "dimensions"):
            assert key in result, f"{method}: an embedding result has {key!r}"
        return
    if kind == "llm":
        for key in ("response", "model", "provider"):
            assert key in result, f"{method}: an LLM result has {key!r} (got {sorted(result)})"
        assert isinstance(result["response"], str), f"{method}: 'response' must be a string"
        if "usage" in result and result["usage"] is not None:
            assert {"prompt_tokens", "completion_tokens", "total_tokens"} <= set(result["usage"]), (
                f"{method}: usage has prompt_tokens, completion_tokens and total_tokens"
            )
    elif kind == "tool":
        assert "result" in result, f"{method}: a tool result has 'result' (got {sorted(result)})"


async def collect(stream: AsyncIterator[dict[str, Any]]) -> list[dict[str, Any]]:
    return [chunk async for chunk in stream]


def check_stream(method: str, chunks: list[dict[str, Any]]) -> None:
    """Assert that a stream ends with exactly one ``done`` chunk."""
    assert chunks, f"{method}: the stream yielded nothing"
    done = [i for i, c in enumerate(chunks) if c.get("done")]
    assert done == [len(chunks) - 1], (
        f"{method}: a stream ends with exactly one done chunk, last; done at {done} of {len(chunks)}"
    )
    for chunk in chunks:
        assert isinstance(chunk.get("token"), str), f"{method}: every chunk has a str 'token'"


class ProviderConformance:
    """Base class of a provider's conformance tests. Set the attributes below."""

    #: The provider class under test.
    provider_class: ClassVar[type[Provider]]
    #: Settings passed to the provider (an instance of its settings model, a dict, or None).
    settings: ClassVar[Any] = None
    #: Valid parameters for each method: every declared method needs an entry.
    sample_params: ClassVar[dict[str, dict[str, Any]]] = {}
    #: Parameters each method must refuse with a gleitzeit error (a non-object is tried
    #: for every method as well).
    invalid_params: ClassVar[dict[str, dict[str, Any]]] = {}
    #: Seconds health() may take.
    health_timeout: ClassVar[float] = 5.0

    def make_provider(self) -> Provider:
        """A fresh provider; override to build one differently (e.g. with a test server)."""
        return self.provider_class(self.settings)

    # -- helpers ---------------------------------------------------------------------

    def _with_started(self, body: Callable[[Provider], Awaitable[T]]) -> T:
        async def go() -> T:
            provider = self.make_provider()
            await provider.start()
            try:
                return await body(provider)
            finally:
                await provider.stop()

        return run(go())

    def _params(self, method: str) -> dict[str, Any]:
        if method not in self.sample_params:
            raise AssertionError(
                f"add sample_params[{method!r}] = {{...valid parameters...}} to {type(self).__name__}"
            )
        return dict(self.sample_params[method])

    # -- the suite -------------------------------------------------------------------

    def test_metadata_is_valid(self) -> None:
        cls = self.provider_class
        assert isinstance(cls.name, str) and NAME_RE.match(cls.name), (
            f"name {cls.name!r}: 1-64 letters, digits, '_', '.' or '-'"
        )
        assert cls.kind in KINDS, f"kind {cls.kind!r} is not one of {KINDS}"
        specs = cls.method_specs()
        assert specs, "a provider declares at least one @gleitzeit.method"
        for name, spec in specs.items():
            assert METHOD_RE.match(name), f"method {name!r} should look like 'protocol/name'"
            assert spec.description, f"{name} has no description (a docstring or description=)"
        provider = self.make_provider()
        registration = provider.registration()
        from gleitzeit.socketio.wire import Register

        Register.model_validate(registration)  # what a server would accept

    def test_every_method_has_a_schema_and_answers(self) -> None:
        specs = self.provider_class.method_specs()

        async def body(provider: Provider) -> None:
            for name, spec in specs.items():
                schema = spec.schema()
                assert schema.get("type") == "object", f"{name}: parameters schema is an object"
                if spec.invoke_handler or spec.stream_handler:
                    result = await provider.invoke(name, self._params(name))
                    check_result_shape(provider.kind, name, result)

        self._with_started(body)

    def test_streams_end_with_exactly_one_done_chunk(self) -> None:
        streaming = [n for n, s in self.provider_class.method_specs().items() if s.streaming]

        async def body(provider: Provider) -> None:
            for name in streaming:
                check_stream(name, await collect(provider.stream(name, self._params(name))))

        self._with_started(body)

    def test_unknown_methods_raise_gleitzeit_errors(self) -> None:
        async def body(provider: Provider) -> None:
            for bogus in ("nope/never-declared", "never-declared"):
                try:
                    await provider.invoke(bogus, {})
                except MethodNotFoundError:
                    continue
                raise AssertionError(f"invoke({bogus!r}) did not raise MethodNotFoundError")

        self._with_started(body)

    def test_bad_params_raise_gleitzeit_errors(self) -> None:
        specs = self.provider_class.method_specs()

        async def body(provider: Provider) -> None:
            for name in specs:
                cases: list[Any] = [["not", "an", "object"]]
                if name in self.invalid_params:
                    cases.append(self.invalid_params[name])
                for params in cases:
                    try:
                        await provider.invoke(name, params)
                    except GleitzeitError:
                        continue
                    except Exception as exc:
                        raise AssertionError(
                            f"{name} with {params!r} raised {type(exc).__name__}: {exc} — "
                            "raise a gleitzeit error (InvalidParamsError, ToolError, ...)"
                        ) from exc
                    raise AssertionError(f"{name} accepted invalid parameters {params!r}")

        self._with_started(body)

    def test_health_answers_in_time_with_the_standard_shape(self) -> None:
        async def body(provider: Provider) -> dict[str, Any]:
            return await asyncio.wait_for(provider.health(), self.health_timeout)

        report = self._with_started(body)
        assert isinstance(report, dict), "health() returns a dict"
        assert report.get("status") in HEALTH_STATUSES, (
            f"health status {report.get('status')!r} is not one of {HEALTH_STATUSES}"
        )

    def test_start_and_stop_can_be_repeated(self) -> None:
        async def go() -> None:
            provider = self.make_provider()
            for _ in range(2):
                await provider.start()
                await provider.stop()
            await provider.stop()  # stopping a stopped provider is harmless

        run(go())

    def test_works_through_a_host_in_process(self) -> None:
        from gleitzeit.testing.helpers import host

        async def go() -> None:
            provider = self.make_provider()
            async with host(providers=[provider]) as h:
                for name in provider.method_specs():
                    result = await h.invoke(name, self._params(name), provider=provider.name)
                    check_result_shape(provider.kind, name, result)

        run(go())

    def test_works_as_a_remote_provider_over_socketio(self) -> None:
        from gleitzeit.socketio.client import Client
        from gleitzeit.testing.helpers import local_server, serve_provider

        async def go() -> None:
            provider = self.make_provider()
            async with local_server() as server, serve_provider(provider, server.url):
                async with Client(server.url, token=server.token) as client:
                    for name, spec in provider.method_specs().items():
                        result = await client.invoke(
                            name, self._params(name), provider=provider.name
                        )
                        check_result_shape(provider.kind, name, result)
                        if spec.streaming:
                            chunks = await collect(
                                client.stream(name, self._params(name), provider=provider.name)
                            )
                            check_stream(name, chunks)

        run(go())


__all__ = ["ProviderConformance", "check_result_shape", "check_stream"]
