"""What an upstream's HTTP error answer says: status, message, code and retry-after.

Upstreams write errors in several shapes; :meth:`UpstreamFailure.read` knows them all:
OpenAI's ``{"error": {"message", "type", "param", "code"}}``, Ollama's
``{"error": "..."}``, FastAPI's ``{"detail": ...}`` (vLLM and friends) and
``{"message": ...}``, or plain text (a proxy's HTML page, Go's ``404 page not found``).
Which Gleitzeit error a failure becomes is the provider's to say
(:meth:`gleitzeit.httpllm.HttpLLMProvider.status_error`).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["UpstreamFailure", "retry_after"]

_MODEL_MISSING = re.compile(
    r"model\b.*\b(not found|not exist|no such|unknown)|unknown model|\bpull\b", re.IGNORECASE
)
_TAGS = re.compile(r"<[^>]+>")


def retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` (the more precise, which OpenAI sends)
    or ``retry-after`` (seconds or an HTTP date); None when neither is usable."""
    ms = headers.get("retry-after-ms")
    if ms is not None:
        try:
            return max(0.0, float(ms) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    from email.utils import parsedate_to_datetime  # rare: most send seconds

    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError, IndexError):
        return None


@dataclass(frozen=True)
class UpstreamFailure:
    """An HTTP error answer from an upstream."""

    status: int
    message: str
    #: The upstream's own error code (OpenAI's ``code``), if it sent one.
    code: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    #: The request field the upstream found wrong (OpenAI's ``param``), if it said.
    param: str | None = None

    @classmethod
    def read(cls, status: int, body: bytes, headers: Mapping[str, str]) -> UpstreamFailure:
        """The failure an error answer describes, whatever its shape."""
        message, code, param = _message_and_code(body)
        return cls(status, message or _status_text(status), code, headers, param)

    @property
    def retry_after(self) -> float | None:
        """Seconds the upstream asks to wait (see :func:`retry_after`)."""
        return retry_after(self.headers)

    def says_model_missing(self) -> bool:
        """Whether the upstream says the *model* is missing (OpenAI's
        ``model_not_found``, Ollama's ``model 'x' not found``), as opposed to a 404 for
        the path itself (a wrong base URL, a proxy without the endpoint)."""
        return self.code == "model_not_found" or bool(_MODEL_MISSING.search(self.message))


def _message_and_code(body: bytes) -> tuple[str, str | None, str | None]:
    """The message, code and param an error body gives."""
    try:
        data: Any = json.loads(body)
    except ValueError:
        text = _TAGS.sub(" ", body.decode("utf-8", "replace"))
        return " ".join(text.split())[:300], None, None
    if isinstance(data, dict):
        inner = data.get("error", data)
        if isinstance(inner, dict):
            message = inner.get("message") or inner.get("detail") or ""
            code, param = inner.get("code"), inner.get("param")
            return (
                _text(message),
                str(code) if isinstance(code, (str, int)) else None,
                param if isinstance(param, str) and param else None,
            )
        if isinstance(inner, str):
            return inner, None, None
    return _text(data), None, None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)[:300]


def _status_text(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "no message"
