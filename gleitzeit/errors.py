"""The one exception hierarchy of Gleitzeit.

Every error a user can see derives from :class:`GleitzeitError`. Each carries a
``message`` (what went wrong), an optional ``hint`` (what to do next), a stable
``code`` (for the wire and for scripts) and ``retryable`` (whether trying the same
request again, possibly on another instance, can help).
"""

from __future__ import annotations

from typing import Any


class GleitzeitError(Exception):
    """Base of every error Gleitzeit raises on purpose."""

    code: str = "error"
    retryable: bool = False
    exit_code: int = 1

    def __init__(self, message: str, *, hint: str | None = None, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.details = details

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} — {self.hint}"
        return self.message

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe description, used on the wire and by ``--json`` output."""
        data: dict[str, Any] = {
            "code": self.code,
            "message": self.message,
            "retryable": self.retryable,
        }
        if self.hint:
            data["hint"] = self.hint
        if self.details:
            data["details"] = self.details
        return data


class ConfigError(GleitzeitError):
    """The configuration file or an environment setting is invalid."""

    code = "config_error"
    exit_code = 2

    def __init__(self, message: str, *, problems: list[str] | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.problems = problems or []

    def __str__(self) -> str:
        text = self.message
        if self.problems:
            text += "\n" + "\n".join(f"  {p}" for p in self.problems)
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text


class PluginError(GleitzeitError):
    """A plugin failed to import, validate, register or configure."""

    code = "plugin_error"


class RoutingError(GleitzeitError):
    """No provider instance can serve the request."""

    code = "no_provider"


class MethodNotFoundError(GleitzeitError):
    """The provider does not offer the requested method."""

    code = "method_not_found"
    exit_code = 2


class InvalidParamsError(GleitzeitError):
    """The parameters of a request do not fit the method's schema."""

    code = "invalid_params"
    exit_code = 2


class ProviderError(GleitzeitError):
    """A provider failed while serving a request."""

    code = "provider_error"


class ToolError(ProviderError):
    """A tool could not compute a result for valid-looking input (division by zero...)."""

    code = "tool_error"


class ProviderUnavailableError(ProviderError):
    """The provider, or the upstream service behind it, cannot be reached now."""

    code = "unavailable"
    retryable = True


class AuthenticationError(ProviderError):
    """The upstream service refused the credentials."""

    code = "authentication_error"


class ModelNotFoundError(ProviderError):
    """The upstream service does not know the requested model."""

    code = "model_not_found"


class RateLimitError(ProviderError):
    """The upstream service asks the caller to slow down."""

    code = "rate_limited"
    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, retry_after=retry_after, **kw)
        self.retry_after = retry_after


class ProviderTimeoutError(ProviderError):
    """A request, or a stream between two chunks, took longer than allowed."""

    code = "timeout"
    retryable = True


class StreamError(ProviderError):
    """A stream broke off before its final chunk."""

    code = "stream_error"


class PayloadTooLargeError(GleitzeitError):
    """A request or file is larger than the configured limit."""

    code = "payload_too_large"


class FileAccessError(InvalidParamsError):
    """A file named in a request is missing, too large or outside the allowed roots."""

    code = "file_access"


class StoreWriteError(GleitzeitError):
    """Results could not be committed to the run database (disk full, locked...).

    ``result`` carries the run's in-memory outcome when the run itself finished, so
    the caller can still show what was computed.
    """

    code = "store_write_failed"
    result: Any = None


_BY_CODE: dict[str, type[GleitzeitError]] = {}


def _index(cls: type[GleitzeitError]) -> None:
    _BY_CODE.setdefault(cls.code, cls)
    for sub in cls.__subclasses__():
        _index(sub)


def error_from_dict(data: dict[str, Any]) -> GleitzeitError:
    """Rebuild an error sent over the wire by :meth:`GleitzeitError.to_dict`."""
    if not _BY_CODE:
        _index(GleitzeitError)
    cls = _BY_CODE.get(str(data.get("code")), ProviderError)
    details = dict(data.get("details") or {})
    err = cls.__new__(cls)
    GleitzeitError.__init__(err, str(data.get("message", "unknown error")), hint=data.get("hint"))
    err.details = details
    if isinstance(err, RateLimitError):
        err.retry_after = details.get("retry_after")
    if isinstance(err, ConfigError):
        err.problems = []
    if "retryable" in data and data["retryable"] != cls.retryable:
        err.retryable = bool(data["retryable"])
    return err
