"""The OpenAI-compatible API of `gleitzeit serve`, driven by the official openai client.

One real `gleitzeit serve` (a subprocess, on an ephemeral port) serves echo, the
calculator and the openai plugin pointed at a fake OpenAI upstream (aiohttp on
127.0.0.1, in a thread, scripted per test); the SDK raises its own exception classes
from our responses.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from gleitzeit.testing.fake_openai import FakeOpenAI
from gleitzeit.testing.fake_server import Scenario, ThreadedServer

TOKEN = "gw-s3cret"


def free_port() -> int:
    """A port nothing listens on (for an upstream that is down)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Served:
    def __init__(self, proc: subprocess.Popen, url: str, upstream: FakeOpenAI) -> None:
        self.proc, self.url, self.upstream = proc, url, upstream

    def client(self, **kw) -> openai.OpenAI:
        kw.setdefault("api_key", TOKEN)
        kw.setdefault("max_retries", 0)
        return openai.OpenAI(base_url=f"{self.url}/v1", timeout=30, **kw)

    def post(self, path: str, content: bytes, **headers: str) -> httpx.Response:
        headers.setdefault("Authorization", f"Bearer {TOKEN}")
        return httpx.post(f"{self.url}/v1{path}", content=content, headers=headers, timeout=30)


def start_serve(workdir: Path, config: str, env: dict[str, str]) -> tuple[subprocess.Popen, str]:
    (workdir / "gleitzeit.yaml").write_text(config)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gleitzeit", "serve", "--port", "0"],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "serving on" not in line:
        proc.kill()
        raise AssertionError(f"serve did not start: {line!r} {proc.stderr.read()}")
    return proc, line.split("serving on ", 1)[1].split()[0]


def serve_env(tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GLEITZEIT_", "OPENAI_"))}
    env.update(GLEITZEIT_TOKEN=TOKEN, XDG_CONFIG_HOME=str(tmp / "xdg"))
    return env


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gateway")
    with ThreadedServer(FakeOpenAI()) as upstream:
        assert isinstance(upstream, FakeOpenAI)
        config = f"""\
autoload_plugins: false
plugins:
  calculator: {{}}
  echo: {{}}
  openai: {{api_key: sk-test, base_url: "{upstream.url}"}}
providers:
  deadai:
    type: openai
    settings:
      api_key: sk-test
      base_url: "http://127.0.0.1:{free_port()}/v1"
      models: [dead-model]
      connect_timeout: 1
      health_timeout: 1
routing: {{retries: 1, failure_threshold: 1000}}
health: {{interval: 3600}}
models:
  aliases:
    fast: echo
    chain: [deadai/dead-model, echo]
"""
        proc, url = start_serve(tmp, config, serve_env(tmp))
        try:
            yield Served(proc, url, upstream)
        finally:
            proc.terminate()
            proc.wait(20)


@pytest.fixture(autouse=True)
def fresh_scenario(served):
    served.upstream.scenario = Scenario()
    yield
    assert served.proc.poll() is None, "the server must keep serving"


HI = [{"role": "user", "content": "hello there gateway"}]


# -- the happy paths ------------------------------------------------------------------


def test_chat_through_the_official_client(served):
    resp = served.client().chat.completions.create(model="echo", messages=HI)
    assert resp.object == "chat.completion"
    assert resp.id.startswith("chatcmpl-")
    assert resp.choices[0].message.role == "assistant"
    assert resp.choices[0].message.content == "hello there gateway"
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage is not None and resp.usage.total_tokens > 0


def test_streamed_text_equals_the_non_streamed_text(served):
    client = served.client()
    whole = client.chat.completions.create(model="gpt-4o-mini", messages=HI)
    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=HI, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content == "Hello from the fake server"
    assert len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 5


def test_legacy_completion_is_llm_generate(served):
    client = served.client()
    resp = client.completions.create(model="echo", prompt="say this back")
    assert resp.object == "text_completion"
    assert resp.choices[0].text == "say this back"
    streamed = client.completions.create(model="echo", prompt="say this back", stream=True)
    assert "".join(c.choices[0].text for c in streamed if c.choices) == "say this back"


def test_embeddings_of_one_text_and_of_a_list(served):
    client = served.client()
    one = client.embeddings.create(model="text-embedding-3-small", input="apples")
    assert len(one.data) == 1 and len(one.data[0].embedding) == 8
    many = client.embeddings.create(
        model="text-embedding-3-small", input=["apples", "pears"], encoding_format="float"
    )
    assert [d.index for d in many.data] == [0, 1]
    expected = Scenario().embedding("pears")
    assert many.data[1].embedding == pytest.approx(expected, rel=1e-6)
    assert one.data[0].embedding == pytest.approx(Scenario().embedding("apples"), rel=1e-6)
    raw = served.post(
        "/embeddings",
        json.dumps(
            {"model": "text-embedding-3-small", "input": "x", "encoding_format": "base64"}
        ).encode(),
        **{"Content-Type": "application/json"},
    ).json()
    packed = base64.b64decode(raw["data"][0]["embedding"])
    assert list(struct.unpack("<8f", packed)) == pytest.approx(Scenario().embedding("x"), rel=1e-6)


def test_models_lists_every_healthy_instance_with_its_provider(served):
    client = served.client()
    models = {m.id: m.owned_by for m in client.models.list()}
    assert models["echo"] == "echo"
    assert models["gpt-4o-mini"] == "openai"
    assert models["fast"] == "gleitzeit-alias"
    assert "dead-model" not in models  # its only instance is down
    assert client.models.retrieve("gpt-4o-mini").owned_by == "openai"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-5")


def test_provider_slash_model_pins_the_provider_and_aliases_resolve(served):
    client = served.client()
    pinned = client.chat.completions.create(model="echo/echo", messages=HI)
    assert pinned.model_extra["gleitzeit"]["provider"] == "echo"
    aliased = client.chat.completions.create(model="fast", messages=HI)
    assert aliased.choices[0].message.content == "hello there gateway"


def test_a_fallback_chain_moves_past_a_target_that_is_down(served):
    resp = served.client().chat.completions.create(model="chain", messages=HI)
    assert resp.choices[0].message.content == "hello there gateway"
    assert resp.model_extra["gleitzeit"]["provider"] == "echo"


# -- errors, each raised by the SDK itself ----------------------------------------------


def test_a_wrong_key_is_an_authentication_error(served):
    with pytest.raises(openai.AuthenticationError) as info:
        served.client(api_key="wrong").chat.completions.create(model="echo", messages=HI)
    assert info.value.code == "invalid_api_key"
    # what an API caller can do about it, not the command line's options
    assert "--token" not in info.value.message
    assert "Authorization: Bearer" in info.value.message


def test_an_unknown_model_is_not_found_and_the_message_lists_models(served):
    with pytest.raises(openai.NotFoundError) as info:
        served.client().chat.completions.create(model="gpt-5", messages=HI)
    assert info.value.code == "model_not_found"
    assert "gpt-4o-mini" in info.value.message and "echo" in info.value.message


def test_bad_params_are_a_bad_request(served):
    with pytest.raises(openai.BadRequestError) as info:
        served.client().chat.completions.create(model="echo", messages=HI, temperature=7)
    assert info.value.status_code == 400


def test_an_upstream_rate_limit_is_a_rate_limit_error_with_its_retry_after(served):
    served.upstream.scenario = Scenario(
        status=429,
        error={
            "error": {
                "message": "Rate limit reached",
                "type": "requests",
                "param": None,
                "code": "rate_limit_exceeded",
            }
        },
        headers={"retry-after": "2"},
    )
    with pytest.raises(openai.RateLimitError) as info:
        served.client().chat.completions.create(model="gpt-4o-mini", messages=HI)
    assert info.value.response.headers["retry-after"] == "2"
    assert info.value.response.headers["retry-after-ms"] == "2000"
    # The only instance rests as long as its upstream asked: meanwhile a request is
    # told when to come back, and afterwards it is served again.
    served.upstream.scenario = Scenario()
    with pytest.raises(openai.InternalServerError) as rested:
        served.client().chat.completions.create(model="gpt-4o-mini", messages=HI)
    assert rested.value.status_code == 503
    assert 1 <= int(rested.value.response.headers["retry-after"]) <= 2
    deadline = time.monotonic() + 30
    while True:
        try:
            served.client().chat.completions.create(model="gpt-4o-mini", messages=HI)
            break
        except openai.InternalServerError:
            assert time.monotonic() < deadline, "the instance never came back"
            time.sleep(0.2)


def test_every_response_a_stream_too_carries_its_request_id(served):
    body = json.dumps({"model": "echo", "messages": HI, "stream": True}).encode()
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    url = f"{served.url}/v1/chat/completions"
    with httpx.stream(
        "POST", url, content=body, headers={**headers, "X-Request-ID": "strm-1"}, timeout=30
    ) as resp:
        assert resp.status_code == 200 and resp.headers["X-Request-ID"] == "strm-1"
        assert "[DONE]" in resp.read().decode()
    # None given, or one unfit for log lines: the call's own id comes back instead.
    for given in ({}, {"X-Request-ID": "bad id with spaces!"}):
        resp = served.post("/chat/completions", body.replace(b"true", b"false"), **given)
        assert resp.status_code == 200
        made = resp.headers["X-Request-ID"]
        assert made and " " not in made


def test_an_upstream_server_error_is_a_502_at_once_naming_the_upstreams_answer(served):
    served.upstream.scenario = Scenario(
        status=500, error={"error": {"message": "internal upstream failure", "type": "server"}}
    )
    with pytest.raises(openai.InternalServerError) as info:
        served.client().chat.completions.create(model="gpt-4o-mini", messages=HI)
    # The instance is connected: its upstream failed. No wait for another instance,
    # and no advice to start the provider again.
    assert info.value.status_code == 502
    assert "failed with 500: internal upstream failure" in info.value.message
    assert "waited" not in info.value.message


def test_every_instance_down_is_a_503(served):
    with pytest.raises(openai.APIStatusError) as info:
        served.client().chat.completions.create(model="dead-model", messages=HI)
    assert info.value.status_code == 503
    assert isinstance(info.value, openai.InternalServerError)


def test_a_stream_that_fails_after_its_first_chunk_ends_with_an_error_event(served):
    served.upstream.scenario = Scenario(reply="a b c d e f", error_after=3)
    stream = served.client().chat.completions.create(model="gpt-4o-mini", messages=HI, stream=True)
    got = []
    with pytest.raises(openai.APIError) as info:
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                got.append(chunk.choices[0].delta.content)
    assert got == ["a ", "b ", "c "]
    assert "inside the stream" in info.value.message


# -- bodies the gateway refuses, in OpenAI's shape, and goes on serving --------------------


def _shape(resp: httpx.Response) -> dict:
    body = resp.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


def test_a_2mb_body_is_refused(served):
    big = json.dumps({"model": "echo", "messages": [{"role": "user", "content": "x" * 2_000_000}]})
    resp = served.post("/chat/completions", big.encode(), **{"Content-Type": "application/json"})
    assert resp.status_code == 413 and _shape(resp)["code"] == "payload_too_large"


def test_malformed_json_is_refused(served):
    resp = served.post(
        "/chat/completions",
        b'{"model": "echo", "messages": [',
        **{"Content-Type": "application/json"},
    )
    assert resp.status_code == 400 and _shape(resp)["code"] == "invalid_json"
    deep = b'{"model": "echo", "messages": [], "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    resp = served.post("/chat/completions", deep, **{"Content-Type": "application/json"})
    assert resp.status_code == 400 and _shape(resp)["code"] == "invalid_json"
    assert "nested too deeply" in _shape(resp)["message"]


def test_unknown_paths_and_methods_under_v1_answer_in_openais_shape(served):
    headers = {"Authorization": f"Bearer {TOKEN}"}
    missing = httpx.get(f"{served.url}/v1/foo", headers=headers, timeout=30)
    assert missing.status_code == 404 and _shape(missing)["code"] == "unknown_url"
    assert "POST /v1/chat/completions" in _shape(missing)["message"]
    wrong = httpx.get(f"{served.url}/v1/chat/completions", headers=headers, timeout=30)
    assert wrong.status_code == 405 and _shape(wrong)["code"] == "method_not_allowed"
    assert "use POST" in _shape(wrong)["message"] and wrong.headers["Allow"] == "POST"
    foreign = httpx.post(
        f"{served.url}/v1/chat/completions",
        headers={**headers, "Origin": "https://evil.example"},
        content=b"{}",
        timeout=30,
    )
    assert foreign.status_code == 403 and _shape(foreign)["type"] == "invalid_request_error"


def test_invalid_parameters_name_the_field_in_param(served):
    bad = [{"role": "wizard", "content": "hi"}]
    with pytest.raises(openai.BadRequestError) as info:
        served.client().chat.completions.create(model="echo", messages=bad)
    assert info.value.code == "invalid_params" and info.value.param == "messages[0].role"
    # An upstream's own 400 passes on the field it named.
    served.upstream.scenario = Scenario(
        status=400,
        error={"error": {"message": "bad", "type": "invalid_request_error", "param": "foo"}},
    )
    with pytest.raises(openai.BadRequestError) as upstream:
        served.client().chat.completions.create(model="gpt-4o-mini", messages=HI)
    assert upstream.value.param == "foo"
    served.upstream.scenario = Scenario()
    # No Gleitzeit tools is the same as not naming any.
    answer = served.client().chat.completions.create(
        model="echo", messages=HI, extra_body={"gleitzeit_tools": []}
    )
    assert answer.choices[0].message.content == "hello there gateway"


def test_malformed_messages_tools_and_formats_are_refused_naming_them(served):
    cases = [
        ({"messages": [{"role": "user"}]}, "messages[0] (user) needs a content"),
        ({"messages": HI, "tools": [{"type": "function"}]}, "tools[0] needs a function"),
        ({"messages": HI, "response_format": {"type": "xml"}}, "'xml' is not one of text"),
    ]
    for extra, said in cases:
        resp = served.post("/chat/completions", json.dumps({"model": "echo", **extra}).encode())
        assert resp.status_code == 400 and said in _shape(resp)["message"], resp.text


def test_a_wrong_content_type_is_refused(served):
    resp = served.post("/chat/completions", b"model=echo", **{"Content-Type": "text/plain"})
    assert resp.status_code == 415 and _shape(resp)["type"] == "invalid_request_error"


def test_curl_d_without_a_content_type_works(served):
    body = json.dumps({"model": "echo", "messages": HI}).encode()
    resp = served.post(
        "/chat/completions", body, **{"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert resp.status_code == 200
    assert resp.json()["choices"][0]["message"]["content"] == "hello there gateway"


def test_n_above_one_is_refused(served):
    with pytest.raises(openai.BadRequestError) as info:
        served.client().chat.completions.create(model="echo", messages=HI, n=2)
    assert info.value.param == "n"


def test_an_unknown_field_is_passed_on_not_refused(served):
    client = served.client()
    ok = client.chat.completions.create(model="echo", messages=HI, extra_body={"frobnicate": 1})
    assert ok.choices[0].message.content == "hello there gateway"
    # The real upstream refuses what it does not know; its 400 comes back as ours.
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(
            model="gpt-4o-mini", messages=HI, extra_body={"frobnicate": 1}
        )
    assert "frobnicate" in info.value.message
    sent = served.upstream.requests[-1]["json"]
    assert sent["frobnicate"] == 1


# -- tool calling through the gateway ----------------------------------------------------

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}


def test_upstream_tool_calls_pass_through_in_openais_shape(served):
    served.upstream.scenario = Scenario(
        tool_calls=[{"name": "get_weather", "arguments": {"city": "Oslo"}}]
    )
    client = served.client()
    resp = client.chat.completions.create(
        model="gpt-4o-mini", messages=HI, tools=[WEATHER], tool_choice="auto"
    )
    choice = resp.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.id
    assert (call.function.name, json.loads(call.function.arguments)) == (
        "get_weather",
        {"city": "Oslo"},
    )
    assert served.upstream.requests[-1]["json"]["tools"] == [WEATHER]

    stream = client.chat.completions.create(
        model="gpt-4o-mini", messages=HI, tools=[WEATHER], stream=True
    )
    chunks = list(stream)
    deltas = [d for c in chunks if c.choices for d in c.choices[0].delta.tool_calls or []]
    assert deltas[0].function.name == "get_weather" and deltas[0].id
    assert json.loads("".join(d.function.arguments or "" for d in deltas)) == {"city": "Oslo"}
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_provider_tools_run_through_the_gateway_as_strings_or_extra_body(served):
    client = served.client()
    ask = [{"role": "user", "content": '/call calc_multiply {"a": 6, "b": 7}'}]
    mixed = client.chat.completions.create(
        model="echo", messages=ask, extra_body={"tools": ["calc/*", WEATHER]}
    )
    assert "42" in mixed.choices[0].message.content
    rounds = mixed.model_extra["gleitzeit"]["tool_rounds"]
    assert rounds[0]["calls"][0]["method"] == "calc/multiply"

    extra = client.chat.completions.create(
        model="echo", messages=ask, extra_body={"gleitzeit_tools": ["calc/multiply"]}
    )
    assert extra.choices[0].message.content == mixed.choices[0].message.content

    stream = client.chat.completions.create(
        model="echo", messages=ask, stream=True, extra_body={"gleitzeit_tools": ["calc/*"]}
    )
    chunks = list(stream)
    kinds = [(c.model_extra.get("gleitzeit") or {}).get("kind") for c in chunks]
    assert kinds.index("tool_call") < kinds.index("tool_result")
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == extra.choices[0].message.content


def test_a_tool_loop_that_never_ends_is_a_bad_request(served):
    ask = [{"role": "user", "content": '/loop calc_add {"a": 1, "b": 1}'}]
    with pytest.raises(openai.BadRequestError) as info:
        served.client().chat.completions.create(
            model="echo",
            messages=ask,
            extra_body={"gleitzeit_tools": ["calc/add"], "max_tool_rounds": 2},
        )
    assert info.value.code == "tool_rounds_exceeded"
