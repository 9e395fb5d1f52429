"""Tool calling: the standard shape through the openai and ollama plugins (against their
fake upstreams), provider tools run by the host, aliases and fallback chains in the
dispatcher, and all of it from workflows and the CLI."""

from __future__ import annotations

import asyncio
import json
import textwrap

import pytest

import gleitzeit
from gleitzeit.errors import InvalidParamsError, ProviderUnavailableError, ToolRoundsExceeded
from gleitzeit.testing import host
from gleitzeit.testing.fake_ollama import FakeOllama
from gleitzeit.testing.fake_openai import FakeOpenAI
from gleitzeit.testing.fake_server import Scenario, ThreadedServer
from gleitzeit.workflows.engine import Engine
from gleitzeit.workflows.loader import parse_workflow

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
ASK = [{"role": "user", "content": "weather in Oslo?"}]
CALLS = [{"name": "get_weather", "arguments": {"city": "Oslo"}}]


def openai_config(url: str, extra: str = "") -> str:
    return f"plugins:\n  openai: {{api_key: sk-test, base_url: '{url}'}}\n{extra}"


def ollama_config(url: str, extra: str = "") -> str:
    return f"plugins:\n  ollama: {{base_url: '{url}'}}\n{extra}"


@pytest.fixture(params=["openai", "ollama"])
async def upstream(request):
    """A fake upstream and the config of its plugin: (server, provider, model, config)."""
    if request.param == "openai":
        async with FakeOpenAI() as server:
            yield server, "openai", "gpt-4o-mini", openai_config(server.url)
    else:
        async with FakeOllama() as server:
            yield server, "ollama", "llama3.2", ollama_config(server.url)


def _standard(call: dict) -> None:
    assert call["type"] == "function" and call["id"]
    assert call["function"]["name"] == "get_weather"
    assert json.loads(call["function"]["arguments"]) == {"city": "Oslo"}


# -- the standard shape ----------------------------------------------------------------


async def test_tool_calls_come_back_in_the_standard_shape(upstream):
    server, provider, model, config = upstream
    server.scenario = Scenario(tool_calls=CALLS)
    async with host(config=config, installed=True) as h:
        params = {"model": model, "messages": ASK, "tools": [WEATHER], "tool_choice": "auto"}
        result = await h.invoke("llm/chat", params, provider=provider)
    assert result["finish_reason"] == "tool_calls"
    [call] = result["tool_calls"]
    _standard(call)
    assert server.requests[-1]["json"]["tools"] == [WEATHER]


async def test_streamed_tool_calls_are_deltas_and_the_final_chunk_assembles_them(upstream):
    server, provider, model, config = upstream
    server.scenario = Scenario(tool_calls=CALLS)
    async with host(config=config, installed=True) as h:
        params = {"model": model, "messages": ASK, "tools": [WEATHER]}
        chunks = [c async for c in h.stream("llm/chat", params, provider=provider)]
    deltas = [d for c in chunks if not c["done"] for d in c.get("tool_calls", [])]
    assert deltas[0]["id"] and deltas[0]["function"]["name"] == "get_weather"
    joined = "".join(d["function"].get("arguments", "") for d in deltas)
    assert json.loads(joined) == {"city": "Oslo"}
    final = chunks[-1]
    assert final["done"] and final["finish_reason"] == "tool_calls"
    [call] = final["tool_calls"]
    _standard(call)


async def test_the_provider_tools_loop_runs_the_calculator_for_an_upstream(upstream):
    server, provider, model, config = upstream
    server.scenario = Scenario(
        reply="It is 42", tool_calls=[{"name": "calc_multiply", "arguments": {"a": 6, "b": 7}}]
    )
    async with host(config=config, installed=True) as h:
        params = {"model": model, "messages": [{"role": "user", "content": "6 x 7?"}]}
        result = await h.invoke("llm/chat", {**params, "tools": ["calc/*"]}, provider=provider)
    assert result["response"] == "It is 42"
    [round1] = result["tool_rounds"]
    assert round1["calls"][0]["method"] == "calc/multiply"
    assert round1["calls"][0]["result"]["result"] == 42
    first, second = (r["json"] for r in server.requests if "messages" in r["json"])
    offered = {t["function"]["name"] for t in first["tools"]}
    assert {"calc_multiply", "calc_add"} <= offered
    tool_message = second["messages"][-1]
    assert tool_message["role"] == "tool" and '"result": 42' in tool_message["content"]
    assert second["messages"][-2]["tool_calls"][0]["function"]["name"] == "calc_multiply"


# -- provider tools with the offline echo model -------------------------------------------

CALL_6X7 = '/call calc_multiply {"a": 6, "b": 7}'


async def test_the_models_calls_run_and_the_answer_contains_the_result():
    async with host(config="plugins: {ollama: false, openai: false}", installed=True) as h:
        result = await h.invoke(
            "llm/chat",
            {
                "model": "echo",
                "messages": [{"role": "user", "content": CALL_6X7}],
                "tools": ["calc/*"],
            },
        )
    assert "42" in result["response"]
    assert result["tool_rounds"][0]["calls"][0]["arguments"] == {"a": 6, "b": 7}


async def test_a_tool_error_goes_back_to_the_model_as_its_result():
    text = '/call calc_divide {"a": 1, "b": 0}'
    async with host(config="plugins: {ollama: false, openai: false}", installed=True) as h:
        result = await h.invoke(
            "llm/chat",
            {"model": "echo", "messages": [{"role": "user", "content": text}], "tools": ["calc/*"]},
        )
    assert "division by zero" in result["response"]
    assert "division by zero" in result["tool_rounds"][0]["calls"][0]["error"]


async def test_a_loop_that_never_ends_stops_at_max_tool_rounds():
    text = '/loop calc_add {"a": 1, "b": 1}'
    async with host(config="plugins: {ollama: false, openai: false}", installed=True) as h:
        with pytest.raises(ToolRoundsExceeded, match="after 3 rounds") as info:
            await h.invoke(
                "llm/chat",
                {
                    "model": "echo",
                    "messages": [{"role": "user", "content": text}],
                    "tools": ["calc/add"],
                    "max_tool_rounds": 3,
                },
            )
    assert len(info.value.details["tool_rounds"]) == 3


async def _invoked_and_streamed(h, text: str, tools: list) -> list[dict]:
    """The echo model's answer to ``text`` with ``tools``: invoked, and streamed (its
    final chunk)."""
    params = {"model": "echo", "messages": [{"role": "user", "content": text}], "tools": tools}
    invoked = await h.invoke("llm/chat", params)
    streamed = [c async for c in h.stream("llm/chat", params)][-1]
    return [invoked, streamed]


async def test_a_call_of_a_name_nobody_offered_goes_back_to_the_model_as_an_error():
    text = "/call calc_frobnicate {}"
    async with host(config="plugins: {ollama: false, openai: false}", installed=True) as h:
        for result in await _invoked_and_streamed(h, text, ["calc/add", WEATHER]):
            assert not result.get("tool_calls")  # not handed to a caller who never offered it
            (call,) = result["tool_rounds"][0]["calls"]
            assert call["error"] == (
                "there is no tool named 'calc_frobnicate'; the tools are: calc_add, get_weather"
            )


async def test_a_round_that_calls_a_gleitzeit_method_and_a_callers_function_runs_ours():
    text = '/call calc_multiply {"a": 6, "b": 7}\n/call get_weather {"city": "Oslo"}'
    async with host(config="plugins: {ollama: false, openai: false}", installed=True) as h:
        for result in await _invoked_and_streamed(h, text, ["calc/*", WEATHER]):
            # The caller gets the one call it can run; the calculator's ran here.
            assert [c["function"]["name"] for c in result["tool_calls"]] == ["get_weather"]
            (ours,) = result["tool_rounds"][0]["calls"]
            assert ours["name"] == "calc_multiply" and ours["result"]["result"] == 42


async def test_an_unknown_tool_pattern_is_refused_naming_what_there_is():
    async with host(config="plugins: {ollama: false, openai: false}", installed=True) as h:
        with pytest.raises(InvalidParamsError, match="no method matches 'nope/"):
            await h.invoke(
                "llm/chat", {"model": "echo", "messages": ASK, "gleitzeit_tools": ["nope/*"]}
            )


class Meeting(gleitzeit.Provider):
    """Two calls that each wait for the other: they finish only when run in parallel."""

    name = "meet"
    kind = "tool"

    def __init__(self) -> None:
        super().__init__()
        self.arrived = 0
        self.both = asyncio.Event()

    @gleitzeit.method("meet/arrive")
    async def arrive(self, params) -> dict:
        self.arrived += 1
        if self.arrived == 2:
            self.both.set()
        await self.both.wait()
        return {"result": "met"}


async def test_several_calls_of_one_round_run_in_parallel():
    text = "/call meet_arrive {}\n/call meet_arrive {}"
    async with host(providers=[Meeting()], config="plugins: {ollama: false, openai: false}") as h:
        result = await asyncio.wait_for(
            h.invoke(
                "llm/chat",
                {
                    "model": "echo",
                    "messages": [{"role": "user", "content": text}],
                    "tools": ["meet/*"],
                },
            ),
            timeout=30,
        )
    assert [c["result"]["result"] for c in result["tool_rounds"][0]["calls"]] == ["met", "met"]


async def test_streamed_rounds_come_as_tool_call_and_tool_result_chunks_before_the_answer():
    async with host(config="plugins: {ollama: false, openai: false}", installed=True) as h:
        chunks = [
            c
            async for c in h.stream(
                "llm/chat",
                {
                    "model": "echo",
                    "messages": [{"role": "user", "content": CALL_6X7}],
                    "tools": ["calc/multiply"],
                },
            )
        ]
    kinds = [c.get("kind") for c in chunks]
    assert kinds[:2] == ["tool_call", "tool_result"]
    assert chunks[0]["tool_call"]["method"] == "calc/multiply"
    assert chunks[1]["tool_result"]["result"]["result"] == 42
    assert "42" in "".join(c["token"] for c in chunks)
    assert chunks[-1]["done"] and chunks[-1]["tool_rounds"][0]["round"] == 1


async def test_a_workflow_task_names_tools():
    flow = parse_workflow(
        textwrap.dedent(
            """\
            name: tools
            tasks:
              - id: ask
                method: llm/chat
                model: echo
                tools: ["calc/*"]
                parameters:
                  messages: [{role: user, content: '/call calc_multiply {"a": 6, "b": 7}'}]
            """
        )
    )
    async with host(config="plugins: {ollama: false, openai: false}", installed=True) as h:
        result = await Engine(h).run(flow)
    task = result.tasks["ask"]
    assert task.status == "completed", task.error
    assert "42" in task.result["response"]


# -- aliases and fallback chains, for every caller ------------------------------------------


async def test_an_alias_fallback_chain_moves_on_when_the_first_target_fails_retryably():
    async with FakeOpenAI() as server:
        extra = "models:\n  aliases:\n    smart: [openai/gpt-4o-mini, echo]\n"
        async with host(config=openai_config(server.url, extra), installed=True) as h:
            server.scenario = Scenario(status=503)
            result = await h.invoke("llm/chat", {"model": "smart", "messages": ASK})
            assert result["provider"] == "echo"
            streamed = [c async for c in h.stream("llm/chat", {"model": "smart", "messages": ASK})]
            assert streamed[-1]["provider"] == "echo"
            server.scenario = Scenario(reply="from openai")
            result = await h.invoke("llm/chat", {"model": "smart", "messages": ASK})
            assert (result["provider"], result["response"]) == ("openai", "from openai")
        assert any(r["json"].get("model") == "gpt-4o-mini" for r in server.requests)


async def test_a_chain_whose_every_target_fails_raises_the_last_failure():
    async with FakeOpenAI() as server:
        extra = "models:\n  aliases:\n    only: [openai/gpt-4o-mini]\n"
        async with host(config=openai_config(server.url, extra), installed=True) as h:
            server.scenario = Scenario(status=503)
            with pytest.raises(ProviderUnavailableError):
                await h.invoke("llm/chat", {"model": "only", "messages": ASK})


async def test_an_alias_whose_target_cannot_be_routed_names_the_alias():
    config = "models:\n  aliases:\n    broken: [nope/nothing]\n"
    async with host(config=config) as h:
        with pytest.raises(gleitzeit.RoutingError) as invoked:
            await h.invoke("llm/chat", {"model": "broken", "messages": ASK})
        with pytest.raises(gleitzeit.RoutingError) as streamed:
            async for _ in h.stream("llm/chat", {"model": "broken", "messages": ASK}):
                pass
    for failed in (invoked, streamed):
        assert "Model alias 'broken' -> nope/nothing: No provider named 'nope'" in str(failed.value)
        assert "models.aliases" in str(failed.value)


def test_providers_invoke_runs_provider_tools_and_aliases(run_cli):
    with ThreadedServer(FakeOpenAI()) as server:
        assert isinstance(server, FakeOpenAI)
        server.scenario = Scenario(
            reply="It is 42",
            tool_calls=[{"name": "calc_multiply", "arguments": {"a": 6, "b": 7}}],
        )
        (run_cli.workdir / "gleitzeit.yaml").write_text(
            "autoload_plugins: false\n"
            + openai_config(server.url, "  calculator: {}\nmodels: {aliases: {gpt: gpt-4o-mini}}\n")
        )
        args = {"model": "gpt", "messages": ASK, "tools": ["calc/*"]}
        out = run_cli(
            "providers", "invoke", "openai", "llm/chat", "--json", "--args", json.dumps(args)
        )
    assert out.code == 0, out.err
    result = out.json()
    assert result["response"] == "It is 42"
    assert result["tool_rounds"][0]["calls"][0]["result"]["result"] == 42


async def test_a_fallback_is_told_to_the_dispatchers_listeners():
    from gleitzeit._dispatch import CallListener

    moved: list[tuple[str, str | None, str | None]] = []

    class Recorder(CallListener):
        def fell_back(self, call, from_model, to_model):  # noqa: ANN001
            moved.append((call.request.method, from_model, to_model))

    async with FakeOpenAI() as server:
        extra = "models:\n  aliases:\n    smart: [openai/gpt-4o-mini, echo]\n"
        async with host(config=openai_config(server.url, extra), installed=True) as h:
            h.dispatcher.listeners.append(Recorder())
            server.scenario = Scenario(status=503)
            await h.invoke("llm/chat", {"model": "smart", "messages": ASK})
            [c async for c in h.stream("llm/chat", {"model": "smart", "messages": ASK})]
    assert moved == [("llm/chat", "gpt-4o-mini", "echo")] * 2
