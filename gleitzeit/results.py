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
