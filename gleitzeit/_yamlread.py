"""Reading YAML quickly: libyaml's parser events turned straight into dicts and lists.

``yaml.load(text, Loader=CSafeLoader)`` parses in C but then composes a tree of nodes
(two position marks each) and walks it in Python, resolving every scalar with regular
expressions. For a workflow of 10,000 tasks that tree is most of the time and memory
of reading the file. :func:`load` builds the same Python values from the parser's
events, resolves each distinct plain scalar once, and keeps the cyclic garbage
collector out of the way while it allocates (nothing it builds can be garbage).

Whatever it does not handle itself — explicit tags, merge keys, complex keys, more
than one document, undefined aliases — it hands to PyYAML's own safe loader, so the
result (or the error) is always the one ``yaml.safe_load`` gives — but for a key given
twice in one mapping, which is an error here (with its line) where PyYAML keeps the
last. Without libyaml it is ``yaml.safe_load`` with the Python parser.

Line numbers are not kept: an error that needs one parses again (see
:mod:`gleitzeit._yamllines`), so a valid file never pays for them.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import yaml
from yaml.events import (
    AliasEvent,
    DocumentEndEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import ScalarNode

#: libyaml's C parser when PyYAML was built with it, else Python's.
SafeLoader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
HAS_LIBYAML = SafeLoader is not yaml.SafeLoader

_STR = "tag:yaml.org,2002:str"
#: Plain scalars resolved to these tags are built here; others (merge ``<<``, value
#: ``=``) go to PyYAML's loader.
_BUILT = frozenset(
    {
        _STR,
        "tag:yaml.org,2002:int",
        "tag:yaml.org,2002:float",
        "tag:yaml.org,2002:bool",
        "tag:yaml.org,2002:null",
        "tag:yaml.org,2002:timestamp",
    }
)


_NO_KEY = object()  # a mapping's next scalar is a key


class _Unusual(Exception):
    """A construct left to PyYAML's own loader."""


class _Duplicate(Exception):
    """A mapping names one key twice."""


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside: for code that allocates many objects and
    keeps them. Each collection would walk every object alive, so in a large process
    building 10,000 of anything costs mostly collections, and more the more is alive."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def load(text: str) -> Any:
    """The Python value of the one YAML document in ``text``, as ``yaml.safe_load``
    gives it, except that a key given twice in one mapping is an error (PyYAML keeps
    the last one silently: a misplaced line would override its twin unseen); a syntax
    error raises PyYAML's error, with its position."""
    with gc_paused():
        if HAS_LIBYAML:
            loader = SafeLoader(text)
            try:
                return _build(loader)
            except _Unusual:
                _raise_duplicate(text)  # (a document PyYAML reads: it does not check)
            except _Duplicate:
                _raise_duplicate(text)
            finally:
                loader.dispose()
        return yaml.load(text, Loader=SafeLoader)  # noqa: S506 - a safe loader


def _raise_duplicate(text: str) -> None:
    """Raise PyYAML's kind of error, with the line, for the first key given twice: the
    same tag and text (``1`` and ``1.0``, ``1`` and ``"1"`` are different keys)."""
    try:
        root = yaml.compose(text, Loader=SafeLoader)
    except yaml.YAMLError:
        return  # not one valid document: the loader says what is wrong
    todo = [root]
    while todo:
        node = todo.pop()
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, Any] = {}
            for key, value in node.value:
                if isinstance(key, ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
                    name = (key.tag, key.value)
                    if name in seen:
                        first = seen[name]
                        raise yaml.constructor.ConstructorError(
                            f"while reading a mapping (key {key.value!r} first on line "
                            f"{first.start_mark.line + 1})",
                            node.start_mark,
                            f"found key {key.value!r} a second time; remove one of them",
                            key.start_mark,
                        )
                    seen[name] = key
                todo.append(value)
        elif isinstance(node, yaml.SequenceNode):
            todo.extend(node.value)


def _build(loader: Any) -> Any:
    get = loader.get_event
    get()  # stream start
    event = get()
    if type(event) is StreamEndEvent:
        return None
    # event is the document start; the values follow.
    plain: dict[str, Any] = {}  # each distinct plain scalar, resolved and built once
    anchors: dict[str, Any] = {}
    stack: list[Any] = []  # the open containers, innermost last
    top: Any = None  # the innermost open container, stack[-1]
    in_map = False
    key: Any = _NO_KEY
    root: Any = None
    while True:
        event = get()
        kind = type(event)
        if kind is ScalarEvent:
            if event.tag is not None:
                raise _Unusual
            text = event.value
            if event.implicit[0]:
                try:
                    value = plain[text]
                except KeyError:
                    value = plain[text] = _plain(loader, text)
            else:
                value = text
        elif kind is MappingStartEvent:
            if event.tag is not None:
                raise _Unusual
            value = {}
        elif kind is SequenceStartEvent:
            if event.tag is not None:
                raise _Unusual
            value = []
        elif kind is MappingEndEvent or kind is SequenceEndEvent:
            stack.pop()
            if not stack:
                break
            top = stack[-1]
            in_map = type(top) is dict
            key = _NO_KEY
            continue
        elif kind is AliasEvent:
            try:
                value = anchors[event.anchor]
            except KeyError:
                raise _Unusual from None
        else:
            raise _Unusual
        anchor = getattr(event, "anchor", None) if kind is not AliasEvent else None
        if anchor is not None:
            anchors[anchor] = value
        if not stack:
            root = value
        elif in_map:
            if key is _NO_KEY:
                if type(value) in (dict, list):
                    raise _Unusual  # PyYAML reports it (or builds a tuple key from a list)
                key = value
                continue
            if key in top:
                raise _Duplicate
            top[key] = value
            key = _NO_KEY
        else:
            top.append(value)
        if kind is MappingStartEvent or kind is SequenceStartEvent:
            stack.append(value)
            top = value
            in_map = kind is MappingStartEvent
            key = _NO_KEY
        elif not stack:
            break  # a document that is one scalar
    if type(get()) is not DocumentEndEvent or type(get()) is not StreamEndEvent:
        raise _Unusual  # more than one document: PyYAML's loader says so
    return root


def _plain(loader: Any, text: str) -> Any:
    tag = loader.resolve(ScalarNode, text, (True, False))
    if tag == _STR:
        return text
    if tag not in _BUILT:
        raise _Unusual
    return loader.yaml_constructors[tag](loader, ScalarNode(tag, text))


__all__ = ["HAS_LIBYAML", "SafeLoader", "gc_paused", "load"]
