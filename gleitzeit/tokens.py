"""Credentials with roles: who may connect to ``gleitzeit serve`` as what.

Three roles:

* ``provider`` — may connect to ``/providers`` and register the provider names its
  token lists (``*`` for any name);
* ``client`` — may call through ``/clients`` (and the HTTP API);
* ``admin`` — may see pages, ``/health`` and ``/metrics`` where those are protected;
  an admin may also call, as a client does.

Credentials are signed tokens (JWT, HMAC-SHA256 with ``server.secret``) carrying the
role, an expiry and — for providers — the names the holder may register; or one static
shared ``server.token`` for single-user set-ups, whose roles are ``server.token_roles``
(``client`` and ``admin`` unless configured otherwise: a shared token does not make its
holder a provider). With neither configured the server is open (loopback only, unless
``--insecure``).

Tokens are never logged: errors say what was wrong with a token, never the token.
"""

from __future__ import annotations

import hmac
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "ROLES",
    "AuthFailed",
    "Credentials",
    "Principal",
    "mint",
    "parse_ttl",
]

ROLES = ("provider", "client", "admin")
ISSUER = "gleitzeit"
#: HS256 wants a key of at least the hash's size; shorter secrets are refused.
MIN_SECRET_LENGTH = 32


class AuthFailed(Exception):
    """A connection or request presented no usable credential; the peer sees the
    message (which never contains the token). ``reason`` is the message without the
    command-line hint, for edges whose callers are not the CLI (the HTTP API)."""

    def __init__(self, reason: str, cli_hint: str | None = None) -> None:
        super().__init__(reason if cli_hint is None else f"{reason} ({cli_hint})")
        self.reason = reason


@dataclass(frozen=True)
class Principal:
    """Who is on the other end: a role, and for providers the names it may register.

    ``providers`` is None for "any name" (a static token configured as a provider, or
    a provider token minted with ``--provider '*'``, or an open server).
    """

    role: frozenset[str]
    providers: frozenset[str] | None = None
    subject: str = ""
    expires: float | None = None

    def has(self, role: str) -> bool:
        """Whether this principal may act as ``role`` (an admin may also call)."""
        return role in self.role or (role == "client" and "admin" in self.role)

    def may_register(self, name: str) -> bool:
        """Whether this principal may register a provider called ``name``."""
        if "provider" not in self.role:
            return False
        return self.providers is None or name in self.providers

    def scope(self) -> str:
        """The provider names it may register, for error messages."""
        if "provider" not in self.role:
            return "no provider names (it is not a provider credential)"
        if self.providers is None:
            return "any provider name"
        return ", ".join(sorted(self.providers)) or "(none)"


OPEN = Principal(role=frozenset(ROLES), providers=None, subject="open")


def parse_ttl(text: str) -> float:
    """``30d``, ``12h``, ``15m``, ``90s`` or a number of seconds -> seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if not match:
        raise ValueError(f"not a duration: {text!r} (use e.g. 30d, 12h, 15m, 90s)")
    value, unit = float(match.group(1)), match.group(2) or "s"
    seconds = value * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit]
    if seconds <= 0:
        raise ValueError("a token's lifetime must be positive")
    return seconds


def mint(
    secret: str,
    role: str,
    *,
    providers: list[str] | tuple[str, ...] = (),
    ttl: float | None = None,
    subject: str = "",
) -> str:
    """A signed token for ``role``; ``providers`` names what a provider token may
    register (``*`` for any); ``ttl`` in seconds (None: no expiry)."""
    import jwt

    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if role == "provider" and not providers:
        raise ValueError("a provider token needs the provider names it may register")
    if role != "provider" and providers:
        raise ValueError("only provider tokens carry provider names")
    now = int(time.time())
    claims: dict[str, Any] = {"iss": ISSUER, "role": role, "iat": now}
    if subject:
        claims["sub"] = subject
    if ttl is not None:
        claims["exp"] = now + int(ttl)
    if providers:
        claims["providers"] = sorted(set(providers))
    return str(jwt.encode(claims, secret, algorithm="HS256"))


def _decode(secret: str, token: str) -> Principal:
    import jwt

    try:
        claims = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            issuer=ISSUER,
            options={"require": ["iss", "role", "iat"]},
        )
    except jwt.ExpiredSignatureError:
        raise AuthFailed("authentication failed: the token has expired") from None
    except jwt.InvalidSignatureError:
        raise AuthFailed("authentication failed: the token's signature does not match") from None
    except jwt.PyJWTError as exc:
        raise AuthFailed(f"authentication failed: not a valid token ({exc})") from None
    role = claims.get("role")
    if role not in ROLES:
        raise AuthFailed(f"authentication failed: the token's role {role!r} is unknown")
    names = claims.get("providers")
    providers: frozenset[str] | None = None
    if role == "provider":
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise AuthFailed("authentication failed: a provider token must list provider names")
        providers = None if "*" in names else frozenset(names)
    exp = claims.get("exp")
    return Principal(
        role=frozenset([role]),
        providers=providers,
        subject=str(claims.get("sub", "")),
        expires=float(exp) if isinstance(exp, (int, float)) else None,
    )


class Credentials:
    """What the server accepts: a static token, signed tokens, or nothing (open)."""

    def __init__(
        self,
        *,
        token: str | None = None,
        token_roles: Sequence[str] = ("client", "admin"),
        secret: str | None = None,
    ) -> None:
        self.token = token
        self.secret = secret
        self.static = Principal(role=frozenset(token_roles), providers=None, subject="token")

    @property
    def open(self) -> bool:
        """True when no credential is configured: every connection is accepted."""
        return self.token is None and self.secret is None

    def identify(self, given: Any) -> Principal:
        """The principal a presented token stands for; :class:`AuthFailed` otherwise."""
        if self.open:
            return OPEN
        if given is None or given == "":
            raise AuthFailed("authentication failed: no token given", "give the server's token")
        if not isinstance(given, str) or len(given) > 8192:
            raise AuthFailed("authentication failed: the token must be a string")
        if not given.isascii() or not given.isprintable():
            raise AuthFailed("authentication failed: a token is printable ASCII only")
        if self.token is not None and hmac.compare_digest(given.encode(), self.token.encode()):
            return self.static
        if self.secret is not None and given.count(".") == 2:
            return _decode(self.secret, given)
        raise AuthFailed("authentication failed: missing or wrong token", "give the server's token")
