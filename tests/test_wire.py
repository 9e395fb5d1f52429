"""The wire protocol's edges (items 33-41 of the defects issue): every request answered,
schemas enforced, registrations consistent, payloads bounded both ways."""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from pathlib import Path

import pytest
import socketio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_remote import (  # noqa: E402, F401 - fixtures
    HERE,
    PROVIDER_TOKEN,
    TOKEN,
    procs,
    remote,
    serve,
    wait_until,
)

import gleitzeit  # noqa: E402
from gleitzeit.socketio.client import Client  # noqa: E402

P = "/providers"


async def raw_provider(url: str) -> socketio.AsyncClient:
    sio = socketio.AsyncClient(reconnection=False)
    await sio.connect(url, namespaces=[P], auth={"token": PROVIDER_TOKEN}, transports=["websocket"])
    return sio


async def raw_client(url: str) -> socketio.AsyncClient:
    sio = socketio.AsyncClient(reconnection=False)
    await sio.connect(url, namespaces=["/clients"], auth={"token": TOKEN}, transports=["websocket"])
    return sio


# 33 -------------------------------------------------------------------------------------


async def test_33_doc_example_without_health_handler_stays_healthy(serve, monkeypatch):  # noqa: F811
    text = (HERE.parent / "docs" / "protocol.md").read_text()
    example = re.search(
        r"The same in Python without Gleitzeit.*?```python\n(.*?)```", text, re.S
    ).group(1)
    assert '"health"' not in example  # the minimal example has no health handler
    server = await serve("heartbeat_interval: 0.2")
    code = example.replace('"http://127.0.0.1:8000"', repr(server.url)).replace(
        "asyncio.run(main())", ""
    )
    namespace: dict = {"__name__": "doc_example"}
    monkeypatch.setenv("GLEITZEIT_TOKEN", PROVIDER_TOKEN)
    exec(compile(code, "protocol.md", "exec"), namespace)
    task = asyncio.ensure_future(namespace["main"]())
    try:
        await wait_until(lambda: remote(server, "upper"), "the example to register")
        (inst,) = remote(server, "upper")
        for _ in range(2):  # two rounds of the health checks the server runs each interval
            await server.host.check_health()
            assert inst.health.status == "healthy", inst.health
        async with Client(server.url, token=TOKEN) as client:
            assert await client.invoke("text/upper", {"text": "hi"}) == {"result": "HI"}
    finally:
        await namespace["sio"].disconnect()
        task.cancel()


# 34 -------------------------------------------------------------------------------------


async def test_34_missing_payloads_and_unknown_events_are_answered(serve, caplog):  # noqa: F811
    server = await serve()
    prov = await raw_provider(server.url)
    cli = await raw_client(server.url)
    try:
        with caplog.at_level(logging.WARNING):
            ack = await prov.call("register", namespace=P)
            assert ack["ok"] is False and ack["error"]["code"] == "invalid_message"
            for _ in range(3):
                await prov.emit("stream:data", namespace=P)
                await prov.emit("heartbeat", {"in_flight": -1}, namespace=P)
            ack = await prov.call("nonsense", {"x": 1}, namespace=P)
            assert ack["ok"] is False and "unknown event 'nonsense'" in ack["error"]["message"]
            for event in ("invoke", "stream:start", "stream:cancel"):
                ack = await cli.call(event, namespace="/clients")
                assert ack["ok"] is False and ack["error"]["code"] == "invalid_message", event
            ack = await cli.call("what", (1, 2), namespace="/clients")
            assert ack["ok"] is False and ack["error"]["code"] == "invalid_message"
            # still connected, and a normal call works
            ack = await prov.call(
                "register", {"name": "raw", "kind": "tool", "methods": {"raw/x": {}}}, namespace=P
            )
            assert ack["ok"] is True
        logged = [r.getMessage() for r in caplog.records]
        assert sum("stream:data" in m for m in logged) == 1  # once per connection
        assert any("heartbeat" in m and "in_flight" in m for m in logged)
        assert not any("Traceback" in m or "TypeError" in m for m in logged)
        assert not [r for r in caplog.records if r.exc_info]
    finally:
        await prov.disconnect()
        await cli.disconnect()


# 35 and issue item 5 -------------------------------------------------------------------


async def test_35_provider_replies_over_the_limit_are_payload_too_large(serve, procs):  # noqa: F811
    server = await serve("max_payload_bytes: 1000000")
    procs.provider("remote_providers:Worker", server.url)
    await wait_until(lambda: remote(server, "worker"), "registration")
    (worker,) = remote(server, "worker")
    async with Client(server.url, token=TOKEN) as client:
        with pytest.raises(gleitzeit.PayloadTooLargeError, match="limit is 1,000,000"):
            await client.invoke("work/big", {"size": 50_000_000})  # 50 MB result
        assert remote(server, "worker") == [worker]  # still connected
        assert (await client.invoke("work/do", {"id": 5}))["result"] == 5

    # A provider that does not know the limit: the server refuses its 1.5 MB reply.
    prov = await raw_provider(server.url)
    prov.on("invoke", lambda msg: {"ok": True, "result": {"r": "x" * 1_500_000}}, namespace=P)
    try:
        ack = await prov.call(
            "register", {"name": "fat", "kind": "tool", "methods": {"fat/get": {}}}, namespace=P
        )
        assert ack["ok"] and ack["max_payload_bytes"] == 1_000_000
        async with Client(server.url, token=TOKEN) as client:
            with pytest.raises(gleitzeit.PayloadTooLargeError, match="reply of fat@"):
                await client.invoke("fat/get")
        assert remote(server, "fat")
    finally:
        await prov.disconnect()
    # The engine-level limit the handshake announces (maxPayload): documented.
    doc = (HERE.parent / "docs" / "protocol.md").read_text()
    assert "max_payload_bytes * 4 + 65536" in doc
    assert server.sio.eio.max_http_buffer_size == 1_000_000 * 4 + 65536


# 36 -------------------------------------------------------------------------------------


async def test_36_params_are_checked_against_the_registered_schema(serve):  # noqa: F811
    server = await serve()
    seen: list = []
    prov = await raw_provider(server.url)
    prov.on("invoke", lambda msg: seen.append(msg) or {"ok": True, "result": {}}, namespace=P)
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer", "minimum": 1}},
        "required": ["n"],
    }
    try:
        ack = await prov.call(
            "register",
            {"name": "strict", "kind": "tool", "methods": {"s/do": {"params_schema": schema}}},
            namespace=P,
        )
        assert ack["ok"], ack
        async with Client(server.url, token=TOKEN) as client:
            with pytest.raises(gleitzeit.InvalidParamsError, match="'n' is a required"):
                await client.invoke("s/do", {})
            with pytest.raises(gleitzeit.InvalidParamsError, match="n: 0 is less than"):
                await client.invoke("s/do", {"n": 0})
            assert seen == []
            await client.invoke("s/do", {"n": 2})
            assert [m["params"] for m in seen] == [{"n": 2}]
            assert seen[0]["call_id"] and seen[0]["deadline"] > 0
        bad = {"name": "b", "kind": "tool", "methods": {"b/x": {"params_schema": {"type": 5}}}}
        ack = await prov.call("register", bad, namespace=P)
        assert not ack["ok"] and "b/x" in ack["error"]["message"]
    finally:
        await prov.disconnect()


# 37 -------------------------------------------------------------------------------------


async def test_37_instances_of_one_provider_agree_and_protocol_is_checked(serve):  # noqa: F811
    server = await serve()
    a, b = await raw_provider(server.url), await raw_provider(server.url)
    reg = {"name": "same", "kind": "tool", "methods": {"same/a": {}, "same/b": {}}}
    try:
        assert (await a.call("register", reg, namespace=P))["ok"]
        other = {**reg, "kind": "llm", "methods": {"same/a": {}, "same/c": {}}}
        ack = await b.call("register", other, namespace=P)
        msg = ack["error"]["message"]
        assert not ack["ok"] and "kind 'llm'" in msg and "same/c" in msg and "same/b" in msg
        ack = await b.call("register", {**reg, "protocol": 99}, namespace=P)
        assert not ack["ok"] and "unsupported protocol 99" in ack["error"]["message"]
        assert (await b.call("register", reg, namespace=P))["ok"]
        assert len(remote(server, "same")) == 2
    finally:
        await a.disconnect()
        await b.disconnect()


# 39, 40 --------------------------------------------------------------------------------


async def test_39_a_provider_refuses_a_stream_with_stream_error(serve):  # noqa: F811
    server = await serve()
    prov = await raw_provider(server.url)

    async def refuse(msg):
        error = {"code": "tool_error", "message": "no streams today", "retryable": False}
        await prov.emit(
            "stream:error", {"stream_id": msg["stream_id"], "error": error}, namespace=P
        )

    prov.on("stream:start", refuse, namespace=P)
    reg = {"name": "nostream", "kind": "llm", "methods": {"llm/x": {"streaming": True}}}
    try:
        assert (await prov.call("register", reg, namespace=P))["ok"]
        async with Client(server.url, token=TOKEN) as client:
            with pytest.raises(gleitzeit.ToolError, match="no streams today"):
                async for _ in client.stream("llm/x"):
                    pass
    finally:
        await prov.disconnect()


async def test_40_registration_decides_what_streams(serve, procs):  # noqa: F811
    server = await serve()
    procs.provider("remote_providers:Worker", server.url)
    procs.provider("remote_providers:Ticker", server.url)
    await wait_until(lambda: remote(server, "worker") and remote(server, "ticker"), "both")
    async with Client(server.url, token=TOKEN) as client:
        with pytest.raises(gleitzeit.MethodNotFoundError, match="does not stream"):
            async for _ in client.stream("work/do", {"id": 1}):
                pass
        # Invoke of a streaming method: the runner collects the stream.
        out = await client.invoke("llm/generate", {"n": 3}, provider="ticker")
        assert out["response"] == "t0 t1 t2 "


# 41 -------------------------------------------------------------------------------------


async def test_41_providers_and_health_requests_have_schemas(serve):  # noqa: F811
    server = await serve()
    cli = await raw_client(server.url)
    try:
        ack = await cli.call("health", {"name": 5}, namespace="/clients")
        assert ack["error"]["code"] == "invalid_message" and "name" in ack["error"]["message"]
        ack = await cli.call("providers", {"check": "yes please"}, namespace="/clients")
        assert ack["error"]["code"] == "invalid_message" and "check" in ack["error"]["message"]
        assert (await cli.call("providers", namespace="/clients"))["ok"]
    finally:
        await cli.disconnect()
    doc = (HERE.parent / "docs" / "protocol.md").read_text()
    assert "starting with a letter or digit" in doc


# issue item 7: malformed acks count against the instance ---------------------------------


async def test_malformed_acks_cool_the_instance_down(serve):  # noqa: F811
    server = await serve()
    prov = await raw_provider(server.url)
    prov.on("invoke", lambda msg: "garbage", namespace=P)
    try:
        reg = {"name": "broken", "kind": "tool", "methods": {"broken/x": {}}}
        assert (await prov.call("register", reg, namespace=P))["ok"]
        (inst,) = remote(server, "broken")
        async with Client(server.url, token=TOKEN) as client:
            for _ in range(3):
                with pytest.raises(gleitzeit.ProviderError, match="malformed"):
                    await client.invoke("broken/x")
        assert inst.cooldown_until > 0 and inst.consecutive_failures >= 3
    finally:
        await prov.disconnect()


def test_the_hand_checked_invoke_agrees_with_the_model():
    import random

    from gleitzeit.errors import InvalidMessage
    from gleitzeit.socketio.wire import Invoke, parse, plain_invoke

    values = [
        None, True, 0, 1, -1, 0.5, 86400, 86401, float("nan"), float("inf"), "", "a",
        "x" * 65, "x" * 161, "x" * 257, "calc/add", "a\n", "é", "1.5", [], {}, {"a": 1},
    ]  # fmt: skip
    keys = ["method", "params", "provider", "model", "capability", "timeout", "call_id"]
    keys += ["deadline", "extra"]
    rng = random.Random(7)
    for _ in range(20_000):
        data = {k: rng.choice(values) for k in rng.sample(keys, rng.randint(0, 4))}
        if rng.random() < 0.7:
            data["method"] = "calc/add"
        if rng.random() < 0.5:
            data["params"] = {"a": 1}
        fast = plain_invoke(data)
        if fast is None:
            continue  # the model decides
        try:
            model = parse(Invoke, data, "invoke")
        except InvalidMessage as exc:
            raise AssertionError(f"accepted by hand, refused by the model: {data!r}") from exc
        assert fast._asdict() == model.model_dump(), data
        assert [type(v) for v in fast] == [type(getattr(model, f)) for f in fast._fields], data


def test_a_call_id_with_a_trailing_newline_is_not_taken():
    from gleitzeit.request import valid_call_id
    from gleitzeit.socketio.wire import plain_invoke

    assert valid_call_id("abc-1") == "abc-1"
    assert valid_call_id("abc-1\n") is None  # it would end a log line early
    assert plain_invoke({"method": "calc/add", "call_id": "abc-1\n"}) is None


def test_packets_put_the_same_text_on_the_wire_as_python_socketio():
    from socketio import packet

    from gleitzeit.socketio.packets import Packet

    cases = [
        (packet.EVENT, ["invoke", {"method": "a/b", "params": {"x": [1, 2.5, None, "é"]}}], P, 7),
        (packet.EVENT, ["stream:end", {"stream_id": "s1"}], "/", None),
        (packet.ACK, [{"ok": True, "result": {}}], "/clients", 12),
        (packet.ACK, [], "/clients", 3),
        (packet.EVENT, ["blob", {"data": b"\x00\x01"}], P, 4),  # binary attachments
        (packet.ACK, [{"data": bytearray(b"xy")}], None, 5),
        (packet.CONNECT, {"sid": "abc"}, P, None),
        (packet.DISCONNECT, None, P, None),
    ]
    for kind, data, namespace, ack_id in cases:
        theirs = packet.Packet(kind, data=data, namespace=namespace, id=ack_id)
        ours = Packet(kind, data=data, namespace=namespace, id=ack_id)
        assert ours.packet_type == theirs.packet_type
        assert ours.encode() == theirs.encode()
        text = theirs.encode()
        if isinstance(text, str):
            back, their_back = Packet(encoded_packet=text), packet.Packet(encoded_packet=text)
            assert (back.packet_type, back.namespace, back.id, back.data) == (
                their_back.packet_type,
                their_back.namespace,
                their_back.id,
                their_back.data,
            )
    received = [
        '2/providers,5["invoke",{"a":1}]',
        '3/clients,[{"ok":true}]',
        '25["x"]',
        '2/a?x=1,5["x"]',
        "3/p," + "1" * 50 + "[1]",
        "3/p," + "1" * 120 + "[1]",
        '51-/p,5["x",{"_placeholder":true,"num":0}]',
        "2/p,5",
        '2/p,5["x"',
        '2/p,007["x",-1e5]',
    ]
    for text in received:
        read = []
        for cls in (packet.Packet, Packet):
            try:
                got = cls(encoded_packet=text)
                read.append(
                    (got.packet_type, got.namespace, got.id, got.data, got.attachment_count)
                )
            except ValueError as exc:
                read.append((type(exc).__name__, str(exc)))
        assert read[0] == read[1], text
    with pytest.raises(TypeError, match="not JSON serializable"):
        Packet(packet.EVENT, data=["x", {"when": object()}]).encode()
    with pytest.raises(ValueError, match="too large"):
        Packet(encoded_packet='2["x",' + "1" * 101 + "]")


def test_size_bounds_from_the_received_text_are_never_below_the_size():
    from socketio import packet

    from gleitzeit.socketio.packets import Packet, encode_once, size_bound
    from gleitzeit.socketio.wire import payload_size

    texts = [
        '2/clients,3["invoke",{"method":"a/b","params":{"x":1}}]',
        '2["invoke",{"params":{"n":1e15,"s":"\U0001f600\U0001f600","t":"\\ud83d\\ude00"}}]',
        '3/providers,9[{"ok" : true , "result" : {"big": 1E300, "neg": -0.0}}]',
    ]
    for text in texts:
        received = Packet(encoded_packet=text)
        payload = received.data[-1]
        bound = size_bound(payload)
        assert bound is not None and bound >= payload_size(payload)
        assert size_bound(dict(payload)) is None  # not what was received
    reply = {"ok": True, "result": {"text": "é"}}
    text = encode_once(reply)
    assert len(text) == payload_size(reply)
    ours = Packet(packet.ACK, namespace=P, id=4, data=[reply]).encode()
    assert ours == packet.Packet(packet.ACK, namespace=P, id=4, data=[reply]).encode()
    other = {"ok": True}  # the encoded text goes to its own payload only
    encode_once(reply)
    assert Packet(packet.ACK, id=5, data=[other]).encode() == '35[{"ok":true}]'
