"""Which web origins may talk to ``gleitzeit serve``.

A browser sends ``Origin`` with every websocket handshake and every cross-origin
request, and runs whatever page the user opened: without this check any web page
could drive a server on the user's machine (a server without a token on loopback, the
default, most of all). So every request that carries an ``Origin`` must come from the
server's own pages (same origin) or from an origin listed in ``server.allowed_origins``;
anything else is refused before authentication. Requests without ``Origin`` (the CLI,
SDKs, provider processes, ``curl``) are not browsers' cross-origin requests and pass on
to authentication. A browser's ``Sec-Fetch-Site: cross-site`` is refused even without
``Origin``.

Same origin means ``Origin`` equals ``<scheme>://<Host header>``. A DNS-rebinding page
(``http://evil.example:8000`` resolved to 127.0.0.1) is same-origin by that test, so
on a server without credentials the Host must also be a loopback name or address
(``localhost``, ``127.0.0.1``, ``[::1]``) or an IP literal, which no rebinding can
produce; with credentials a rebound page has no token to present.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from urllib.parse import urlsplit

__all__ = ["OriginPolicy"]


def _normalise(origin: str) -> str:
    parts = urlsplit(origin.strip())
    if not parts.scheme or not parts.netloc:
        return origin.strip().lower()
    port = parts.port
    default = {"http": 80, "https": 443, "ws": 80, "wss": 443}.get(parts.scheme.lower())
    host = (parts.hostname or "").lower()
    shown = f"[{host}]" if ":" in host else host
    netloc = shown if port is None or port == default else f"{shown}:{port}"
    return f"{parts.scheme.lower()}://{netloc}"


def _host_is_literal_or_loopback(host_header: str) -> bool:
    host = urlsplit(f"//{host_header}").hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class OriginPolicy:
    """Decides whether a request's ``Origin`` may reach the server."""

    def __init__(self, allowed: list[str] | tuple[str, ...] = (), *, open_server: bool) -> None:
        self.allowed = frozenset(_normalise(o) for o in allowed if o.strip())
        self.any = "*" in allowed
        self.open_server = open_server

    def check(self, headers: Mapping[str, str], scheme: str = "http") -> str | None:
        """None when the request may pass; otherwise why it is refused.

        ``headers`` maps header names as sent (case-insensitive lookups are done here
        for the three headers that matter).
        """
        lower = {k.lower(): v for k, v in headers.items() if k.lower() in _WANTED}
        origin = lower.get("origin")
        if origin is None:
            if lower.get("sec-fetch-site", "").lower() == "cross-site":
                return "a cross-site browser request without Origin"
            return None
        if self.any:
            return None
        norm = _normalise(origin)
        if norm in self.allowed:
            return None
        host = lower.get("host", "")
        if host and norm == _normalise(f"{scheme}://{host}"):
            if not self.open_server or _host_is_literal_or_loopback(host):
                return None
            return (
                f"origin {origin!r} looks same-origin, but a server without credentials only "
                "trusts loopback or IP hosts (DNS rebinding)"
            )
        return f"origin {origin!r} is not allowed"

    def check_environ(self, environ: Mapping[str, object]) -> str | None:
        """:meth:`check` for a WSGI-style environ (what Socket.IO handlers get)."""
        headers = {}
        for key, header in (
            ("HTTP_ORIGIN", "origin"),
            ("HTTP_HOST", "host"),
            ("HTTP_SEC_FETCH_SITE", "sec-fetch-site"),
        ):
            value = environ.get(key)
            if isinstance(value, str):
                headers[header] = value
        scheme = environ.get("wsgi.url_scheme")
        return self.check(headers, scheme if isinstance(scheme, str) else "http")

    def engineio_check(self, origin: str | None, environ: Mapping[str, object]) -> bool:
        """For engine.io's ``cors_allowed_origins`` callable."""
        return self.check_environ(environ) is None


_WANTED = frozenset({"origin", "host", "sec-fetch-site"})
