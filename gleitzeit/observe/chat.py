"""Chat sessions over Socket.IO: ``chat:send`` → ``chat:chunk``… → ``chat:complete``
or ``chat:error``; ``chat:cancel`` stops an answer. Any client of ``/clients`` speaks
it: the ``/chat`` page, ``gleitzeit chat``, a raw python-socketio client.

Sessions and messages live in the run store's SQLite file (``chat_sessions``,
``chat_messages``). Each new message goes to ``llm/chat`` with the session's history,
trimmed to ``chat.history_turns`` earlier exchanges. An answer that breaks off or is
cancelled is stored as far as it came, marked incomplete.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from gleitzeit.errors import GleitzeitError, InvalidParamsError
from gleitzeit.request import new_call_id
from gleitzeit.socketio.wire import (
    CLIENTS_NAMESPACE,
    ChatCancel,
    ChatOpen,
    ChatSend,
    error_payload,
    parse,
)

if TYPE_CHECKING:
    from gleitzeit.host import Host
    from gleitzeit.workflows.store import RunStore

log = logging.getLogger("gleitzeit.chat")

CHAT_METHOD = "llm/chat"


class ChatService:
    """The chat events of ``/clients``; one per server."""

    def __init__(
        self, host: Host, sio: Any, store: Callable[[], RunStore], *, history_turns: int
    ) -> None:
        self.host = host
        self.sio = sio
        self.store = store
        self.history_turns = history_turns
        #: session id -> the task streaming its answer now
        self.answers: dict[str, asyncio.Task[None]] = {}

    def attach(self) -> None:
        ns = CLIENTS_NAMESPACE
        self.sio.on("chat:send", self.on_send, namespace=ns)
        self.sio.on("chat:cancel", self.on_cancel, namespace=ns)
        self.sio.on("chat:open", self.on_open, namespace=ns)
        self.sio.on("chat:sessions", self.on_sessions, namespace=ns)
        self.sio.on("chat:models", self.on_models, namespace=ns)

    async def close(self) -> None:
        tasks = list(self.answers.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- events ------------------------------------------------------------------------

    async def on_send(self, sid: str, data: Any = None) -> dict[str, Any]:
        try:
            msg: ChatSend = parse(ChatSend, data, "chat:send")
            store = self.store()
            session_id = msg.session_id
            if session_id is None:
                session_id = uuid.uuid4().hex[:16]
                title = " ".join(msg.message.split())[:60]
                store.create_chat_session(session_id, title=title, model=msg.model)
                history: list[dict[str, Any]] = []
            else:
                session = await asyncio.to_thread(store.chat_session, session_id)
                if session is None:
                    raise InvalidParamsError(
                        f"No chat session {session_id!r}",
                        hint="omit session_id to start a new one; chat:sessions lists them",
                    )
                if session_id in self.answers:
                    raise InvalidParamsError(
                        f"Session {session_id!r} is still answering",
                        hint="wait for chat:complete, or send chat:cancel first",
                    )
                history = self._trim(session["messages"])
            store.add_chat_message(session_id, "user", msg.message, model=msg.model)
            await store.flush()
        except GleitzeitError as exc:
            return {"ok": False, "error": exc.to_dict()}
        messages = [*history, {"role": "user", "content": msg.message}]
        call_id = new_call_id()
        task = asyncio.ensure_future(self._answer(sid, session_id, msg.model, messages, call_id))
        self.answers[session_id] = task
        task.add_done_callback(lambda _t: self.answers.pop(session_id, None))
        return {"ok": True, "session_id": session_id, "call_id": call_id}

    def _trim(self, stored: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The last ``history_turns`` exchanges, as llm/chat messages."""
        messages = [{"role": m["role"], "content": m["content"]} for m in stored]
        if self.history_turns == 0:
            return []
        users = [i for i, m in enumerate(messages) if m["role"] == "user"]
        if len(users) > self.history_turns:
            messages = messages[users[-self.history_turns] :]
        return messages

    async def _answer(
        self,
        sid: str,
        session_id: str,
        model: str,
        messages: list[dict[str, Any]],
        call_id: str,
    ) -> None:
        ns = CLIENTS_NAMESPACE
        parts: list[str] = []
        usage: dict[str, Any] | None = None
        store = self.store()
        try:
            async for chunk in self.host.stream(
                CHAT_METHOD, {"messages": messages}, model=model, call_id=call_id
            ):
                token = chunk.get("token") or ""
                if token:
                    parts.append(token)
                    await self.sio.emit(
                        "chat:chunk",
                        {"session_id": session_id, "token": token},
                        to=sid,
                        namespace=ns,
                    )
                if chunk.get("done"):
                    usage = chunk.get("usage") if isinstance(chunk.get("usage"), dict) else None
        except asyncio.CancelledError:
            text = "".join(parts)
            store.add_chat_message(
                session_id, "assistant", text, model=model, complete=False, call_id=call_id
            )
            await asyncio.shield(store.flush())
            await self.sio.emit(
                "chat:complete",
                {
                    "session_id": session_id,
                    "full_response": text,
                    "usage": None,
                    "call_id": call_id,
                    "cancelled": True,
                },
                to=sid,
                namespace=ns,
            )
            return
        except Exception as exc:
            text = "".join(parts)
            log.info("chat answer in session %s broke off: %s", session_id, exc)
            store.add_chat_message(
                session_id, "assistant", text, model=model, complete=False, call_id=call_id
            )
            await store.flush()
            await self.sio.emit(
                "chat:error",
                {
                    "session_id": session_id,
                    "error": error_payload(exc),
                    "partial": text,
                    "call_id": call_id,
                },
                to=sid,
                namespace=ns,
            )
            return
        text = "".join(parts)
        store.add_chat_message(
            session_id, "assistant", text, model=model, call_id=call_id, usage=usage
        )
        await store.flush()
        await self.sio.emit(
            "chat:complete",
            {"session_id": session_id, "full_response": text, "usage": usage, "call_id": call_id},
            to=sid,
            namespace=ns,
        )

    async def on_cancel(self, sid: str, data: Any = None) -> None:
        try:
            msg: ChatCancel = parse(ChatCancel, data, "chat:cancel")
        except GleitzeitError:
            return
        task = self.answers.get(msg.session_id)
        if task is not None:
            task.cancel()

    async def on_open(self, sid: str, data: Any = None) -> dict[str, Any]:
        try:
            msg: ChatOpen = parse(ChatOpen, data, "chat:open")
            session = await asyncio.to_thread(self.store().chat_session, msg.session_id)
        except GleitzeitError as exc:
            return {"ok": False, "error": exc.to_dict()}
        if session is None:
            err = InvalidParamsError(f"No chat session {msg.session_id!r}")
            return {"ok": False, "error": err.to_dict()}
        session["answering"] = msg.session_id in self.answers
        return {"ok": True, "result": session}

    async def on_sessions(self, sid: str, data: Any = None) -> dict[str, Any]:
        sessions = await asyncio.to_thread(self.store().chat_sessions)
        return {"ok": True, "result": {"sessions": sessions}}

    async def on_models(self, sid: str, data: Any = None) -> dict[str, Any]:
        """Every model an instance serving llm/chat lists, and the configured aliases."""
        models: set[str] = set()
        for inst in self.host.registry:
            if CHAT_METHOD in inst.methods:
                models.update(inst.models)
        aliases = sorted(self.host.config.models.aliases)
        return {"ok": True, "result": {"models": sorted(models), "aliases": aliases}}
