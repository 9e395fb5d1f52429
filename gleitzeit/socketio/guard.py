"""One gate for everything ``gleitzeit serve`` answers: origin first, then credentials.

* Every HTTP route (Socket.IO's included) passes :meth:`Guard.middleware`, which
  refuses requests from foreign origins with 403 before any handler runs — routes
  added later are covered without doing anything.
* A route that needs a role wraps its handler: ``guard.protect(handler, role="admin")``
  (401 without a valid bearer token, 403 with a token of another role), or calls
  :meth:`Guard.check_request` itself to shape its own errors (the OpenAI routes do).
* Socket.IO connect handlers call :meth:`Guard.connect`.

See docs/security.md.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from gleitzeit.socketio.origins import OriginPolicy
from gleitzeit.tokens import AuthFailed, Credentials, Principal

log = logging.getLogger("gleitzeit.server")

Handler = Callable[[Any], Awaitable[Any]]


class AccessDenied(Exception):
    """An HTTP request refused: ``status`` 401 (no or bad credential) or 403.
    ``reason``: the message without the command-line hint."""

    def __init__(self, status: int, code: str, message: str, reason: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.reason = message if reason is None else reason


def bearer(headers: Any) -> str | None:
    """The token of an ``Authorization: Bearer ...`` header, if any."""
    header = headers.get("Authorization") or headers.get("HTTP_AUTHORIZATION") or ""
    if isinstance(header, str) and header[:7].lower() == "bearer ":
        return header[7:].strip()
    return None


class Guard:
    """Origin policy plus credentials, for HTTP routes and Socket.IO namespaces."""

    def __init__(self, credentials: Credentials, origins: OriginPolicy) -> None:
        self.credentials = credentials
        self.origins = origins
        self._warned: set[str] = set()

    # -- Socket.IO -------------------------------------------------------------------

    def connect(self, auth: Any, environ: dict[str, Any], *, role: str) -> Principal:
        """Check a Socket.IO connection; raises ``ConnectionRefusedError`` to refuse."""
        import socketio

        why = self.origins.check_environ(environ)
        if why is not None:
            log.warning("refused a %s connection: %s", role, why)
            raise socketio.exceptions.ConnectionRefusedError(f"forbidden: {why}")
        given = auth.get("token") if isinstance(auth, dict) else None
        if given is None:
            given = bearer(environ)
        try:
            principal = self.credentials.identify(given)
            if not principal.has(role):
                fix = (
                    "use a provider token (`gleitzeit token create --role provider "
                    "--provider NAME`), or add provider to server.token_roles for a "
                    "single-user set-up"
                    if role == "provider"
                    else f"use a token with the {role} role (`gleitzeit token create "
                    f"--role {role}`)"
                )
                raise AuthFailed(
                    "authentication failed: a credential with role(s) "
                    f"{', '.join(sorted(principal.role))} cannot connect as a {role}; {fix}"
                )
        except AuthFailed as exc:
            log.warning("refused a %s connection: %s", role, exc)
            raise socketio.exceptions.ConnectionRefusedError(str(exc)) from None
        return principal

    # -- HTTP ------------------------------------------------------------------------

    def check_request(self, request: Any, role: str | None) -> Principal | None:
        """Origin, then (when ``role`` is given) the bearer token's role.

        Returns the principal (None for a public route); raises :class:`AccessDenied`.
        """
        why = self.origins.check(request.headers, request.scheme)
        if why is not None:
            raise AccessDenied(403, "forbidden_origin", why)
        if role is None:
            return None
        try:
            principal = self.credentials.identify(bearer(request.headers))
        except AuthFailed as exc:
            raise AccessDenied(401, "auth_refused", str(exc), exc.reason) from None
        if not principal.has(role):
            raise AccessDenied(403, "forbidden", f"this credential does not have the {role} role")
        return principal

    def protect(self, handler: Handler, *, role: str) -> Handler:
        """Wrap an aiohttp handler so that only ``role`` reaches it."""

        async def guarded(request: Any) -> Any:
            try:
                self.check_request(request, role)
            except AccessDenied as exc:
                return _denied(exc)
            return await handler(request)

        guarded.__name__ = getattr(handler, "__name__", "guarded")
        return guarded

    def middleware(self) -> Any:
        """An aiohttp middleware refusing foreign origins on every route."""
        from aiohttp import web

        @web.middleware
        async def check_origin(request: Any, handler: Handler) -> Any:
            try:
                self.check_request(request, None)
            except AccessDenied as exc:
                self._log_once(f"refused {request.method} {request.path}: {exc.message}")
                return _denied(exc)
            return await handler(request)

        return check_origin

    def _log_once(self, text: str) -> None:
        if text not in self._warned and len(self._warned) < 1000:
            self._warned.add(text)
            log.warning("%s", text)


def _denied(exc: AccessDenied) -> Any:
    from aiohttp import web

    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    # OpenAI's shape (type and param too), so an SDK on /v1 reads it like the others.
    error = {"message": exc.message, "type": "invalid_request_error", "param": None}
    return web.json_response(
        {"error": {**error, "code": exc.code}}, status=exc.status, headers=headers
    )
