"""The standard result shapes every provider of a kind returns.

Workflows and callers rely on these keys, so that one LLM provider can be swapped for
another: ``${task.response}`` works whichever served the task.
"""

from __future__ import annotations

from typing import Any


def usage(prompt_tokens: int | None, completion_tokens: int | None) -> dict[str, int] | None:
    """Token counts in the standard shape, or ``None`` when the upstream gave none."""
    if prompt_tokens is None and completion_tokens is None:
        return None
    p, c = int(prompt_tokens or 0), int(completion_tokens or 0)
    return {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}


def llm_result(
    response: str,
    *,
    model: str,
    provider: str,
    finish_reason: str | None = "stop",
    usage: dict[str, int] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A non-streaming LLM result: ``response``, ``model``, ``provider``, ``finish_reason``
    and ``usage`` (when known)."""
    result: dict[str, Any] = {
        "response": response,
        "model": model,
        "provider": provider,
        "finish_reason": finish_reason,
    }
    if usage is not None:
        result["usage"] = usage
    result.update(extra)
    return result


def token_chunk(token: str, **extra: Any) -> dict[str, Any]:
    """One streamed piece of text."""
    return {"token": token, "done": False, **extra}


def final_chunk(
    *, finish_reason: str | None = "stop", usage: dict[str, int] | None = None, **extra: Any
) -> dict[str, Any]:
    """The one last chunk of every stream."""
    chunk: dict[str, Any] = {"token": "", "done": True, "finish_reason": finish_reason}
    if usage is not None:
        chunk["usage"] = usage
    chunk.update(extra)
    return chunk


def tool_call(name: str, arguments: str | dict[str, Any], *, id: str | None = None) -> dict:
    """One tool call a model made, in the standard (OpenAI) shape: ``id``,
    ``type: function``, ``function.name`` and ``function.arguments`` as a JSON string."""
    import json
    import uuid

    if not isinstance(arguments, str):
        arguments = json.dumps(arguments)
    return {
        "id": id or f"call_{uuid.uuid4().hex[:24]}",
        "type": "function",
        "function": {"name": name, "arguments": arguments},
    }


def tool_call_chunks(calls: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stream chunks announcing ``calls`` as OpenAI's deltas do: per call, one chunk with
    its index, id and name, and one with its arguments. The final chunk then carries the
    assembled ``tool_calls`` and ``finish_reason: tool_calls``."""
    out = []
    for i, call in enumerate(calls):
        fn = call.get("function") or {}
        head = {"index": i, "id": call.get("id"), "type": "function"}
        head["function"] = {"name": fn.get("name"), "arguments": ""}
        out.append({"token": "", "done": False, "tool_calls": [head]})
        args = {"index": i, "function": {"arguments": fn.get("arguments") or ""}}
        out.append({"token": "", "done": False, "tool_calls": [args]})
    return out


def tool_result(operation: str, inputs: dict[str, Any], result: Any, **extra: Any) -> dict:
    """A tool result: ``operation``, ``inputs`` and ``result``."""
    return {"operation": operation, "inputs": inputs, "result": result, **extra}


def embedding_result(
    embeddings: list[list[float]], *, model: str, provider: str, single: bool, **extra: Any
) -> dict[str, Any]:
    """``embedding`` for one input, ``embeddings`` for a list; plus ``model`` and
    ``dimensions``."""
    dims = len(embeddings[0]) if embeddings else 0
    out: dict[str, Any] = {"model": model, "provider": provider, "dimensions": dims}
    if single:
        out["embedding"] = embeddings[0] if embeddings else []
    else:
        out["embeddings"] = embeddings
    out.update(extra)
    return out


def collect_stream(chunks: list[dict[str, Any]]) -> dict[str, Any]:
    """Fold a finished stream into the non-streaming result shape."""
    text = "".join(str(c.get("token", "")) for c in chunks)
    final = chunks[-1] if chunks else {}
    out = {k: v for k, v in final.items() if k not in ("token", "done")}
    out["response"] = text
    return out
