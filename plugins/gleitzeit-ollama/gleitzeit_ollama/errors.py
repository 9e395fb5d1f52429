"""Mapping the ollama client's (and httpx's) exceptions onto gleitzeit's typed errors."""

from __future__ import annotations

import re
from contextvars import ContextVar

from pydantic import ValidationError

from gleitzeit.errors import (
    AuthenticationError,
    GleitzeitError,
    InvalidParamsError,
    ModelNotFoundError,
    ProviderError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RateLimitError,
    StreamError,
)

#: ``retry-after`` of the last response seen in this task (the ollama client's
#: ResponseError does not carry headers, so an httpx response hook records it).
last_retry_after: ContextVar[float | None] = ContextVar("ollama_retry_after", default=None)


async def record_retry_after(response) -> None:  # noqa: ANN001 - an httpx.Response
    value = response.headers.get("retry-after")
    try:
        last_retry_after.set(float(value) if value is not None else None)
    except ValueError:
        last_retry_after.set(None)


def map_error(
    exc: BaseException,
    *,
    base_url: str,
    model: str | None = None,
    models: tuple[str, ...] = (),
    timeout: float | None = None,
    chunks_received: int | None = None,
) -> GleitzeitError:
    """A gleitzeit error for an exception from the ollama client."""
    import httpx
    import ollama

    if isinstance(exc, GleitzeitError):
        return exc
    where = f"Ollama at {base_url}"
    mid_stream = chunks_received is not None and chunks_received > 0
    if isinstance(exc, httpx.TimeoutException):
        what = "sent nothing more" if mid_stream else "did not answer"
        return ProviderTimeoutError(
            f"{where} {what} within {timeout:g}s" if timeout else f"{where} timed out",
            hint="raise timeout under plugins.ollama in gleitzeit.yaml (a model may be loading)",
        )
    if isinstance(exc, ollama.ResponseError):
        status, msg = exc.status_code, str(exc.error)
        if status == -1 or (mid_stream and status < 400):
            return StreamError(
                f"{where} sent an error inside the stream"
                + (f" after {chunks_received} chunks" if chunks_received else "")
                + f": {msg}"
            )
        if status in (401, 403):
            return AuthenticationError(f"{where} refused the request ({status}: {msg})")
        if status == 404 and not _says_model_missing(msg):
            # A 404 for the path itself (a proxy without /api/chat, a wrong base URL):
            # not a missing model, and ``ollama pull`` would not help.
            return ProviderUnavailableError(
                f"{where} has no such endpoint (404: {msg or 'not found'})",
                hint="check base_url under plugins.ollama (or OLLAMA_HOST): it should be "
                "the server's root, such as http://localhost:11434",
            )
        if status == 404:
            shown = ", ".join(m for m in models if not m.endswith(":latest")) or "(none)"
            return ModelNotFoundError(
                f"{where} has no model {model!r} ({msg})",
                hint=f"run `ollama pull {model}`; available models: {shown}",
                model=model,
            )
        if status == 429:
            wait = last_retry_after.get()
            return RateLimitError(
                f"{where} is rate limiting (429: {msg})",
                retry_after=wait,
                hint=f"retry after {wait:g}s" if wait is not None else "slow down and retry",
            )
        if status >= 500:
            return ProviderUnavailableError(f"{where} failed with {status}: {msg}")
        if status == 400:
            return InvalidParamsError(f"{where} refused the request (400: {msg})")
        return ProviderError(f"{where} answered {status}: {msg}")
    if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError)) and mid_stream:
        return StreamError(
            f"The stream from {where} broke off after {chunks_received} chunks: "
            f"{type(exc).__name__}: {exc}"
        )
    if isinstance(exc, ValidationError):  # an upstream's chunk not of Ollama's shape
        fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in exc.errors()[:3])
        return StreamError(
            f"{where} sent a reply not in Ollama's format"
            + (f" after {chunks_received} chunks" if chunks_received else "")
            + f" (field {fields or '?'})",
            hint="is base_url an Ollama-compatible server?",
        )
    if isinstance(exc, (ConnectionError, httpx.TransportError)):
        return ProviderUnavailableError(
            f"Cannot reach {where}: {type(exc).__name__}",
            hint="start Ollama (`ollama serve`) or set base_url / OLLAMA_HOST",
        )
    return ProviderError(f"{where}: {type(exc).__name__}: {exc}")


_MODEL_MISSING = re.compile(r"model\b.*\b(not found|not exist|no such)|pull", re.IGNORECASE)


def _says_model_missing(message: str) -> bool:
    """Ollama's own 404 for a missing model says so (``model 'x' not found``)."""
    return bool(_MODEL_MISSING.search(message))
