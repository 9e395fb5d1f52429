"""A hypothesis fuzz of every event on both namespaces, against a real server: every
request that asks for an ack is answered (ok, or an error naming what is wrong), no
handler raises in the server, and a normal call still works afterwards."""

from __future__ import annotations

import asyncio
import logging

import socketio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest_plugins = ["gleitzeit.testing.fixtures"]

CLIENT_EVENTS = [
    "invoke",
    "stream:start",
    "stream:cancel",
    "stream:credit",
    "providers",
    "health",
    "no-such-event",
]
PROVIDER_EVENTS = [
    "register",
    "heartbeat",
    "stream:data",
    "stream:end",
    "stream:error",
    "no-such-event",
]
ACKED = {"invoke", "stream:start", "stream:cancel", "providers", "health", "register"}

scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
method_names = st.sampled_from(["calc/add", "llm/chat", "add", "x/y", "nope", ""]) | st.text(
    max_size=8
)
fields = {
    "method": method_names | json_values,
    "params": st.dictionaries(
        st.sampled_from(["a", "b", "messages", "file_path", "x"]), json_values, max_size=3
    )
    | json_values,
    "stream_id": st.text(min_size=0, max_size=70) | json_values,
    "provider": st.sampled_from(["calculator", "echo", "nobody"]) | json_values,
    "model": json_values,
    "timeout": st.floats(-1, 5) | json_values,
    "window": st.integers(-2, 20000) | json_values,
    "n": st.integers(-2, 20000) | json_values,
    "check": json_values,
    "name": st.sampled_from(["fuzz", "calculator", "bad name"]) | json_values,
    "kind": st.sampled_from(["tool", "llm", "robot"]) | json_values,
    "methods": st.dictionaries(st.sampled_from(["fz/a", "fz/b", "bad"]), json_values, max_size=2)
    | json_values,
    "protocol": st.integers(0, 100) | json_values,
    "chunk": json_values,
    "error": json_values,
    "in_flight": json_values,
}
payloads = (
    st.fixed_dictionaries({}, optional=fields)
    | json_values
    | st.just(None)
    | st.tuples(json_values, json_values)
)


def _call(loop, sio: socketio.AsyncClient, event: str, payload, namespace: str):
    if payload is None:
        return loop.run_until_complete(sio.call(event, namespace=namespace, timeout=15))
    return loop.run_until_complete(sio.call(event, payload, namespace=namespace, timeout=15))


def _check(event: str, reply) -> None:
    if event in ACKED or event == "no-such-event":
        assert isinstance(reply, dict) and isinstance(reply.get("ok"), bool), (event, reply)
    if isinstance(reply, dict) and reply.get("ok") is False:
        error = reply["error"]
        assert error["code"] and error["message"], reply
        if error["code"] == "internal_error":
            raise AssertionError(f"{event}: internal error {reply}")


def test_fuzz_every_event_on_both_namespaces(gleitzeit_server, caplog):
    url = gleitzeit_server.url
    # The server runs in its own thread; this test drives its clients on its own loop.
    loop = asyncio.new_event_loop()
    clients = socketio.AsyncClient(reconnection=False)
    providers = socketio.AsyncClient(reconnection=False)
    run = loop.run_until_complete
    run(
        clients.connect(
            url,
            namespaces=["/clients"],
            auth={"token": gleitzeit_server.token},
            transports=["websocket"],
        )
    )
    run(
        providers.connect(
            url,
            namespaces=["/providers"],
            auth={"token": gleitzeit_server.provider_token},
            transports=["websocket"],
        )
    )

    @settings(
        max_examples=150,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(
        side=st.booleans(),
        client_event=st.sampled_from(CLIENT_EVENTS),
        provider_event=st.sampled_from(PROVIDER_EVENTS),
        payload=payloads,
    )
    def one(side, client_event, provider_event, payload):
        if side:
            _check(client_event, _call(loop, clients, client_event, payload, "/clients"))
        else:
            _check(provider_event, _call(loop, providers, provider_event, payload, "/providers"))

    try:
        with caplog.at_level(logging.WARNING):
            one()
        assert clients.connected and providers.connected
        reply = run(
            clients.call(
                "invoke", {"method": "calc/add", "params": {"a": 1, "b": 2}}, namespace="/clients"
            )
        )
        assert reply.get("ok") is True or reply["error"]["code"] == "method_not_found", reply
        echo = run(
            clients.call(
                "invoke",
                {"method": "llm/generate", "params": {"prompt": "still here"}, "provider": "echo"},
                namespace="/clients",
            )
        )
        assert echo["ok"] is True and echo["result"]["response"] == "still here"
    finally:
        run(clients.disconnect())
        run(providers.disconnect())
        loop.close()
    crashed = [r for r in caplog.records if r.exc_info or "Traceback" in r.getMessage()]
    assert not crashed, [r.getMessage() for r in crashed]
