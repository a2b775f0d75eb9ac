"""JWT authentication and channel permissions (pure: no I/O besides reading a key file at start).

A token carries ``channels``: the channel names or ``<prefix>*`` patterns its holder may
subscribe to (absent = every channel), plus the usual ``exp`` and, if configured, ``iss``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from services.gateway import protocol
from services.gateway.settings import GatewaySettings


class AuthError(Exception):
    """The token is missing, malformed, expired or signed with the wrong key."""


@dataclass(frozen=True)
class Grant:
    """What a connection may subscribe to: None = everything."""

    patterns: tuple[str, ...] | None = None

    def allows(self, requested: str) -> bool:
        if self.patterns is None:
            return True
        return any(_covers(allowed, requested) for allowed in self.patterns)


OPEN = Grant()


def _covers(allowed: str, requested: str) -> bool:
    """True when every channel ``requested`` (a name or a pattern) can match is within ``allowed``."""
    if not protocol.is_pattern(allowed):
        return allowed == requested
    return requested.startswith(allowed[:-1])


class Authenticator:
    def __init__(self, settings: GatewaySettings) -> None:
        self.issuer = settings.gateway_auth_issuer
        self.keys: list[tuple[str, str]] = []
        if settings.gateway_auth_secret:
            self.keys.append(("HS256", settings.gateway_auth_secret))
        if settings.gateway_auth_public_key:
            key = settings.gateway_auth_public_key
            if key.startswith("@"):
                key = Path(key[1:]).read_text()
            self.keys.append(("RS256", key))

    @property
    def enabled(self) -> bool:
        return bool(self.keys)

    def grant(self, token: str | None) -> Grant:
        if not self.enabled:
            return OPEN
        if not token:
            raise AuthError("a token is required (?token=... or Authorization: Bearer ...)")
        try:
            algorithm = jwt.get_unverified_header(token).get("alg")
        except jwt.PyJWTError as exc:
            raise AuthError(f"malformed token: {exc}") from None
        key = next((k for alg, k in self.keys if alg == algorithm), None)
        if key is None:
            raise AuthError(f"token algorithm {algorithm!r} is not accepted")
        options: Any = {"require": ["exp"] + (["iss"] if self.issuer else [])}
        try:
            claims = jwt.decode(token, key, algorithms=[str(algorithm)], issuer=self.issuer, options=options)
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token: {exc}") from None
        channels = claims.get("channels")
        if channels is None:
            return OPEN
        if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
            raise AuthError("claim 'channels' must be a list of channel names or patterns")
        return Grant(tuple(channels))
