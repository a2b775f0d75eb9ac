"""JWT authentication and channel permissions (pure: no I/O besides reading a key file at start).

A token carries ``channels``: the channel names or ``<prefix>*`` patterns its holder may
subscribe to (absent = every channel), plus the usual ``exp`` and, if configured, ``iss``.
"""

from __future__ import annotations

import time
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


def _read_key(key: str) -> str:
    """A PEM key given as text or as ``@path``."""
    return Path(key[1:]).read_text() if key.startswith("@") else key


def issue_token(settings: GatewaySettings, channels: list[str] | None, ttl_seconds: int,
                subject: str | None = None, private_key: str | None = None, now: float | None = None) -> str:
    """A JWT the gateway configured by ``settings`` accepts (as Centrifugo's ``gentoken``).

    HS256 with the configured secret, or RS256 with ``private_key`` (PEM text or ``@path``; the
    gateway verifies with the matching public key). ``channels`` None = every channel.
    """
    for channel in channels or ():
        try:
            protocol.family_of(channel)
        except protocol.ProtocolError as exc:
            raise AuthError(exc.message) from None
    issued = int(time.time() if now is None else now)
    claims: dict[str, Any] = {"iat": issued, "exp": issued + ttl_seconds}
    if settings.gateway_auth_issuer:
        claims["iss"] = settings.gateway_auth_issuer
    if subject:
        claims["sub"] = subject
    if channels is not None:
        claims["channels"] = channels
    key, algorithm = (_read_key(private_key), "RS256") if private_key else (settings.gateway_auth_secret, "HS256")
    if not key:
        raise AuthError("no CRYPTOPULSE_GATEWAY_AUTH_SECRET is configured (or give --private-key for RS256)")
    try:
        return jwt.encode(claims, key, algorithm=algorithm)
    except (ValueError, TypeError, jwt.PyJWTError) as exc:
        raise AuthError(f"cannot sign the token: {exc}") from None


class Authenticator:
    def __init__(self, settings: GatewaySettings) -> None:
        self.issuer = settings.gateway_auth_issuer
        self.keys: list[tuple[str, str]] = []
        if settings.gateway_auth_secret:
            self.keys.append(("HS256", settings.gateway_auth_secret))
        if settings.gateway_auth_public_key:
            self.keys.append(("RS256", _read_key(settings.gateway_auth_public_key)))

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
