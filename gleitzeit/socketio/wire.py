"""The Socket.IO wire protocol between ``gleitzeit serve``, remote providers and clients.

Every payload is one of the pydantic models below, validated on the way in; an invalid
one is answered with an error (``code: invalid_message``) naming the field, never an
exception that kills a handler. ``docs/protocol.md`` documents each event with the JSON
Schema generated from these models (``python -m gleitzeit.socketio.wire`` prints them).

Namespaces: ``/providers`` for provider processes, ``/clients`` for callers. Both
authenticate with ``auth = {"token": "..."}`` on connect.
"""

from __future__ import annotations

import json
import re
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from gleitzeit._validation import describe_errors
from gleitzeit.errors import GleitzeitError, InvalidMessage
from gleitzeit.kinds import Kind
from gleitzeit.methods import MethodDescription
from gleitzeit.request import CALL_ID_PATTERN, valid_call_id

PROTOCOL_VERSION = 1
PROVIDERS_NAMESPACE = "/providers"
CLIENTS_NAMESPACE = "/clients"

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
METHOD_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,31}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
MAX_METHODS = 256
MAX_MODELS = 4096
MAX_CAPABILITIES = 64


class _Msg(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- provider -> server ------------------------------------------------------------------


class Register(_Msg):
    """``register`` (provider -> server, with ack): announce one provider instance.

    Sent after every (re)connect. Several connections with the same ``name`` are
    instances of one provider and share its load.
    """

    protocol: int = Field(
        PROTOCOL_VERSION, description=f"protocol version the provider speaks: {PROTOCOL_VERSION}"
    )
    name: str = Field(description="provider name: letters, digits, '_', '.', '-'; at most 64")
    kind: Kind
    methods: dict[str, MethodDescription] = Field(
        description="protocol-prefixed method names, e.g. 'llm/chat', and their descriptions"
    )
    models: list[str] = Field(default_factory=list, max_length=MAX_MODELS)
    capabilities: list[str] = Field(default_factory=list, max_length=MAX_CAPABILITIES)
    model_required: list[str] = Field(
        default_factory=list,
        max_length=MAX_METHODS,
        description="methods that need a 'model' in the request (no default model)",
    )
    description: str = Field("", max_length=2000)
    version: str = Field("", max_length=64)
    skipped_calls: list[str] = Field(
        default_factory=list,
        max_length=1000,
        description="call_ids of invokes this provider received on a connection the server "
        "had already dropped (or past their deadline) and did not run",
    )

    @field_validator("protocol")
    @classmethod
    def _protocol(cls, value: int) -> int:
        if value != PROTOCOL_VERSION:
            raise ValueError(f"unsupported protocol {value}; this server speaks {PROTOCOL_VERSION}")
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME_RE.match(value):
            raise ValueError(
                "must be 1-64 letters, digits, '_', '.' or '-', starting with a letter or digit"
            )
        return value

    @field_validator("methods")
    @classmethod
    def _methods(cls, value: dict[str, MethodDescription]) -> dict[str, MethodDescription]:
        if not value:
            raise ValueError("a provider needs at least one method")
        if len(value) > MAX_METHODS:
            raise ValueError(f"at most {MAX_METHODS} methods")
        bad = [m for m in value if not METHOD_RE.match(m)]
        if bad:
            raise ValueError(f"method names must look like 'protocol/name', got {bad[:3]}")
        return value

    @field_validator("models", "capabilities")
    @classmethod
    def _short_strings(cls, value: list[str]) -> list[str]:
        if any(len(v) > 256 or not v for v in value):
            raise ValueError("each entry must be 1-256 characters")
        return value


class RegisterAck(_Msg):
    """The ack of ``register``."""

    ok: bool
    instance_id: str | None = None
    heartbeat_interval: float | None = Field(None, description="seconds between heartbeats")
    max_payload_bytes: int | None = Field(
        None,
        description="largest result or chunk (bytes of JSON) the server accepts; a provider "
        "answers payload_too_large instead of sending more",
    )
    error: dict[str, Any] | None = None


class Heartbeat(_Msg):
    """``heartbeat`` (provider -> server, no ack): the instance is alive."""

    instance_id: str | None = None
    in_flight: int | None = Field(None, ge=0)


class StreamData(_Msg):
    """``stream:data`` (provider -> server, server -> client): one chunk of a stream."""

    stream_id: str = Field(min_length=1, max_length=64)
    chunk: dict[str, Any]


class StreamEnd(_Msg):
    """``stream:end``: the stream finished; its last ``stream:data`` had ``done: true``."""

    stream_id: str = Field(min_length=1, max_length=64)


class StreamFailed(_Msg):
    """``stream:error``: the stream broke off; ``error`` says why."""

    stream_id: str = Field(min_length=1, max_length=64)
    error: dict[str, Any]


# -- server -> provider, and client -> server ----------------------------------------


class Invoke(_Msg):
    """``invoke`` (with ack): call a method.

    From a client, ``provider``, ``model`` and ``capability`` select instances as on
    the command line and in :meth:`gleitzeit.Host.invoke`; from the server to a
    provider they are omitted.
    """

    method: str = Field(min_length=1, max_length=160)
    params: dict[str, Any] = Field(default_factory=dict)
    provider: str | None = Field(None, max_length=64)
    model: str | None = Field(None, max_length=256)
    capability: str | None = Field(None, max_length=256)
    timeout: float | None = Field(None, gt=0, le=86400)
    call_id: str | None = Field(
        None,
        pattern=CALL_ID_PATTERN,
        description="names the call in logs and errors on both ends, the same on every "
        "attempt (for de-duplicating an at-least-once delivery); from a client, the server "
        "makes one when it is omitted, and sends it on to the provider",
    )
    deadline: float | None = Field(
        None,
        description="server -> provider: absolute time (Unix seconds) after which the "
        "caller no longer waits; a provider should not start the call after it",
    )


class InvokeFields(NamedTuple):
    """An ``invoke`` payload that :func:`plain_invoke` found valid as it is; the same
    fields as :class:`Invoke`."""

    method: str
    params: dict[str, Any]
    provider: str | None
    model: str | None
    capability: str | None
    timeout: float | None
    call_id: str | None
    deadline: float | None


_INVOKE_KEYS = frozenset(InvokeFields._fields)
_INF = float("inf")


def _opt_str(value: Any, limit: int) -> bool:
    return value is None or (type(value) is str and len(value) <= limit)


def _opt_number(value: Any) -> bool:
    return value is None or (type(value) in (int, float) and -_INF < value < _INF)


def plain_invoke(data: Any) -> InvokeFields | None:
    """The hottest message of the protocol, checked by hand to the :class:`Invoke`
    model's rules for the usual shapes: its fields when the model accepts them as they
    are, else None (then :func:`parse` decides, and names the field)."""
    if type(data) is not dict or not data.keys() <= _INVOKE_KEYS:
        return None
    get = data.get
    method, params, timeout, call_id = get("method"), get("params"), get("timeout"), get("call_id")
    if params is None:
        if "params" in data:
            return None
        params = {}
    provider, model, capability, deadline = (
        get("provider"),
        get("model"),
        get("capability"),
        get("deadline"),
    )
    if not (
        type(method) is str
        and 0 < len(method) <= 160
        and type(params) is dict
        and _opt_str(provider, 64)
        and _opt_str(model, 256)
        and _opt_str(capability, 256)
        and _opt_number(timeout)
        and (timeout is None or 0 < timeout <= 86400)
        and _opt_number(deadline)
        and (call_id is None or valid_call_id(call_id) is not None)
    ):
        return None
    return InvokeFields(
        method,
        params,
        provider,
        model,
        capability,
        None if timeout is None else float(timeout),
        call_id,
        None if deadline is None else float(deadline),
    )


class InvokeReply(_Msg):
    """The ack of ``invoke``: a result or an error."""

    ok: bool
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


class StreamStart(Invoke):
    """``stream:start``: start a stream; chunks follow as ``stream:data`` events with the
    same ``stream_id``, then ``stream:end`` or ``stream:error``.

    From a client (with ack): a ``stream_id`` already in use on the connection is
    refused. To a provider (no ack): a provider refuses a stream by answering
    ``stream:error``. ``window`` is the flow-control credit: the sender of the chunks may
    have at most that many unacknowledged ``stream:data`` in flight, and waits for
    ``stream:credit`` beyond it.
    """

    stream_id: str = Field(min_length=1, max_length=64)
    window: int | None = Field(
        None,
        ge=1,
        le=10_000,
        description="chunks that may be sent before the receiver grants more with "
        "stream:credit; a client may omit it (server.stream_window)",
    )


class StreamCredit(_Msg):
    """``stream:credit`` (client -> server, server -> provider; no ack): the reader has
    consumed ``n`` more chunks, so the sender may send ``n`` more."""

    stream_id: str = Field(min_length=1, max_length=64)
    n: int = Field(ge=1, le=10_000)


class StreamCancel(_Msg):
    """``stream:cancel``: stop a stream early. From a client it is acknowledged
    (``{"ok": true}``) and cancels the stream at the provider; to a provider, no ack."""

    stream_id: str = Field(min_length=1, max_length=64)


class ProvidersRequest(_Msg):
    """``providers`` (client -> server, with ack): list every instance; ``check`` runs
    the health checks first. The ack is an InvokeReply whose result is
    ``{"providers": [...]}``."""

    check: bool = False


class HealthRequest(_Msg):
    """``health`` (client -> server, with ack): run the health checks now, of every
    instance or of provider ``name``. The ack is an InvokeReply whose result is
    ``{"instances": [...]}``."""

    name: str | None = Field(None, min_length=1, max_length=64, pattern=NAME_RE.pattern)


class Ack(_Msg):
    """A plain ack: ``ok`` or an ``error``."""

    ok: bool
    error: dict[str, Any] | None = None
    cancelled: bool | None = Field(
        None, description="stream:cancel only: whether a running stream was cancelled"
    )


# -- chat sessions (client -> server on /clients) ---------------------------------------


class ChatSend(_Msg):
    """``chat:send`` (with ack): a user message in a chat session. Without
    ``session_id`` a new session starts. The server sends the session's history
    (trimmed to ``chat.history_turns``) with it to ``llm/chat`` on ``model``, and
    answers with ``chat:chunk`` events, then ``chat:complete`` or ``chat:error``."""

    session_id: str | None = Field(None, min_length=1, max_length=64)
    model: str = Field(min_length=1, max_length=256)
    message: str = Field(min_length=1, max_length=200_000)


class ChatSendAck(_Msg):
    """The ack of ``chat:send``: the session the answer belongs to."""

    ok: bool
    session_id: str | None = None
    call_id: str | None = None
    error: dict[str, Any] | None = None


class ChatChunk(_Msg):
    """``chat:chunk`` (server -> client): the next piece of the answer."""

    session_id: str
    token: str


class ChatComplete(_Msg):
    """``chat:complete`` (server -> client): the answer is over and stored.
    ``cancelled`` is true when ``chat:cancel`` stopped it (``full_response`` is then
    the part that came, stored marked incomplete)."""

    session_id: str
    full_response: str
    usage: dict[str, Any] | None = None
    call_id: str | None = None
    cancelled: bool = False


class ChatFailed(_Msg):
    """``chat:error`` (server -> client): the answer broke off; ``partial`` is what
    came before, stored marked incomplete."""

    session_id: str | None = None
    error: dict[str, Any]
    partial: str = ""
    call_id: str | None = None


class ChatCancel(_Msg):
    """``chat:cancel`` (client -> server, no ack): stop the session's answer."""

    session_id: str = Field(min_length=1, max_length=64)


class ChatOpen(_Msg):
    """``chat:open`` (with ack): a session and its messages, in order; ack
    ``{ok, result: {id, title, model, messages: [{role, content, complete, ...}]}}``.
    ``chat:sessions`` (with ack, no payload) lists the latest sessions, and
    ``chat:models`` (with ack) the models and aliases a chat can use."""

    session_id: str = Field(min_length=1, max_length=64)


EVENTS: dict[str, tuple[str, type[BaseModel], type[BaseModel] | None, str]] = {
    # event: (direction, payload model, ack model, namespace)
    "register": ("provider -> server", Register, RegisterAck, PROVIDERS_NAMESPACE),
    "heartbeat": ("provider -> server", Heartbeat, None, PROVIDERS_NAMESPACE),
    "invoke": ("server -> provider, client -> server", Invoke, InvokeReply, "both"),
    "stream:start": ("server -> provider, client -> server", StreamStart, Ack, "both"),
    "stream:data": ("provider -> server, server -> client", StreamData, None, "both"),
    "stream:end": ("provider -> server, server -> client", StreamEnd, None, "both"),
    "stream:error": ("provider -> server, server -> client", StreamFailed, None, "both"),
    "stream:credit": ("server -> provider, client -> server", StreamCredit, None, "both"),
    "stream:cancel": ("server -> provider, client -> server", StreamCancel, Ack, "both"),
    "health": ("server -> provider", Ack, InvokeReply, PROVIDERS_NAMESPACE),
    "chat:send": ("client -> server", ChatSend, ChatSendAck, CLIENTS_NAMESPACE),
    "chat:chunk": ("server -> client", ChatChunk, None, CLIENTS_NAMESPACE),
    "chat:complete": ("server -> client", ChatComplete, None, CLIENTS_NAMESPACE),
    "chat:error": ("server -> client", ChatFailed, None, CLIENTS_NAMESPACE),
    "chat:cancel": ("client -> server", ChatCancel, None, CLIENTS_NAMESPACE),
    "chat:open": ("client -> server", ChatOpen, InvokeReply, CLIENTS_NAMESPACE),
    "providers": ("client -> server", ProvidersRequest, InvokeReply, CLIENTS_NAMESPACE),
    "health (clients)": ("client -> server", HealthRequest, InvokeReply, CLIENTS_NAMESPACE),
}


def parse(model: type[BaseModel], data: Any, event: str) -> Any:
    """Validate an incoming payload; raise :class:`InvalidMessage` naming the field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidMessage(
            f"invalid {event!r} payload: " + "; ".join(describe_errors(exc, model=model))
        ) from None


def error_payload(exc: BaseException) -> dict[str, Any]:
    """An error as it travels on the wire."""
    if isinstance(exc, GleitzeitError):
        return exc.to_dict()
    return {"code": "internal_error", "message": f"{type(exc).__name__}: {exc}", "retryable": False}


#: ``json.dumps(data, separators=(",", ":"), default=str)`` without building an encoder
#: per call.
_compact_json = json.JSONEncoder(separators=(",", ":"), default=str).encode


def payload_size(data: Any) -> int:
    """Bytes of a payload as JSON (what the size limit counts)."""
    return len(_compact_json(data))


def schemas() -> dict[str, Any]:
    """JSON Schema of every payload, by model name."""
    models = {m for _, m, a, _ in EVENTS.values()} | {a for _, _, a, _ in EVENTS.values() if a}
    return {m.__name__: m.model_json_schema() for m in sorted(models, key=lambda m: m.__name__)}


SCHEMAS_START = (
    "<!-- schemas:start (generated by `python -m gleitzeit.socketio.wire --write-docs`) -->"
)
SCHEMAS_END = "<!-- schemas:end -->"


def schemas_markdown() -> str:
    """The generated appendix of docs/protocol.md."""
    parts = [SCHEMAS_START, ""]
    for name, schema in schemas().items():
        parts += [f"### {name}", "", "```json", json.dumps(schema, indent=2), "```", ""]
    parts.append(SCHEMAS_END)
    return "\n".join(parts)


def write_docs(path: str) -> None:
    """Replace the schema appendix of ``path`` with the current schemas."""
    from pathlib import Path

    doc = Path(path)
    text = doc.read_text(encoding="utf-8")
    start, end = text.index(SCHEMAS_START), text.index(SCHEMAS_END) + len(SCHEMAS_END)
    doc.write_text(text[:start] + schemas_markdown() + text[end:], encoding="utf-8")


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--write-docs"]:
        write_docs(sys.argv[2] if len(sys.argv) > 2 else "docs/protocol.md")
    else:
        print(json.dumps(schemas(), indent=2))
