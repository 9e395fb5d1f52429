"""Names across the border: MCP tool names and Gleitzeit method names.

A method is ``protocol/name`` (``[a-z0-9][a-z0-9_.-]{0,31}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}``);
an MCP tool name is ``[A-Za-z0-9_.-]{1,128}`` (SEP-986), so ``/`` cannot pass as it is.
Both directions keep an explicit table rather than a reversible encoding, because
``_`` and ``.`` are legal on both sides.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_METHOD_TAIL_BAD = re.compile(r"[^A-Za-z0-9_.-]")
_TOOL_BAD = re.compile(r"[^A-Za-z0-9_.-]")
_METHOD_TAIL_MAX = 96
_TOOL_MAX = 128


def _unique(name: str, taken: set[str], limit: int) -> str:
    out = name
    n = 2
    while out in taken:
        suffix = f"_{n}"
        out = name[: limit - len(suffix)] + suffix
        n += 1
    taken.add(out)
    return out


def methods_for_tools(
    server: str, tools: Iterable[str], reserved: Iterable[str] = ()
) -> dict[str, str]:
    """``{method: tool}`` for a server's tools: ``<server>/<tool>``, with characters a
    method name cannot hold replaced by ``_`` and clashes numbered."""
    taken = {m.split("/", 1)[1] for m in reserved}
    out: dict[str, str] = {}
    for tool in tools:
        tail = _METHOD_TAIL_BAD.sub("_", tool)[:_METHOD_TAIL_MAX] or "tool"
        if not tail[0].isalnum():
            tail = ("t" + tail)[:_METHOD_TAIL_MAX]
        out[f"{server}/{_unique(tail, taken, _METHOD_TAIL_MAX)}"] = tool
    return out


def tools_for_methods(methods: Iterable[str]) -> dict[str, str]:
    """``{tool: method}``: ``calc/add`` becomes the MCP tool ``calc_add``."""
    taken: set[str] = set()
    out: dict[str, str] = {}
    for method in sorted(methods):
        name = _TOOL_BAD.sub("_", method.replace("/", "_"))[:_TOOL_MAX]
        out[_unique(name, taken, _TOOL_MAX)] = method
    return out
