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

from gleitzeit._dispatch import CallListener
from gleitzeit.config.secrets import looks_secret
from gleitzeit.request import CALL_ID

if TYPE_CHECKING:
    from gleitzeit._dispatch import Call
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
_encode_str: Any = json.encoder.encode_basestring


def _json_opt(value: Any) -> str:
    return "null" if value is None else _encode_str(str(value))


def add_secret(value: str | None) -> None:
    """Mask ``value`` in every log line from now on (tokens, API keys)."""
    if value and len(value) >= 4:
        _secrets.add(value)


def add_secrets_from(data: Any, key: str = "") -> None:
    """Mask, in every log line from now on, the values of secret-looking keys
    (``api_key``, ``token``...) of settings no model describes — the ones ``config
    show`` masks by name. Typed settings go through :func:`add_secrets_of`."""
    if isinstance(data, dict):
        for k, v in data.items():
            add_secrets_from(v, str(k))
    elif isinstance(data, list):
        for v in data:
            add_secrets_from(v, key)
    elif isinstance(data, str) and looks_secret(key):
        add_secret(data)


def add_secrets_of(value: Any) -> None:
    """Mask every secret field (``SecretStr``) of a config or settings model in every
    log line from now on."""
    from gleitzeit.config.secrets import secret_values

    for secret in secret_values(value):
        add_secret(secret)


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


#: A request's line before it is formatted: (time, logger, call_id, method, provider,
#: instance, model, outcome, ms, retries, error text or None).
RequestLine = tuple[float, str, str, str, Any, Any, Any, str, float, int, Any]
_FIELD_NAMES = ("call_id", "method", "provider", "instance", "model", "outcome", "ms", "retries")


def _request_message(line: RequestLine) -> str:
    text = f"{line[3]} {line[7]} in {line[8]:g} ms"
    return text if line[10] is None else f"{text}: {line[10]}"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``message``, then the
    record's fields (``extra={"fields": {...}}``) and the context's call id."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        data.update(_fields(record))
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        text = _encode(data)
        return _mask(text) if _secrets else text

    def line(self, created: float, level: str, name: str, message: str, fields: dict) -> str:
        """The line of a record that was never made (the request log's fast path)."""
        data: dict[str, Any] = {
            "ts": round(created, 6),
            "level": level,
            "logger": name,
            "message": message,
        }
        data.update(fields)
        text = _encode(data)
        return _mask(text) if _secrets else text

    def request_line(self, line: RequestLine) -> str:
        """A request's line, from the values :class:`RequestLog` noted."""
        e = _encode_str
        t, name, call_id, method, provider, instance, model, outcome, ms, retries, _ = line
        text = (
            f'{{"ts":{t:.6f},"level":"INFO","logger":{e(name)},'
            f'"message":{e(_request_message(line))},"call_id":{e(call_id)},'
            f'"method":{e(method)},"provider":{_json_opt(provider)},'
            f'"instance":{_json_opt(instance)},"model":{_json_opt(model)},'
            f'"outcome":{e(outcome)},"ms":{ms!r},"retries":{retries}}}'
        )
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

    def request_line(self, line: RequestLine) -> str:
        """A request's line, from the values :class:`RequestLog` noted."""
        fields = dict(zip(_FIELD_NAMES, line[2:10], strict=True))
        return self.line(line[0], "INFO", line[1], _request_message(line), fields)

    def line(self, created: float, level: str, name: str, message: str, fields: dict) -> str:
        """The line of a record that was never made (the request log's fast path)."""
        stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(created))
        text = f"{stamp},{int(created * 1000) % 1000:03d} {level} {name}: {message} "
        return _mask(text + " ".join(f"{k}={v}" for k, v in fields.items()))


class LineHandler(logging.StreamHandler):
    """A stream handler that, inside an event loop, flushes at most every
    :attr:`FLUSH_DELAY` seconds rather than once per line: a busy server writes its
    request lines in few writes, and no line waits longer than that (nor past the
    process's exit: logging flushes every handler then). Outside a loop it flushes
    each line, as the stdlib's does."""

    FLUSH_DELAY = 0.05

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self._flush_pending = False
        # ("request", RequestLine) or ("line", (time, logger, message, fields))
        self._deferred: list[tuple[str, Any]] = []

    def flush(self) -> None:
        if self._flush_pending:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop here: flush now
            super().flush()
            return
        self._flush_pending = True
        loop.call_later(self.FLUSH_DELAY, self._flush_now)

    def _flush_now(self) -> None:
        self._flush_pending = False
        self._drain()
        super().flush()

    def write_line(self, name: str, message: str, fields: dict[str, Any]) -> None:
        """Write an INFO line without making a LogRecord."""
        self._defer("line", (time.time(), name, message, fields))

    def write_request(self, line: RequestLine) -> None:
        """Write a request's line (see :class:`RequestLog`)."""
        self._defer("request", line)

    def _defer(self, kind: str, item: Any) -> None:
        """Inside an event loop, a line is only noted here, and formatted and written
        with the others of the next :attr:`FLUSH_DELAY` seconds in one go (before any
        other record, so lines stay in order); outside one, it is written now."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._write([(kind, item)])
            return
        with self.lock:  # type: ignore[union-attr]
            self._deferred.append((kind, item))
        if not self._flush_pending:
            self._flush_pending = True
            loop.call_later(self.FLUSH_DELAY, self._flush_now)

    def _write(self, items: list[tuple[str, Any]]) -> None:
        formatter = self.formatter
        if not isinstance(formatter, (JsonFormatter, TextFormatter)):
            raise TypeError("write_line needs a gleitzeit formatter")
        end = self.terminator
        out = []
        for kind, item in items:
            if kind == "request":
                out.append(formatter.request_line(item) + end)
            else:
                out.append(formatter.line(item[0], "INFO", item[1], item[2], item[3]) + end)
        with self.lock:  # type: ignore[union-attr]
            self.stream.write("".join(out))
            self.stream.flush()

    def _drain(self) -> None:
        if self._deferred:
            with self.lock:  # type: ignore[union-attr]
                lines, self._deferred = self._deferred, []
            self._write(lines)

    def emit(self, record: logging.LogRecord) -> None:
        self._drain()
        super().emit(record)

    def close(self) -> None:
        self._drain()
        super().close()


#: The handler :func:`setup_logging` installed, when it is the only one.
_installed: LineHandler | None = None


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
    global _installed
    _installed = handler
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
        self._checked: tuple[LineHandler, float, bool] | None = None

    def _fast_path(self, fast: LineHandler, log: logging.Logger) -> bool:
        """Whether ``fast`` is the one handler of the request lines — looked up again
        at most every 50 ms (a handler added later takes over by then)."""
        now = time.monotonic()
        checked = self._checked
        if checked is not None and checked[0] is fast and now - checked[1] < 0.05:
            return checked[2]
        only = _only(fast, log)
        self._checked = (fast, now, only)
        return only

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
        line: RequestLine = (
            time.time(),
            log.name,
            call.call_id,
            request.method,
            instance.name if instance is not None else request.provider,
            instance.id if instance is not None else None,
            request.model,
            outcome,
            ms,
            call.n,
            None if error is None or outcome == "cancelled" else str(error),
        )
        fast = _installed
        if fast is not None and self._fast_path(fast, log):
            # The request line is the one record per call: when setup_logging's
            # handler is the only one it reaches, its values are noted and the line
            # written with the others in one go — a few microseconds, not twenty.
            fast.write_request(line)
            return
        # Made directly rather than through log.info(): the caller's file and line
        # (a walk up the stack per request) would only ever say "here".
        record = log.makeRecord(
            log.name, logging.INFO, __file__, 0, _request_message(line), (), None
        )
        record.fields = dict(zip(_FIELD_NAMES, line[2:10], strict=True))
        log.handle(record)


def _only(handler: LineHandler, log: logging.Logger) -> bool:
    """Whether ``handler`` is the one handler ``log``'s records reach, with no
    filter on the way."""
    node: Any = log
    while node is not None:
        if node.filters:
            return False
        if node.handlers:
            return (
                node is logging.root
                and len(node.handlers) == 1
                and node.handlers[0] is handler
                and not handler.filters
            )
        if not node.propagate:
            return False
        node = node.parent
    return False
