"""Printing for the command line: tables for people, JSON for scripts, errors to stderr."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, TextIO

import click


def echo_json(data: Any) -> None:
    import json

    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain left-aligned table; empty cells print as '-'."""
    cells = [[("-" if c in (None, "", []) else str(c)) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], len(c))
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in cells:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def error(message: str) -> None:
    """Print an error for a person: 'error: ...' on stderr."""
    click.echo(f"error: {message}", err=True)


def warn(message: str) -> None:
    click.echo(f"warning: {message}", err=True)


def write(text: str, out: TextIO | None = None) -> None:
    out = out or sys.stdout
    out.write(text)
    out.flush()
