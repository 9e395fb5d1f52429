"""MCP results in Gleitzeit's standard shapes."""

from __future__ import annotations

from typing import Any

from mcp import types

from gleitzeit.errors import ToolError


def _dump(item: Any) -> dict[str, Any]:
    data: dict[str, Any] = item.model_dump(mode="json", by_alias=True, exclude_none=True)
    return data


def _texts(content: list[Any]) -> list[str]:
    return [c.text for c in content if getattr(c, "type", None) == "text"]


def tool_result(
    method: str, tool: str, arguments: dict[str, Any], result: types.CallToolResult
) -> dict[str, Any]:
    """``result`` (the structured content, or the text parts joined), ``content`` (the
    raw MCP content items), ``is_error``, ``operation`` and ``inputs``.

    An error result becomes a :class:`gleitzeit.ToolError` carrying the server's message.
    """
    content = [_dump(c) for c in result.content]
    texts = _texts(result.content)
    if result.is_error:
        message = "\n".join(texts).strip() or "the tool reported an error without a message"
        raise ToolError(f"{method}: {message}", tool=tool, content=content)
    structured = result.structured_content
    value: Any
    if structured is not None:
        # SDK-built servers wrap a tool's plain return value as {"result": value}.
        value = structured["result"] if set(structured) == {"result"} else structured
    else:
        value = "\n".join(texts)
    return {
        "operation": tool,
        "inputs": arguments,
        "result": value,
        "content": content,
        "is_error": False,
    }


def resource_result(uri: str, result: types.ReadResourceResult) -> dict[str, Any]:
    """``result`` (the text of the resource's text parts joined) and ``contents``."""
    contents = [_dump(c) for c in result.contents]
    text = "\n".join(c.text for c in result.contents if isinstance(c, types.TextResourceContents))
    return {
        "operation": "resources.read",
        "inputs": {"uri": uri},
        "result": text,
        "contents": contents,
    }


def prompt_result(
    name: str, arguments: dict[str, str], result: types.GetPromptResult
) -> dict[str, Any]:
    """``messages`` in the chat shape (role, content text) that ``llm/chat`` takes,
    ``result`` (the text of all messages) and ``description``."""
    messages = []
    for m in result.messages:
        text = getattr(m.content, "text", "") if m.content.type == "text" else ""
        messages.append({"role": m.role, "content": text})
    return {
        "operation": "prompts.get",
        "inputs": {"name": name, "arguments": arguments},
        "result": "\n".join(m["content"] for m in messages),
        "messages": messages,
        "description": result.description or "",
    }
