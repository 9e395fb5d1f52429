"""``${VAR}`` and ``${VAR:-default}`` in config values; ``$${`` writes a literal ``${``."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

_PATTERN = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


class MissingVariable(Exception):
    def __init__(self, loc: tuple[Any, ...], name: str, value: str) -> None:
        super().__init__(name)
        self.loc, self.name, self.value = loc, name, value


def substitute(
    data: Any, env: Mapping[str, str] | None = None, loc: tuple[Any, ...] = ()
) -> tuple[Any, list[MissingVariable]]:
    """Replace references in every string of ``data``; return the new data and the
    references that had neither a value nor a default."""
    env = os.environ if env is None else env
    missing: list[MissingVariable] = []

    def walk(node: Any, here: tuple[Any, ...]) -> Any:
        if isinstance(node, str):
            if "$" not in node:
                return node

            def repl(m: re.Match[str]) -> str:
                if m.group(0) == "$${":
                    return "${"
                name, default = m.group(1), m.group(2)
                value = env.get(name)
                if value is None or (value == "" and default is not None):
                    if default is None:
                        missing.append(MissingVariable(here, name, node))
                        return ""
                    return default
                return value

            return _PATTERN.sub(repl, node)
        if isinstance(node, dict):
            return {k: walk(v, here + (k,)) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, here + (i,)) for i, v in enumerate(node)]
        return node

    return walk(data, loc), missing
