"""Mapping the openai SDK's exceptions onto gleitzeit's typed errors."""

from __future__ import annotations

from typing import Any

from gleitzeit.errors import (
    AuthenticationError,
    ContextWindowError,
    GleitzeitError,
    InvalidParamsError,
    ModelNotFoundError,
    ProviderError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    RateLimitError,
    StreamError,
)


def _retry_after(headers: Any) -> float | None:
    """Seconds to wait, from ``retry-after-ms`` or ``retry-after`` (seconds)."""
    if headers is None:
        return None
    for name, divisor in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        value = headers.get(name)
        if value is None:
            continue
        try:
            return float(value) / divisor
        except ValueError:
            continue
    return None


def _message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(body.get("message"), str):
            return body["message"]
    return str(getattr(exc, "message", None) or exc)


def _code(exc: Any) -> str | None:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict):
            return inner.get("code")
    return getattr(exc, "code", None)


def map_error(
    exc: BaseException,
    *,
    base_url: str,
    model: str | None = None,
    models: tuple[str, ...] = (),
    timeout: float | None = None,
    chunks_received: int | None = None,
) -> GleitzeitError:
    """A gleitzeit error for an SDK exception; ``chunks_received`` is set inside a stream."""
    import openai

    where = f"OpenAI-compatible server at {base_url}"
    if isinstance(exc, GleitzeitError):
        return exc
    mid_stream = chunks_received is not None and chunks_received > 0
    if isinstance(exc, openai.APITimeoutError) or (
        isinstance(exc, openai.APIConnectionError)
        and "timeout" in type(exc.__cause__).__name__.lower()
    ):
        what = "sent nothing more" if mid_stream else "did not answer"
        return ProviderTimeoutError(
            f"{where} {what} within {timeout:g}s" if timeout else f"{where} timed out",
            hint="raise timeout under plugins.openai in gleitzeit.yaml",
        )
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc
        if mid_stream:
            return StreamError(
                f"The stream from {where} broke off after {chunks_received} chunks: "
                f"{type(cause).__name__}: {cause}"
            )
        return ProviderUnavailableError(
            f"Cannot reach {where}: {type(cause).__name__}: {cause}",
            hint="check base_url and that the server is running",
        )
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        msg = _message(exc)
        if status in (401, 403):
            return AuthenticationError(
                f"{where} rejected the API key ({status}: {msg})",
                hint="check OPENAI_API_KEY or api_key under plugins.openai in gleitzeit.yaml",
            )
        if status == 404:
            if _code(exc) == "model_not_found" or "model" in msg.lower():
                shown = ", ".join(models[:20]) or "(unknown: the server lists none)"
                return ModelNotFoundError(
                    f"{where} has no model {model!r} ({msg})",
                    hint=f"available models: {shown}",
                    model=model,
                )
            return ProviderError(
                f"{where} answered 404 Not Found: {msg}", hint="base_url should end in /v1"
            )
        if status == 429:
            wait = _retry_after(exc.response.headers)
            return RateLimitError(
                f"{where} is rate limiting ({_code(exc) or 'rate_limit_exceeded'}: {msg})",
                retry_after=wait,
                hint=f"retry after {wait:g}s" if wait is not None else "slow down and retry",
            )
        if status >= 500 or status in (408, 409):
            return ProviderUnavailableError(f"{where} failed with {status}: {msg}")
        if status == 400 and _code(exc) == "context_length_exceeded":
            return ContextWindowError(
                f"{where}: the conversation is longer than the context window of model "
                f"{model!r} ({msg})",
                hint="shorten the messages, or use a model alias whose fallback has a larger one",
            )
        if status in (400, 413, 422):
            return InvalidParamsError(f"{where} refused the request ({status}: {msg})")
        return ProviderError(f"{where} answered {status}: {msg}")
    if isinstance(exc, openai.APIError):  # an error event inside a stream
        return StreamError(
            f"{where} sent an error inside the stream"
            + (f" after {chunks_received} chunks" if chunks_received else "")
            + f": {_message(exc)}"
        )
    return ProviderError(f"{where}: {type(exc).__name__}: {exc}")
