"""Provider tools: Gleitzeit methods offered to a chat model as functions it may call.

A ``llm/chat`` request whose ``tools`` list names methods or patterns (``"calc/*"``,
``"python/word_count"``; or the same in ``gleitzeit_tools``) runs as a loop:

1. each matching method's JSON schema becomes an OpenAI-shaped function definition,
   under a name safe for any upstream (``calc/multiply`` → ``calc_multiply``), beside
   the request's own function objects;
2. the model is called (through the dispatcher, so aliases, fallbacks, retries and
   remote providers apply);
3. the tool calls it returns run through the dispatcher as requests of their own, in
   parallel; each result — or each error, as ``{"error": ...}`` — goes back to the model
   as a ``tool`` message;
4. repeat until the model answers without tool calls; more than ``max_tool_rounds``
   (default 8) rounds of calls is an error.

The result is the last answer plus ``tool_rounds``, the transcript of every call. A
call of one of the request's own functions (not a Gleitzeit method) ends the loop and is
returned to the caller in ``tool_calls``, as without provider tools (the round's calls of
Gleitzeit methods run first); a call of a name nobody offered goes back to the model as
an error. Streamed, each
round is reported as chunks of ``kind: tool_call`` and ``kind: tool_result`` before the
answer's tokens.
"""

from __future__ import annotations

import asyncio
import fnmatch
import json
import re
import uuid
from collections.abc import AsyncGenerator, Mapping
from typing import TYPE_CHECKING, Any

from gleitzeit.errors import GleitzeitError, InvalidParamsError, ToolRoundsExceeded
from gleitzeit.request import Request

if TYPE_CHECKING:
    from gleitzeit._dispatch import Dispatcher
    from gleitzeit._registry import Registry

__all__ = [
    "DEFAULT_MAX_TOOL_ROUNDS",
    "ToolLoop",
    "ToolRoundsExceeded",
    "Toolbox",
    "wants_tool_loop",
]

DEFAULT_MAX_TOOL_ROUNDS = 8
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def wants_tool_loop(params: Mapping[str, Any]) -> bool:
    """Whether a request names Gleitzeit methods as tools (cheap: called per request)."""
    if params.get("gleitzeit_tools"):
        return True
    tools = params.get("tools")
    return isinstance(tools, list) and any(isinstance(t, str) for t in tools)


def safe_name(method: str) -> str:
    """A function name every upstream accepts (``^[A-Za-z0-9_-]{1,64}$``)."""
    return _UNSAFE.sub("_", method)[:64] or "tool"


class Toolbox:
    """The methods a request's patterns name, as function definitions and back."""

    def __init__(self, registry: Registry, patterns: list[str]) -> None:
        self.methods: dict[str, str] = {}  # safe name -> method
        self.definitions: list[dict[str, Any]] = []
        known = registry.methods()
        for pattern in patterns:
            if not isinstance(pattern, str) or not pattern:
                raise InvalidParamsError(
                    f"tools: {pattern!r} is neither a method pattern nor a function object"
                )
            hits = [m for m in known if _matches(pattern, m)]
            if not hits:
                raise InvalidParamsError(
                    f"tools: no method matches {pattern!r}",
                    hint=f"methods served: {', '.join(known) or '(none)'}",
                )
            for method in hits:
                if method in self.methods.values():
                    continue
                name = safe_name(method)
                n = 2
                while name in self.methods:  # two methods that differ only in unsafe chars
                    name = f"{safe_name(method)[:60]}_{n}"
                    n += 1
                self.methods[name] = method
                self.definitions.append(_definition(registry, method, name))

    def __contains__(self, name: object) -> bool:
        return name in self.methods


def _matches(pattern: str, method: str) -> bool:
    if fnmatch.fnmatchcase(method, pattern):
        return True
    # An unprefixed pattern (``word_count``) matches the method's own name.
    return "/" not in pattern and fnmatch.fnmatchcase(method.split("/", 1)[-1], pattern)


def _definition(registry: Registry, method: str, name: str) -> dict[str, Any]:
    described = None
    for inst in registry.instances():
        described = inst.methods.get(method)
        if described is not None:
            break
    schema: dict[str, Any] = (
        dict(described.params_schema) if described is not None else {"type": "object"}
    )
    schema.setdefault("type", "object")
    schema.setdefault("properties", {})
    schema.pop("title", None)
    text = (described.description if described is not None else "") or f"Gleitzeit {method}"
    return {
        "type": "function",
        "function": {"name": name, "description": text[:1024], "parameters": schema},
    }


class ToolLoop:
    """One chat request with provider tools, run to its answer."""

    def __init__(self, dispatcher: Dispatcher, request: Request) -> None:
        self.dispatcher = dispatcher
        self.request = request
        params = dict(request.params)
        tools = params.pop("tools", None) or []
        extra = params.pop("gleitzeit_tools", None) or []
        if isinstance(extra, str):
            extra = [extra]
        rounds = params.pop("max_tool_rounds", None)
        self.max_rounds = DEFAULT_MAX_TOOL_ROUNDS if rounds is None else int(rounds)
        if not isinstance(tools, list):
            raise InvalidParamsError("tools must be a list")
        patterns = [t for t in tools if isinstance(t, str)] + list(extra)
        functions = [t for t in tools if not isinstance(t, str)]
        #: The names of the caller's own functions: calls of these go back to the caller.
        self.own = {
            str((f.get("function") or {}).get("name", "")) for f in functions if isinstance(f, dict)
        }
        self.box = Toolbox(dispatcher.registry, patterns)
        params["tools"] = functions + self.box.definitions
        self.messages: list[Any] = list(params.pop("messages", None) or [])
        self.params = params
        self.rounds: list[dict[str, Any]] = []

    def _chat(self) -> Request:
        r = self.request
        params = {**self.params, "messages": list(self.messages)}
        return Request(r.method, params, r.provider, r.model, r.capability, r.timeout)

    def _split(
        self, calls: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """A round's calls: those this loop answers (Gleitzeit methods, and names nobody
        offered, which the model is told of as an error), and the caller's own."""
        theirs = [c for c in calls if _name(c) in self.own and _name(c) not in self.box]
        return [c for c in calls if c not in theirs], theirs

    def _check_rounds(self) -> None:
        if len(self.rounds) >= self.max_rounds:
            names = sorted({c["name"] for r in self.rounds for c in r["calls"]})
            raise ToolRoundsExceeded(
                f"The model still called tools after {self.max_rounds} rounds "
                f"(called: {', '.join(names)})",
                hint="raise max_tool_rounds, or change the prompt so that the model answers",
                tool_rounds=self.rounds,
            )

    async def _round(self, reply: str, calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Run one round's calls in parallel and add them to the conversation."""
        calls = [_with_id(c) for c in calls]
        self.messages.append({"role": "assistant", "content": reply, "tool_calls": calls})
        done = await asyncio.gather(*(self._run(c) for c in calls))
        for call, outcome in zip(calls, done, strict=True):
            content = outcome["error"] if "error" in outcome else outcome["result"]
            self.messages.append(
                {
                    "role": "tool",
                    "tool_call_id": call["id"],
                    "name": _name(call),
                    "content": json.dumps({"error": content} if "error" in outcome else content),
                }
            )
        self.rounds.append({"round": len(self.rounds) + 1, "calls": done})
        return done

    async def _run(self, call: dict[str, Any]) -> dict[str, Any]:
        name = _name(call)
        method = self.box.methods.get(name)
        entry: dict[str, Any] = {"id": call["id"], "name": name, "method": method}
        if method is None:
            offered = sorted([*self.box.methods, *self.own])
            entry["error"] = (
                f"there is no tool named {name!r}; the tools are: {', '.join(offered) or '(none)'}"
            )
            return entry
        raw = (call.get("function") or {}).get("arguments") or "{}"
        try:
            args = json.loads(raw) if isinstance(raw, str) else dict(raw)
            if not isinstance(args, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            entry.update(arguments=raw, error=f"the arguments are not a JSON object: {exc}")
            return entry
        entry["arguments"] = args
        try:
            entry["result"] = await self.dispatcher.invoke(
                Request(method, args, timeout=self.request.timeout)
            )
        except GleitzeitError as exc:  # the model sees what went wrong, and may mend it
            entry["error"] = str(exc)
        except Exception as exc:
            entry["error"] = f"{type(exc).__name__}: {exc}"
        return entry

    async def invoke(self) -> dict[str, Any]:
        """The final answer, with ``tool_rounds``."""
        while True:
            result = await self.dispatcher.invoke_model(self._chat())
            mine, theirs = self._split(result.get("tool_calls") or [])
            if mine:
                self._check_rounds()
                await self._round(str(result.get("response") or ""), mine)
            if theirs or not mine:
                # The caller's functions: theirs to run (this round's other calls ran
                # here, and are in tool_rounds).
                if theirs:
                    result["tool_calls"] = theirs
                result["tool_rounds"] = self.rounds
                return result

    async def stream(self) -> AsyncGenerator[dict[str, Any], None]:
        """Chunks: each round's ``tool_call`` and ``tool_result`` chunks, then the
        answer's tokens; the final chunk carries ``tool_rounds``."""
        while True:
            held: list[dict[str, Any]] = []  # tool-call deltas, shown only if not ours
            text: list[str] = []
            final: dict[str, Any] = {}
            chunks = self.dispatcher.stream_model(self._chat())
            try:
                async for chunk in chunks:
                    if chunk.get("done"):
                        final = chunk
                        break
                    if chunk.get("tool_calls"):
                        held.append(chunk)
                        continue
                    text.append(str(chunk.get("token", "")))
                    yield chunk
            finally:
                await chunks.aclose()
            mine, theirs = self._split(final.get("tool_calls") or [])
            if mine:
                self._check_rounds()
                mine = [_with_id(c) for c in mine]
                for call in mine:
                    yield {
                        "token": "",
                        "done": False,
                        "kind": "tool_call",
                        "tool_call": {
                            "id": call["id"],
                            "name": _name(call),
                            "method": self.box.methods.get(_name(call)),
                            "arguments": (call.get("function") or {}).get("arguments"),
                        },
                    }
                for entry in await self._round("".join(text), mine):
                    yield {"token": "", "done": False, "kind": "tool_result", "tool_result": entry}
            if theirs or not mine:
                for chunk in held:
                    # The caller's calls only (a delta without a name is a part of one).
                    shown = [c for c in chunk["tool_calls"] if _name(c) in self.own or not _name(c)]
                    if shown or not mine:
                        yield {**chunk, "tool_calls": shown} if mine else chunk
                if theirs:
                    final = {**final, "tool_calls": theirs}
                yield {**final, "tool_rounds": self.rounds}
                return


def _name(call: Mapping[str, Any]) -> str:
    return str((call.get("function") or {}).get("name", ""))


def _with_id(call: dict[str, Any]) -> dict[str, Any]:
    if call.get("id"):
        return call
    return {**call, "id": f"call_{uuid.uuid4().hex[:24]}"}
