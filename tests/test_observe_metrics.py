"""/metrics, /health and request logs of a real server: in-process calls, calls
through the Socket.IO clients' namespace, and a remote provider in its own process."""

from __future__ import annotations

import io
import json
import logging
import sys
from pathlib import Path

import aiohttp
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from observe_support import (  # noqa: E402
    TOKEN,
    provider_process,
    remote,
    scrape,
    start_server,
    value,
    wait_until,
)

import gleitzeit
from gleitzeit.logs import setup_logging
from gleitzeit.socketio.client import Client

N = 5
MESSAGES = {"messages": [{"role": "user", "content": "hello there"}]}


@pytest.fixture
async def server(tmp_path):
    srv = await start_server(tmp_path)
    yield srv
    await srv.stop(grace=0)


@pytest.fixture
def procs():
    started = []
    yield started
    for proc in started:
        proc.kill()
        proc.wait(10)


@pytest.fixture
def json_logs():
    """Every gleitzeit record of this process, as JSON lines in a buffer."""
    buffer = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level, logging.getLogger("gleitzeit").level)
    setup_logging("json", "INFO", stream=buffer)
    yield buffer
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved[0]:
        root.addHandler(handler)
    root.setLevel(saved[1])
    logging.getLogger("gleitzeit").setLevel(saved[2])


def lines(buffer: io.StringIO, logger: str = "gleitzeit.calls") -> list[dict]:
    out = [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]
    return [x for x in out if x["logger"] == logger]


async def test_counters_rise_by_exactly_n_for_each_path(server, procs, tmp_path):
    procs.append(provider_process("remote_providers:Worker", server.url, tmp_path))
    await wait_until(lambda: remote(server, "worker"), "the remote worker")
    (echo,) = server.host.registry.instances("echo")
    (worker,) = remote(server, "worker")
    echo_labels = {"provider": "echo", "instance": echo.id, "method": "llm/chat"}
    worker_labels = {"provider": "worker", "instance": worker.id, "method": "work/do"}

    before = await scrape(server.url)
    for _ in range(N):  # in-process: the server's own host
        await server.host.invoke("llm/chat", MESSAGES, model="echo")
    async with Client(server.url, token=TOKEN) as client:
        for i in range(N):  # a caller on /clients, to the remote provider
            assert (await client.invoke("work/do", {"id": i, "delay": 0}))["result"] == i
        with pytest.raises(gleitzeit.ToolError) as failed:
            await client.invoke("work/fail", provider="worker")
        chunks = [c async for c in client.stream("llm/chat", MESSAGES, model="echo")]
        during = await scrape(server.url)
    after = await scrape(server.url)

    def rise(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert rise("gleitzeit_requests_total", outcome="ok", **echo_labels) == N + 1
    assert rise("gleitzeit_request_duration_seconds_count", **echo_labels) == N + 1
    assert rise("gleitzeit_requests_total", outcome="ok", **worker_labels) == N
    assert rise("gleitzeit_request_duration_seconds_count", **worker_labels) == N
    assert (
        rise(
            "gleitzeit_requests_total", outcome="tool_error", provider="worker", method="work/fail"
        )
        == 1
    )
    assert failed.value.call_id  # the server's call id comes back with the error
    # The stream: one first-token time, and the usage the echo reports.
    assert chunks[-1]["done"]
    assert rise("gleitzeit_time_to_first_token_seconds_count", **echo_labels) == 1
    assert rise("gleitzeit_tokens_total", direction="out", **echo_labels) > 0
    # Nothing is left in flight, and the states read at scrape time are there.
    assert value(after, "gleitzeit_requests_in_flight") == 0
    assert value(after, "gleitzeit_instance_health", instance=worker.id, state="healthy") == 1
    assert value(after, "gleitzeit_connected_providers") == 1
    assert value(during, "gleitzeit_connected_clients", namespace="/clients") == 1
    assert value(after, "gleitzeit_connected_clients", namespace="/clients") == 0
    assert (
        rise(
            "gleitzeit_socketio_events_total", namespace="/clients", event="invoke", direction="in"
        )
        == N + 1
    )


async def test_an_unknown_model_is_counted_under_its_code_with_bounded_labels(server):
    with pytest.raises(gleitzeit.RoutingError):
        await server.host.invoke("llm/chat", MESSAGES, model="no-such-model-1234")
    samples = await scrape(server.url)
    assert value(samples, "gleitzeit_requests_total", outcome="no_provider") == 1
    assert not any(
        "no-such-model" in str(labels) for labels, _ in samples["gleitzeit_requests_total"]
    )


async def test_oversized_payloads_are_counted_as_refused(tmp_path):
    srv = await start_server(tmp_path, "", None)
    srv.host.config.server.max_payload_bytes = 100
    try:
        async with Client(srv.url, token=TOKEN) as client:
            with pytest.raises(gleitzeit.PayloadTooLargeError):
                await client.invoke(
                    "llm/chat", {"messages": [{"role": "user", "content": "x" * 500}]}
                )
        samples = await scrape(srv.url)
        assert (
            value(
                samples,
                "gleitzeit_payloads_refused_total",
                event="invoke",
                reason="payload_too_large",
            )
            == 1
        )
    finally:
        await srv.stop(grace=0)


async def test_metrics_and_health_need_the_token_and_health_lists_instances(server):
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{server.url}/metrics") as resp:
            assert resp.status == 401
        async with session.get(f"{server.url}/health") as resp:
            assert resp.status == 401
        async with session.get(f"{server.url}/healthz") as resp:
            assert resp.status == 200  # liveness stays open and cheap
        async with session.get(
            f"{server.url}/health",
            headers={"Authorization": f"Bearer {TOKEN}", "X-Request-ID": "probe-7"},
        ) as resp:
            assert resp.status == 200
            assert resp.headers["X-Request-ID"] == "probe-7"
            report = await resp.json()
    (row,) = [r for r in report["instances"] if r["name"] == "echo"]
    assert {"in_flight", "latency_ms", "last_heartbeat", "status"} <= set(row)


async def test_one_json_line_per_call_and_the_provider_logs_the_same_call_id(
    tmp_path, procs, json_logs
):
    srv = await start_server(tmp_path)
    provider_log = open(tmp_path / "provider.log", "w")
    try:
        procs.append(
            provider_process(
                "remote_providers:Worker",
                srv.url,
                tmp_path,
                "--log-format",
                "json",
                "--log-level",
                "info",
                stderr=provider_log,
            )
        )
        await wait_until(lambda: remote(srv, "worker"), "the remote worker")
        async with Client(srv.url, token=TOKEN) as client:
            await client.invoke("work/do", {"id": 1, "delay": 0}, call_id="caller-given-1")
            await client.invoke("work/do", {"id": 2, "delay": 0})
            with pytest.raises(gleitzeit.ToolError) as failed:
                await client.invoke("work/fail")
        await srv.host.invoke("llm/chat", MESSAGES, model="echo")
        ours = {x["call_id"] for x in lines(json_logs)}

        def provider_logged() -> bool:
            text = (tmp_path / "provider.log").read_text()
            return sum(cid in text for cid in ours) == 3

        await wait_until(provider_logged, "the provider's log lines")
    finally:
        await srv.stop(grace=0)
        for proc in procs:
            proc.kill()
            proc.wait(10)
        provider_log.close()

    calls = lines(json_logs)
    assert len(calls) == 4  # one line per call, whichever path it came by
    fields = {"call_id", "method", "provider", "instance", "model", "outcome", "ms", "retries"}
    assert all(fields <= set(line) for line in calls)
    assert all(line["level"] == "INFO" for line in calls)
    assert calls[0]["call_id"] == "caller-given-1"
    assert [c["outcome"] for c in calls] == ["ok", "ok", "tool_error", "ok"]
    assert calls[2]["call_id"] == failed.value.call_id
    assert calls[3]["provider"] == "echo" and calls[3]["model"] == "echo"
    assert TOKEN not in json_logs.getvalue()

    theirs = [
        json.loads(x)
        for x in (tmp_path / "provider.log").read_text().splitlines()
        if x.startswith("{")
    ]
    served = {x["call_id"] for x in theirs if x.get("logger") == "gleitzeit.provider.calls"}
    assert {calls[0]["call_id"], calls[1]["call_id"], calls[2]["call_id"]} <= served


def test_secret_values_of_the_config_are_masked_in_log_lines():
    from gleitzeit.logs import JsonFormatter, add_secrets_from

    add_secrets_from({"plugins": {"openai": {"api_key": "sk-very-secret-123"}}})
    record = logging.LogRecord(
        "gleitzeit.x", logging.INFO, __file__, 1, "upstream said sk-very-secret-123", (), None
    )
    assert "sk-very-secret-123" not in JsonFormatter().format(record)


async def test_a_gateway_stream_read_to_its_end_is_counted_ok(server):
    (echo,) = server.host.registry.instances("echo")
    labels = {"provider": "echo", "instance": echo.id, "method": "llm/chat"}
    before = await scrape(server.url)
    body = {"model": "echo", "stream": True, **MESSAGES}
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{server.url}/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {TOKEN}"},
        ) as resp:
            assert resp.status == 200
            text = await resp.text()
    assert text.rstrip().endswith("data: [DONE]")
    after = await scrape(server.url)
    ok = value(after, "gleitzeit_requests_total", outcome="ok", **labels) - value(
        before, "gleitzeit_requests_total", outcome="ok", **labels
    )
    cancelled = value(after, "gleitzeit_requests_total", outcome="cancelled", **labels) - value(
        before, "gleitzeit_requests_total", outcome="cancelled", **labels
    )
    assert (ok, cancelled) == (1, 0)
