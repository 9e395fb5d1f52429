"""The V4 format in-process: refusals with file:line, retry switches and backoffs, model
aliases, MCP-style methods, llm/vision checks and the priority slots."""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

import gleitzeit
from gleitzeit.aliases import ModelsConfig, Target, resolve, resolve_method
from gleitzeit.config import parse_config
from gleitzeit.host import Host
from gleitzeit.plugins import Plugins
from gleitzeit.workflows import Engine, WorkflowError, parse_workflow
from gleitzeit.workflows.engine import PrioritySlots
from gleitzeit.workflows.models import RetryPolicy
from gleitzeit.workflows.runner import check_methods


def wf(text: str):
    return parse_workflow(textwrap.dedent(text), source=Path("flow.yaml"))


def problems(text: str) -> str:
    with pytest.raises(WorkflowError) as info:
        wf(text)
    return "\n".join([str(info.value), *info.value.problems])


class Tools(gleitzeit.Provider):
    """Stands in for an MCP server's tools: method names with dots and slashes."""

    name = "mcp"
    kind = "tool"

    def __init__(self, settings=None, *, name=None, failures=0, error=None):
        super().__init__(settings, name=name)
        self.failures = failures
        self.error = error or gleitzeit.ProviderUnavailableError
        self.calls = 0

    @gleitzeit.method("mcp/tool.echo")
    async def echo(self, params):
        return {"response": params["message"]}

    @gleitzeit.method("mcp/tool.add")
    async def add(self, params):
        return {"result": params["a"] + params["b"]}

    @gleitzeit.method("mcp/tools/list")
    async def tools(self, params):
        return {"result": ["echo", "add"]}

    @gleitzeit.method("mcp/flaky")
    async def flaky(self, params):
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error(f"not yet ({self.calls})")
        return {"result": self.calls}


def host_with(*providers, config: str = "{}"):
    cfg = parse_config(config)
    return Host(cfg, plugins=Plugins.load(cfg), providers=list(providers))


# -- refusals ---------------------------------------------------------------------------


def test_v4_refusals_name_the_line_and_what_to_write_instead():
    text = problems(
        """\
        name: refusals
        version: 1
        tasks:
          - name: a
            method: llm/chat
            protocol: python/v1
            priority: whenever
            params: {messages: [{role: user, content: "${workflow.id}"}]}
          - name: b
            method: calc/add
            retry: {backoff: custom}
            params: {a: 1, b: 2}
        """
    )
    assert (
        "flow.yaml:6: protocol 'python/v1' does not match method 'llm/chat'; the method's "
        "prefix picks the provider" in text
    )
    assert "flow.yaml:7: priority 'whenever' is not one of low, normal, high, urgent" in text
    assert "flow.yaml:8: task 'a': ${workflow.id}: of the workflow only variables" in text
    assert "flow.yaml:11: backoff: custom ran a Python function in the original" in text
    assert "delays: [1, 5, 30]" in text


def test_v4_unknown_keys_and_bad_values_have_lines_and_suggestions():
    text = problems(
        """\
        name: typo
        version: 1
        tasks:
          - name: a
            method: calc/add
            parmas: {a: 1}
            timeout: -1
        """
    )
    assert "flow.yaml:6: tasks[0].parmas: unknown key 'parmas'; did you mean 'params'?" in text
    assert "flow.yaml:7: tasks[0].timeout: Input should be greater than 0" in text


def test_v4_errors_found_after_normalising_point_at_the_original_lines():
    text = problems(
        """\
        name: deps
        version: 1
        tasks:
          - name: first
            method: calc/add
            params: {a: 1, b: 2}
          - name: second
            method: calc/add
            dependencies: [frist]
            params: {a: "${first.result}", b: 1}
        """
    )
    assert "flow.yaml:9: task 'second': unknown dependency 'frist'; did you mean 'first'?" in text
    assert "flow.yaml:10: task 'second': ${first.result} refers to task 'first'" in text


def test_batch_needs_a_template_and_one_source_of_files():
    assert "type: batch needs template:" in problems(
        "name: b\ntype: batch\nbatch: {directory: x}\n"
    )
    assert "batch: give exactly one of directory (with pattern), files or image_paths" in problems(
        "name: b\ntype: batch\nbatch: {directory: x, files: [a]}\ntemplate: {method: llm/chat}\n"
    )
    assert "has no tasks: list" in problems(
        "name: b\ntype: batch\nbatch: {files: [a]}\ntemplate: {method: llm/chat}\n"
        "tasks: [{id: x, method: calc/add}]\n"
    )


def test_params_and_parameters_together_are_refused():
    assert "give params or parameters, not both" in problems(
        "version: 1\ntasks: [{name: a, method: calc/add, params: {}, parameters: {}}]\n"
    )


def test_native_files_with_names_and_priorities_stay_native():
    flow = wf("tasks: [{id: a, name: First one, method: calc/add, priority: high}]")
    assert flow.format == "native" and flow.tasks["a"].name == "First one"
    assert wf("tasks: [{name: a, method: calc/add}]").format == "v4"
    assert wf("tasks: [{id: a, method: calc/add, priority: 2}]").format == "v4"


def test_references_to_a_dependency_of_a_dependency_are_read():
    flow = wf(
        """\
        tasks:
          - {id: a, method: calc/add}
          - {id: b, method: calc/add, dependencies: [a]}
          - {id: c, method: calc/add, dependencies: [b], parameters: {a: "${a.result}"}}
        """
    )
    assert flow.reads["c"] == ["b", "a"]


# -- retries ------------------------------------------------------------------------------


def test_linear_and_custom_backoff():
    linear = RetryPolicy(backoff="linear", base_delay=2, max_delay=5, jitter=0)
    assert [linear.delay(a, 0.5) for a in (1, 2, 3)] == [2, 4, 5]
    custom = RetryPolicy(backoff="custom", delays=[0.5, 3], jitter=0)
    assert [custom.delay(a, 0.5) for a in (1, 2, 3)] == [0.5, 3, 3]
    with pytest.raises(ValueError, match="backoff: custom needs delays"):
        RetryPolicy(backoff="custom")


async def test_v4_retry_defaults_to_three_tries_and_jitter_true_is_half():
    flow = wf(
        """\
        version: 1
        tasks:
          - {name: f, method: mcp/flaky, retry: {base_delay: 0, jitter: true}}
        """
    )
    retry = flow.tasks["f"].retry
    assert retry.max_attempts == 3 and retry.jitter == 0.5 and retry.max_delay == 300
    tools = Tools(failures=2)
    async with host_with(tools, config="routing: {retries: 0}") as host:
        result = await Engine(host).run(flow)
    assert result.tasks["f"].status == "completed" and tools.calls == 3


@pytest.mark.parametrize(
    ("switch", "error", "tries"),
    [
        ("retry_on_provider_error: false", gleitzeit.ToolError, 1),
        ("retry_on_provider_error: true", gleitzeit.ToolError, 3),
        ("retry_on_validation_error: true", gleitzeit.InvalidParamsError, 3),
        ("retry_on_validation_error: false", gleitzeit.InvalidParamsError, 1),
    ],
)
async def test_retry_on_switches_choose_what_is_tried_again(switch, error, tries):
    flow = wf(
        f"""\
        version: 1
        tasks:
          - {{name: f, method: mcp/flaky, retry: {{max_attempts: 3, base_delay: 0, {switch}}}}}
        """
    )
    tools = Tools(failures=5, error=error)
    async with host_with(tools, config="routing: {retries: 0}") as host:
        result = await Engine(host).run(flow)
    assert result.tasks["f"].status == "failed"
    assert tools.calls == tries


async def test_retry_on_timeout_false_does_not_retry_a_timed_out_try():
    class Slow(gleitzeit.Provider):
        name = "slow"
        kind = "tool"
        calls = 0

        @gleitzeit.method("slow/wait")
        async def wait(self, params):
            type(self).calls += 1
            await asyncio.Event().wait()  # never set: the task's timeout ends it

    flow = wf(
        """\
        version: 1
        tasks:
          - {name: s, method: slow/wait, timeout: 0.05,
             retry: {max_attempts: 3, base_delay: 0, retry_on_timeout: false}}
        """
    )
    async with host_with(Slow(), config="routing: {retries: 0}") as host:
        result = await Engine(host).run(flow)
    assert result.tasks["s"].status == "failed" and Slow.calls == 1


# -- MCP-style methods, aliases, vision -----------------------------------------------------


async def test_mcp_methods_are_ordinary_methods_to_workflows():
    flow = wf(
        """\
        name: tools
        tasks:
          - {id: echo_test, name: Echo, method: mcp/tool.echo, parameters: {message: hi}}
          - {id: listing, method: mcp/tools/list, priority: normal}
          - id: add
            method: mcp/tool.add
            dependencies: [echo_test]
            parameters: {a: 100, b: 23}
          - id: joined
            method: mcp/tool.echo
            dependencies: [add]
            parameters: {message: "${echo_test.response} ${add.result}"}
        """
    )
    async with host_with(Tools()) as host:
        await check_methods(flow, host)
        result = await Engine(host).run(flow)
    assert result.tasks["joined"].result == {"response": "hi 123"}
    assert result.tasks["listing"].result == {"result": ["echo", "add"]}


def test_alias_values_resolve_to_targets():
    config = ModelsConfig.model_validate(
        {
            "aliases": {
                "llama3.2": "echo",
                "gpt": "openai/gpt-4o-mini",
                "smart": ["openai/gpt-4o", "echo"],
                "odd": {"provider": "hf", "model": "org/with/slashes"},
            }
        }
    )
    assert resolve("llama3.2:latest", config) == [Target(None, "echo")]
    assert resolve("gpt", config) == [Target("openai", "gpt-4o-mini")]
    assert resolve("smart", config) == [Target("openai", "gpt-4o"), Target(None, "echo")]
    assert resolve("odd", config) == [Target("hf", "org/with/slashes")]
    assert resolve("plain", config) == [Target(None, "plain")]


async def test_a_fallback_chain_moves_on_when_a_target_cannot_be_served():
    flow = wf(
        """\
        tasks:
          - {id: a, method: llm/chat, model: smart,
             parameters: {messages: [{role: user, content: hello}]}}
        """
    )
    config = "models: {aliases: {smart: [nowhere/big, echo]}}"
    async with host_with(config=config) as host:
        result = await Engine(host).run(flow)
    assert result.tasks["a"].result["response"] == "hello"
    assert result.tasks["a"].result["provider"] == "echo"


def test_llm_vision_is_llm_chat_with_the_vision_capability():
    method, params, capability = resolve_method(
        "llm/vision", {"prompt": "what?", "images": ["aGk="], "model": "llava"}
    )
    assert (method, capability) == ("llm/chat", "vision")
    assert params == {
        "model": "llava",
        "messages": [{"role": "user", "content": "what?", "images": ["aGk="]}],
    }
    assert resolve_method("llm/chat", {"x": 1}) == ("llm/chat", {"x": 1}, None)


async def test_llm_vision_is_refused_where_no_provider_declares_vision():
    flow = wf("tasks: [{id: look, method: llm/vision, parameters: {prompt: hi}}]")
    blind = {"name": "blind", "methods": ["llm/chat"], "capabilities": ["chat"]}

    async def providers(*, check: bool = False) -> list[dict]:
        return [blind]

    with pytest.raises(WorkflowError) as info:
        await check_methods(flow, SimpleNamespace(providers=providers))
    assert (
        "llm/vision is llm/chat on a provider with the 'vision' capability, and no "
        in (info.value.problems[0])
    )


# -- priority slots -----------------------------------------------------------------------


async def test_priority_slots_serve_the_most_urgent_waiter_first():
    slots = PrioritySlots(1)
    await slots.acquire(0)
    order: list[str] = []

    async def wait(name: str, priority: int) -> None:
        await slots.acquire(priority)
        order.append(name)
        slots.release()

    waiters = [
        asyncio.ensure_future(wait(n, p)) for n, p in [("low", 0), ("urgent", 3), ("high", 2)]
    ]
    await asyncio.sleep(0)  # let each reach the queue
    slots.release()
    await asyncio.gather(*waiters)
    assert order == ["urgent", "high", "low"]


async def test_a_cancelled_waiter_passes_its_slot_on():
    slots = PrioritySlots(1)
    await slots.acquire(1)
    first = asyncio.ensure_future(slots.acquire(3))
    second = asyncio.ensure_future(slots.acquire(1))
    await asyncio.sleep(0)
    slots.release()  # handed to `first` ...
    first.cancel()  # ... which is cancelled before it runs
    await asyncio.gather(first, return_exceptions=True)
    await asyncio.wait_for(second, 5)
    assert second.done() and not second.cancelled()
