"""The kinds of provider, in one place (kept free of imports: the CLI reads it)."""

from __future__ import annotations

from typing import Literal, get_args

#: What a provider is: an LLM, a tool, or an extension (anything else).
Kind = Literal["llm", "tool", "extension"]
KINDS: tuple[str, ...] = get_args(Kind)
