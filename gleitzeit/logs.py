"""Structured logs: one line per request, as JSON or text, with call ids.

``gleitzeit serve`` and ``gleitzeit provider run`` call :func:`setup_logging` with their
``--log-format`` and ``--log-level``; the dispatcher's :class:`RequestLog` writes one
INFO line per request (``call_id``, method, provider, instance, model, outcome, ms,
retries) to the ``gleitzeit.calls`` logger, and a provider runner writes its own line
per request served with the same call id. Only the standard library is used.

Secrets never reach a log line: request parameters and results are never logged, and
every value registered with :func:`add_secret` (the server's token, API keys) is
masked wherever it would appear in a message or a field.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

from gleitzeit.dispatch import CallListener
from gleitzeit.request import CALL_ID

if TYPE_CHECKING:
    from gleitzeit.dispatch import Call
    from gleitzeit.instance import ProviderInstance

__all__ = [
    "JsonFormatter",
    "RequestLog",
    "TextFormatter",
    "add_secret",
    "outcome_of",
    "setup_logging",
]

CALLS_LOGGER = "gleitzeit.calls"
_secrets: set[str] = set()
# One encoder for every line: json.dumps() with options builds a new one per call.
_encode = json.JSONEncoder(ensure_ascii=False, default=str).encode


def add_secret(value: str | None) -> None:
    """Mask ``value`` in every log line from now on (tokens, API keys)."""
    if value and len(value) >= 4:
        _secrets.add(value)


def _mask(text: str) -> str:
    for secret in _secrets:
        if secret in text:
            text = text.replace(secret, "***")
    return text


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = dict(getattr(record, "fields", None) or {})
    if "call_id" not in fields:
        call_id = CALL_ID.get()
        if call_id is not None:
            fields["call_id"] = call_id
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``message``, then the
    record's fields (``extra={"fields": {...}}``) and the context's call id."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname,
            "logger": record.name,
            "message": _mask(record.getMessage()),
        }
        data.update(_fields(record))
        if record.exc_info:
            data["exc"] = _mask(self.formatException(record.exc_info))
        text = _encode(data)
        return _mask(text) if _secrets else text


class TextFormatter(logging.Formatter):
    """``time LEVEL logger: message key=value ...``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = _fields(record)
        if fields:
            text += " " + " ".join(f"{k}={v}" for k, v in fields.items())
        return _mask(text)


class LineHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """A stream handler that, inside an event loop, flushes once per loop turn rather
    than once per line: a busy server writes its request lines in one go per turn,
    and a line still reaches the stream before the loop does anything else."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self._flush_pending = False

    def flush(self) -> None:
        if self._flush_pending:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop here: flush now
            super().flush()
            return
        self._flush_pending = True
        loop.call_soon(self._flush_now)

    def _flush_now(self) -> None:
        self._flush_pending = False
        super().flush()


def setup_logging(
    fmt: str = "text", level: str | int = "INFO", stream: TextIO | None = None
) -> None:
    """Send every ``gleitzeit`` log record at ``level`` or above to ``stream``
    (stderr), as ``json`` or ``text`` lines; replaces handlers set before."""
    handler = LineHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    # A line per request must stay cheap: the record's thread and process names are
    # never shown, so they are not looked up (the logging docs' own optimisation).
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.WARNING)
    logging.getLogger("gleitzeit").setLevel(level.upper() if isinstance(level, str) else level)


def outcome_of(error: BaseException | None) -> str:
    """``ok``, an error's code (``timeout``, ``tool_error``...), or ``cancelled``."""
    if error is None:
        return "ok"
    code = getattr(error, "code", None)
    if isinstance(code, str):
        return code
    if not isinstance(error, Exception):  # CancelledError, GeneratorExit: the caller left
        return "cancelled"
    return "internal_error"


class RequestLog(CallListener):
    """Writes one INFO line per request to ``gleitzeit.calls``."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self.log = logger or logging.getLogger(CALLS_LOGGER)

    def call_ended(
        self,
        call: Call,
        instance: ProviderInstance | None,
        error: BaseException | None,
        result: dict[str, Any] | None,
    ) -> None:
        log = self.log
        if not log.isEnabledFor(logging.INFO):
            return
        outcome = outcome_of(error)
        request = call.request
        ms = round((time.perf_counter() - call.begun) * 1000, 3)
        fields = {
            "call_id": call.call_id,
            "method": request.method,
            "provider": instance.name if instance is not None else request.provider,
            "instance": instance.id if instance is not None else None,
            "model": request.model,
            "outcome": outcome,
            "ms": ms,
            "retries": call.n,
        }
        text = f"{request.method} {outcome} in {ms:g} ms"
        if error is not None and outcome != "cancelled":
            text += f": {error}"
        # Made directly rather than through log.info(): the caller's file and line
        # (a walk up the stack per request) would only ever say "here".
        record = log.makeRecord(log.name, logging.INFO, __file__, 0, text, None, None)
        record.fields = fields
        log.handle(record)
