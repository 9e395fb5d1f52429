"""gleitzeit._yamlread gives what PyYAML's safe loader gives, values and errors alike."""

from __future__ import annotations

import datetime
import gc
import math
from pathlib import Path
from typing import Any

import pytest
import yaml

from gleitzeit import _yamlread as yamlread
from gleitzeit.workflows import WorkflowError, parse_workflow

DOCUMENTS = [
    "",
    "plain",
    "1",
    "- 1\n- 2\n",
    "[1, [2, [3]], {a: b}]",
    "a: {b: [1, {c: d}], e: []}\nf: {}\n",
    "1: 2\n3.5: x\nnull: y\ntrue: z\n",
    "a: 2001-12-14t21:59:43.10-05:00\nb: 0x1f\nc: 1_000\nd: .inf\ne: ~\nf: yes\n",
    "g: 'yes'\nh: \"1\"\ni: 1:30\nj: 0o17\nk: 017\nl: -.5\nm: +12\nn: .nan\no: 2002-12-14\n",
    "a: |\n  text\n  more\nb: >\n  folded\n  lines\n",
    "a:\n  - b\n  -\n  - c: d\n    e: f\n",
    "? a\n",
    "a: &x [1, 2]\nb: *x\n",
    "a: &a 1\nb: *a\n",
    "--- 5\n...\n",
    # Left to PyYAML: explicit tags, merge keys, complex keys, several documents.
    "a: !!str 1\nb: ! 2\n",
    "!!set {a, b}",
    "x: &a\n  y: 1\nz:\n  <<: *a\n  w: 2\n",
    "? [1, 2]\n: 3\n",
    "? {a: 1}\n: 3\n",
    "---\na: 1\n---\nb: 2\n",
    "a: *undefined\n",
    "f: =\n",
    # Not YAML at all.
    "a: b: c",
    "a: [1, 2\n",
    "- a\nb: c\n",
]


def _same(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(v, b[k]) for k, v in a.items())
    return bool(a == b)


def _outcome(load: Any, text: str) -> tuple[str, Any]:
    try:
        return "value", load(text)
    except yaml.YAMLError as exc:
        return "error", str(exc)


@pytest.mark.parametrize("text", DOCUMENTS)
def test_every_document_reads_as_the_safe_loader_reads_it(text: str) -> None:
    expected = _outcome(lambda t: yaml.load(t, Loader=yamlread.SafeLoader), text)
    got = _outcome(yamlread.load, text)
    assert got[0] == expected[0]
    if got[0] == "error":
        assert got[1] == expected[1]
    else:
        assert _same(got[1], expected[1])


def test_an_alias_is_the_same_object_as_its_anchor() -> None:
    data = yamlread.load("a: &x [1, 2]\nb: *x\n")
    assert data["a"] is data["b"]


def test_timestamps_are_datetimes() -> None:
    data = yamlread.load("when: 2024-05-01 10:00:00\nday: 2024-05-01\n")
    assert data == {
        "when": datetime.datetime(2024, 5, 1, 10, 0),
        "day": datetime.date(2024, 5, 1),
    }


def test_the_collector_is_switched_back_on_after_an_error() -> None:
    assert gc.isenabled()
    with pytest.raises(yaml.YAMLError):
        yamlread.load("a: [1, 2\n")
    assert gc.isenabled()


@pytest.mark.skipif(not yamlread.HAS_LIBYAML, reason="PyYAML without libyaml keeps the last")
def test_a_key_given_twice_is_an_error_with_its_line():
    text = "tasks:\n  - id: a\n    method: calc/add\n    method: calc/multiply\n"
    with pytest.raises(yaml.YAMLError) as info:
        yamlread.load(text)
    assert info.value.problem == "found key 'method' a second time; remove one of them"
    assert info.value.problem_mark.line + 1 == 4
    # Keys equal in Python but distinct in YAML stay as safe_load reads them, beside
    # keys of one text and two tags.
    both = 'y: {1: a, "1": b}\nx: {1: a, 1.0: b}\n'
    assert yamlread.load(both) == yaml.safe_load(both)
    # Documents left to PyYAML's loader (a tag, a merge key) are checked all the same.
    for unusual in ("a: !!str 1\na: 2\n", "d: &d {k: 1}\nm:\n  <<: *d\n  v: 1\n  v: 2\n"):
        with pytest.raises(yaml.YAMLError, match="a second time"):
            yamlread.load(unusual)
    with pytest.raises(WorkflowError, match=r"x.yaml:4:5: not valid YAML: found key 'method'"):
        parse_workflow(text, source=Path("x.yaml"))
