"""Line numbers of the keys in a YAML text, so errors can say where."""

from __future__ import annotations

from typing import Any

import yaml

from gleitzeit._yamlread import SafeLoader, load

Loc = tuple[Any, ...]


def line_map(text: str) -> dict[Loc, int]:
    """Map each key path (and list index) in the YAML text to its 1-based line."""
    lines: dict[Loc, int] = {}
    try:
        root = yaml.compose(text, Loader=SafeLoader)
    except yaml.YAMLError:
        return lines

    def walk(node: Any, loc: Loc) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                here = loc + (key.value,)
                lines[here] = key.start_mark.line + 1
                walk(value, here)
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                lines[loc + (i,)] = item.start_mark.line + 1
                walk(item, loc + (i,))

    if root is not None:
        walk(root, ())
    return lines


class Lines:
    """Line numbers of a YAML text, worked out only when an error needs one.

    Valid files never pay for a second pass over the text.
    """

    def __init__(self, text: str) -> None:
        self._text = text
        self._map: dict[Loc, int] | None = None

    def locate(self, loc: Loc) -> int | None:
        if self._map is None:
            self._map = line_map(self._text)
        return locate(self._map, loc)


def locate(lines: dict[Loc, int], loc: Loc) -> int | None:
    """The line of ``loc``, or of the nearest enclosing key that has one."""
    while loc:
        if loc in lines:
            return lines[loc]
        loc = loc[:-1]
    return None


#: Nodes a document may stand for once its aliases are expanded. PyYAML shares aliased
#: objects, but everything after loading (validation, substitution, JSON) walks the
#: expanded tree: a 500-byte "billion laughs" file would cost gigabytes and minutes.
MAX_EXPANDED_NODES = 200_000


def expanded_size(text: str, limit: int = MAX_EXPANDED_NODES) -> int:
    """Nodes of ``text`` with aliases expanded, counted without expanding them (each
    node's size is worked out once); stops counting past ``limit``."""
    root = yaml.compose(text, Loader=SafeLoader)
    sizes: dict[int, int] = {}

    def size(node: Any) -> int:
        known = sizes.get(id(node))
        if known is not None:
            return known
        total = 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                total += size(key) + size(value)
                if total > limit:
                    break
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                total += size(item)
                if total > limit:
                    break
        sizes[id(node)] = total
        return total

    return 0 if root is None else size(root)


def load_mapping(text: str, label: str, error: type[Exception]) -> dict[str, Any]:
    """Parse YAML whose top level must be a mapping; ``error(message)`` otherwise.

    A document whose aliases expand beyond :data:`MAX_EXPANDED_NODES` nodes is refused.
    """
    try:
        if "*" in text and "&" in text:  # only documents with anchors and aliases pay
            nodes = expanded_size(text)
            if nodes > MAX_EXPANDED_NODES:
                raise error(
                    f"{label}: YAML aliases expand to more than {MAX_EXPANDED_NODES:,} nodes "
                    "(an alias bomb?); write the values out or use fewer aliases"
                )
        data = load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{label}:{mark.line + 1}:{mark.column + 1}" if mark else label
        problem = getattr(exc, "problem", None) or str(exc)
        raise error(f"{where}: not valid YAML: {problem}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise error(f"{label}: the top level must be a mapping, got {type(data).__name__}")
    return data
