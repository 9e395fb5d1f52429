"""Token authentication for Socket.IO connections."""

from __future__ import annotations

import hmac
from typing import Any


class AuthFailed(Exception):
    """Raised from a connect handler; the client sees the message."""


def check_token(expected: str | None, auth: Any, environ: dict | None = None) -> None:
    """Accept the connection when no token is configured or the presented one matches.

    The token comes in the Socket.IO ``auth`` payload (``{"token": ...}``) or an
    ``Authorization: Bearer ...`` header.
    """
    if expected is None:
        return
    given = None
    if isinstance(auth, dict):
        given = auth.get("token")
    if given is None and environ:
        header = environ.get("HTTP_AUTHORIZATION", "")
        if header.lower().startswith("bearer "):
            given = header[7:]
    if not isinstance(given, str) or not hmac.compare_digest(given.encode(), expected.encode()):
        raise AuthFailed(
            "authentication failed: missing or wrong token (set GLEITZEIT_TOKEN or pass --token)"
        )
