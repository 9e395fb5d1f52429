"""``gleitzeit chat``: the chat sessions of a ``gleitzeit serve`` in the terminal — the
same ``chat:*`` events the ``/chat`` page uses."""

from __future__ import annotations

import sys
from typing import Any

import click

from gleitzeit.errors import AuthRefused, GleitzeitError, ServerUnreachable, error_from_dict


async def _chat(url: str, token: str | None, model: str | None, session: str | None) -> None:
    import asyncio

    import socketio

    ns = "/clients"
    sio = socketio.AsyncClient(reconnection=False, handle_sigint=False)
    ended: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()

    async def on_chunk(data: dict[str, Any]) -> None:
        click.echo(data.get("token", ""), nl=False)

    async def on_complete(data: dict[str, Any]) -> None:
        await ended.put(("complete", data))

    async def on_error(data: dict[str, Any]) -> None:
        await ended.put(("error", data))

    sio.on("chat:chunk", on_chunk, namespace=ns)
    sio.on("chat:complete", on_complete, namespace=ns)
    sio.on("chat:error", on_error, namespace=ns)
    try:
        await sio.connect(
            url,
            namespaces=[ns],
            auth={"token": token} if token else None,
            transports=["websocket"],
            wait_timeout=10,
        )
    except socketio.exceptions.ConnectionError as exc:
        if "authentication failed" in str(exc):
            raise AuthRefused(f"{url} refused the connection", hint="pass --token") from None
        raise ServerUnreachable(
            f"Cannot reach a gleitzeit server at {url}: {exc}", hint="start `gleitzeit serve`"
        ) from None

    async def call(event: str, data: dict[str, Any]) -> Any:
        reply = await sio.call(event, data, namespace=ns, timeout=30)
        if not reply.get("ok"):
            raise error_from_dict(reply.get("error") or {})
        return reply.get("result", reply)

    try:
        if session is not None:
            opened = await call("chat:open", {"session_id": session})
            for m in opened["messages"]:
                mark = "" if m["complete"] else " [incomplete]"
                click.echo(f"{m['role']}> {m['content']}{mark}")
            model = model or opened.get("model")
        if model is None:
            offered = await call("chat:models", {})
            choices = offered["models"] + offered["aliases"]
            if not choices:
                raise GleitzeitError(
                    "The server has no model for llm/chat",
                    hint="connect an LLM provider to the server first",
                )
            model = choices[0]
        click.echo(
            f"chatting with {model} (empty line or Ctrl-D ends, Ctrl-C stops an answer)", err=True
        )
        loop = asyncio.get_running_loop()
        while True:
            click.echo("you> ", nl=False, err=True)
            line = await loop.run_in_executor(None, sys.stdin.readline)
            if not line.strip():
                break
            data: dict[str, Any] = {"model": model, "message": line.rstrip("\n")}
            if session is not None:
                data["session_id"] = session
            ack = await call("chat:send", data)
            session = ack["session_id"]
            try:
                kind, end = await ended.get()
            except asyncio.CancelledError:  # pragma: no cover - Ctrl-C
                await sio.emit("chat:cancel", {"session_id": session}, namespace=ns)
                raise
            click.echo("")
            if kind == "error":
                click.echo(
                    f"error: {error_from_dict(end['error'])} (answer kept as incomplete)", err=True
                )
        click.echo(f"session {session}", err=True)
    finally:
        await sio.disconnect()


@click.command("chat")
@click.option("--server", "url", required=True, envvar="GLEITZEIT_SERVER", help="Server URL.")
@click.option("--token", envvar="GLEITZEIT_TOKEN", help="Token (default: $GLEITZEIT_TOKEN).")
@click.option("--model", help="Model or alias (default: the first the server offers).")
@click.option("--session", help="Reopen this session: its history is shown and continued.")
def chat(url: str, token: str | None, model: str | None, session: str | None) -> None:
    """Chat with a model served by `gleitzeit serve`: type a line, see the answer stream.

    Sessions are stored by the server (the /chat page shows the same ones).
    """
    import asyncio

    asyncio.run(_chat(url.rstrip("/"), token or None, model, session))


COMMANDS = [chat]
