"""The gateway writes a plain token's SSE event from a per-stream template: the bytes
are exactly those of encoding the whole event."""

from __future__ import annotations

import json

import pytest

from gleitzeit.http import openai_api as api
from gleitzeit.http.gateway import _ChatEvents, _CompletionEvents, _event


@pytest.mark.parametrize(
    "token", ["tok", "naïve “quotes” 😀", 'a "b" \\ c\n\t\x00\x1f', "</script>"]
)
def test_a_token_event_from_the_template_is_the_full_encoding_byte_for_byte(token):
    chat = _ChatEvents(api.ChatCompletionRequest(model="m/ü", messages=[{"content": "x"}]))
    legacy = _CompletionEvents(api.CompletionRequest(model="m", prompt="x"))
    for events in (chat, legacy):
        fast = events.encode({"token": token, "done": False})
        assert fast == _event(events.token_event(token))
        assert json.loads(fast.removeprefix(b"data: "))["id"] == events.id


def test_other_chunks_take_the_full_encoding():
    events = _ChatEvents(api.ChatCompletionRequest(model="m", messages=[{"content": "x"}]))
    assert events.encode({"token": "", "done": False}) == b""
    done = events.encode({"token": "", "done": True, "finish_reason": "length"})
    assert json.loads(done.removeprefix(b"data: "))["choices"][0]["finish_reason"] == "length"
