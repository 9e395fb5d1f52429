"""Showing a run as it goes: a live view on a terminal, plain lines otherwise."""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any, TextIO

SYMBOL = {
    "pending": "·",
    "running": "▶",
    "completed": "✓",
    "failed": "✗",
    "skipped": "-",
    "retrying": "↻",
}


def _preview(result: Any, width: int = 60) -> str:
    if isinstance(result, dict):
        if "results" in result and "count" in result:
            return f"{result['count']} results"
        if "response" in result:
            result = result["response"]
        elif "result" in result:
            result = result["result"]
    text = str(result)
    if "\n" in text:
        text = text.replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


_RUNNING = SYMBOL["running"]
_COMPLETED = SYMBOL["completed"]

#: Seconds plain lines may wait to be written together (a frame, not a line, per write).
FRAME = 0.1
#: Lines gathered at most: written at once beyond that, even within a frame.
MAX_LINES = 256


class PlainProgress:
    """One line per event: for logs, pipes and CI.

    Inside a running event loop, lines are gathered and written together at most
    :data:`FRAME` seconds after the first of them, and at once when the run finishes:
    a run of thousands of short tasks makes a write per frame, not two per task.
    """

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stderr
        self._lines: list[str] = []
        self._timer: asyncio.TimerHandle | None = None

    def flush(self) -> None:
        """Write the lines gathered so far."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._lines:
            text = "\n".join(self._lines) + "\n"
            self._lines.clear()
            self.out.write(text)
            self.out.flush()

    def _later(self) -> None:
        """Write at the end of this frame, or now when no event loop runs."""
        if self._timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._timer = loop.call_later(FRAME, self.flush)

    def __call__(self, event: str, **data: Any) -> None:
        # The two events of every task first, on the shortest path.
        if event == "task_started":
            self._lines.append(f"  {_RUNNING} {data['task']}")
        elif event == "task_completed":
            self._lines.append(
                f"  {_COMPLETED} {data['task']} ({data['duration']:.2f}s) {_preview(data['result'])}"
            )
        else:
            self._other(event, data)
            return
        if len(self._lines) >= MAX_LINES:
            self.flush()
        elif self._timer is None:
            self._later()

    def _other(self, event: str, data: dict[str, Any]) -> None:
        line = None
        if event == "run_started":
            what = "resuming" if data.get("resumed") else "running"
            line = (
                f"{what} {data['workflow']!r} ({len(data['tasks'])} tasks) as run {data['run_id']}"
            )
        elif event == "task_failed":
            line = f"  {SYMBOL['failed']} {data['task']}: {data['error']}"
        elif event == "task_retry":
            line = (
                f"  {SYMBOL['retrying']} {data['task']}: try {data['attempt']} failed ({data['error']}); "
                f"retrying in {data['delay']:.2f}s"
            )
        elif event == "task_skipped":
            line = f"  {SYMBOL['skipped']} {data['task']}: {data['reason']}"
        elif event == "task_warning":
            line = f"  warning: {data['warning']}"
        elif event == "run_finished":
            line = f"run {data['run_id']} {data['status']} in {data['duration']:.2f}s"
        if line is not None:
            self._lines.append(line)
        if event == "run_finished" or len(self._lines) >= MAX_LINES:
            self.flush()
        elif line is not None:
            self._later()


class LiveProgress:
    """A redrawn table of tasks on a terminal (at most ten redraws a second)."""

    MAX_ROWS = 20

    def __init__(self, out: TextIO | None = None) -> None:
        self.out = out or sys.stderr
        self.order: list[str] = []
        self.status: dict[str, str] = {}
        self.note: dict[str, str] = {}
        self.header = ""
        self._drawn = 0
        self._last = 0.0

    def __call__(self, event: str, **data: Any) -> None:
        task = str(data.get("task"))
        if event == "run_started":
            what = "resuming" if data.get("resumed") else "running"
            self.header = f"{what} {data['workflow']!r} as run {data['run_id']}"
            self.order = list(data["tasks"])
            self.status = {t: "pending" for t in self.order}
        elif event == "task_started":
            self.status[task] = "running"
        elif event == "task_completed":
            self.status[task] = "completed"
            self.note[task] = f"({data['duration']:.2f}s) {_preview(data['result'])}"
        elif event == "task_failed":
            self.status[task] = "failed"
            self.note[task] = data["error"]
        elif event == "task_retry":
            self.status[task] = "retrying"
            self.note[task] = f"try {data['attempt']} failed; retrying in {data['delay']:.1f}s"
        elif event == "task_skipped":
            self.status[task] = "skipped"
            self.note[task] = data["reason"]
        elif event == "task_warning":
            self.note[task] = f"warning: {data['warning']}"
        final = event == "run_finished"
        now = time.monotonic()
        if final or now - self._last >= 0.1:
            self._last = now
            self._draw(final, data)

    def columns(self) -> int:
        """The terminal's width, read at each redraw (it may change)."""
        import shutil

        return shutil.get_terminal_size((100, 24)).columns

    def _draw(self, final: bool, data: dict[str, Any]) -> None:
        counts: dict[str, int] = {}
        for s in self.status.values():
            counts[s] = counts.get(s, 0) + 1
        summary = "  ".join(f"{SYMBOL[k]} {k} {v}" for k, v in sorted(counts.items()))
        rows = self.order
        if len(rows) > self.MAX_ROWS and not final:
            active = [t for t in rows if self.status[t] in ("running", "retrying", "failed")]
            rows = active[: self.MAX_ROWS]
        elif len(rows) > self.MAX_ROWS:
            rows = [t for t in rows if self.status[t] != "completed"][: self.MAX_ROWS]
        width = max((len(t) for t in rows), default=4)
        lines = [self.header, summary] + [
            f"  {SYMBOL[self.status[t]]} {t.ljust(width)}  {self.note.get(t, '')}" for t in rows
        ]
        if final:
            lines.append(f"run {data['run_id']} {data['status']} in {data['duration']:.2f}s")
        # One screen row per line: a line wider than the terminal would wrap, and the
        # redraw, which moves up by lines, would leave the wrapped rows behind.
        columns = max(20, self.columns() - 1)
        lines = [line if len(line) <= columns else line[: columns - 1] + "…" for line in lines]
        text = ""
        if self._drawn:
            text += f"\x1b[{self._drawn}F\x1b[J"
        text += "\n".join(lines) + "\n"
        self.out.write(text)
        self.out.flush()
        self._drawn = len(lines)
