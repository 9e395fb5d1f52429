"""The one exception hierarchy of Gleitzeit.

Every error a user can see derives from :class:`GleitzeitError`. Each carries a
``message`` (what went wrong), an optional ``hint`` (what to do next), a stable
``code`` (for the wire and for scripts), and two class-level facts that make up the one
rule for what happens after a failure — used by the host's dispatcher and the workflow
engine alike:

* ``retryable``: trying the same request again, on another instance or a little later,
  can help (a provider that went away, a rate limit, a timeout).
* ``caller_error``: the request itself is wrong (bad parameters, an unknown method or
  model, a tool refusing its input). Another try cannot mend it: it is never retried,
  and it never counts against the instance that reported it (no cool-down).

Every class registers its ``code`` when it is defined, so :func:`error_from_dict` turns
any code from the wire back into its class with nothing imported first.
"""

from __future__ import annotations

from typing import Any, ClassVar

_BY_CODE: dict[str, type[GleitzeitError]] = {}


class GleitzeitError(Exception):
    """Base of every error Gleitzeit raises on purpose."""

    code: ClassVar[str] = "error"
    retryable: bool = False
    caller_error: ClassVar[bool] = False
    exit_code: ClassVar[int] = 1
    #: The id of the call that failed, set by the dispatcher (and carried over the
    #: wire), so a user can find the call's log lines on the server.
    call_id: str | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # The first class to claim a code owns it: a subclass that keeps its parent's
        # code decodes as the parent.
        _BY_CODE.setdefault(cls.code, cls)

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
        if self.call_id is not None:
            data["call_id"] = self.call_id
        return data


_BY_CODE[GleitzeitError.code] = GleitzeitError


# -- configuration and plugins -------------------------------------------------------------


class ConfigError(GleitzeitError):
    """The configuration file or an environment setting is invalid."""

    code = "config_error"
    caller_error = True
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


# -- requests: the caller's side -----------------------------------------------------------


class RoutingError(GleitzeitError):
    """No provider instance can serve the request as asked (unknown provider, model or
    capability)."""

    code = "no_provider"
    caller_error = True


class InstancesDownError(RoutingError):
    """Instances serve the request, but every one is unhealthy or cooling down now.

    Not the caller's fault, and retryable: instances recover.
    """

    code = "instances_down"
    caller_error = False
    retryable = True


class MethodNotFoundError(GleitzeitError):
    """The provider does not offer the requested method."""

    code = "method_not_found"
    caller_error = True
    exit_code = 2


class InvalidParamsError(GleitzeitError):
    """The parameters of a request do not fit the method's schema."""

    code = "invalid_params"
    caller_error = True
    exit_code = 2


class FileAccessError(InvalidParamsError):
    """A file named in a request is missing, too large or outside the allowed roots."""

    code = "file_access"


class PayloadTooLargeError(GleitzeitError):
    """A request or file is larger than the configured limit."""

    code = "payload_too_large"
    caller_error = True


# -- providers -------------------------------------------------------------------------------


class ProviderError(GleitzeitError):
    """A provider failed while serving a request."""

    code = "provider_error"


class ToolError(ProviderError):
    """A tool could not compute a result for valid-looking input (division by zero...)."""

    code = "tool_error"
    caller_error = True


class ToolRoundsExceeded(GleitzeitError):
    """A chat with provider tools still called tools after ``max_tool_rounds`` rounds.

    The request's to change (its prompt or its limit): not retried."""

    code = "tool_rounds_exceeded"
    caller_error = True


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


class ContextWindowError(InvalidParamsError):
    """The conversation does not fit the model's context window.

    The caller's to mend, so never retried on the same model; a model alias's fallback
    chain moves on to its next (perhaps larger) model.
    """

    code = "context_length_exceeded"


class RateLimitError(ProviderError):
    """The upstream service asks the caller to slow down."""

    code = "rate_limited"
    retryable = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, retry_after=retry_after, **kw)
        self.retry_after = retry_after


class ProviderTimeoutError(ProviderError):
    """A request, or a stream between two chunks, took longer than allowed.

    Retryable: a workflow task may try again with a fresh deadline. The dispatcher does
    not retry it on another instance, because the request's deadline has passed.
    """

    code = "timeout"
    retryable = True


class StreamError(ProviderError):
    """A stream broke off before its final chunk."""

    code = "stream_error"


# -- the wire and the server -----------------------------------------------------------------


class StreamStalledError(GleitzeitError):
    """A stream's reader granted no credit for ``server.stream_stall_timeout`` seconds;
    the stream was cancelled to free what it held."""

    code = "stream_stalled"
    caller_error = True


class InvalidMessage(GleitzeitError):
    """A payload on the wire does not fit its schema."""

    code = "invalid_message"
    caller_error = True
    exit_code = 2


class ServerUnreachable(ProviderUnavailableError):
    """No ``gleitzeit serve`` answers at the given URL."""

    code = "server_unreachable"


class AuthRefused(GleitzeitError):
    """The server refused the connection's credentials."""

    code = "auth_refused"
    exit_code = 2


class ForbiddenError(GleitzeitError):
    """The credential is valid but does not allow this (registering a provider name
    outside its scope, a role it does not have)."""

    code = "forbidden"
    caller_error = True
    exit_code = 2


class ConnectFailed(GleitzeitError):
    """The server refused a provider's connection (a wrong token) or its registration."""

    code = "connect_failed"
    exit_code = 2


# -- workflows -------------------------------------------------------------------------------


class WorkflowError(ConfigError):
    """A workflow file is not valid; each problem names the task and the field."""

    code = "workflow_error"


class TaskReferenceError(GleitzeitError):
    """A ``${task.field}`` reference in a workflow names something that is not there."""

    code = "reference_error"
    caller_error = True


class ExecuteNotAllowedError(ConfigError):
    """``python/execute`` was asked for while it is off (a workflow file is then code)."""

    code = "execute_not_allowed"


class ExecutionTimeoutError(ToolError):
    """A ``python/execute`` script ran longer than its timeout and was killed.

    Not the caller's fault as such, and retryable: a task's ``retry`` may try again.
    """

    code = "execution_timeout"
    caller_error = False
    retryable = True


class RunNotFound(GleitzeitError):
    """No stored run has the given id."""

    code = "run_not_found"
    exit_code = 2


class RunInProgressError(GleitzeitError):
    """The run asked for is still running in another process."""

    code = "run_in_progress"


class StoreOpenError(GleitzeitError):
    """The run database cannot be opened (a path that is not a writable SQLite file)."""

    code = "store_unavailable"
    exit_code = 2


class StoreWriteError(GleitzeitError):
    """Results could not be committed to the run database (disk full, locked...).

    ``result`` carries the run's in-memory outcome when the run itself finished, so
    the caller can still show what was computed.
    """

    code = "store_write_failed"
    result: Any = None


def error_from_dict(data: dict[str, Any]) -> GleitzeitError:
    """Rebuild an error sent over the wire by :meth:`GleitzeitError.to_dict`."""
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
    call_id = data.get("call_id")
    if isinstance(call_id, str):
        err.call_id = call_id
    return err


def error_classes() -> list[type[GleitzeitError]]:
    """Every registered error class, one per code."""
    return list(_BY_CODE.values())
