"""JWT authentication and channel permissions (pure: no I/O besides reading a key file at start).

A token carries ``channels``: the channel names or ``<prefix>*`` patterns its holder may
subscribe to (absent = every channel), plus the usual ``exp`` and, if configured, ``iss`` and
``aud``. Its lifetime (``exp`` - ``iat``, or ``exp`` - now without ``iat``) is bounded by a setting,
and its ``exp`` stays in the grant: a session ends when its token does (or is refreshed).
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
    """What a connection may subscribe to (None = everything) and until when (epoch s; None = no token)."""

    patterns: tuple[str, ...] | None = None
    expires_at: float | None = None

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
        self.audience = settings.gateway_auth_audience
        self.max_lifetime = settings.gateway_auth_max_lifetime_seconds
        self.keys: list[tuple[str, str]] = []
        if settings.gateway_auth_secret:
            self.keys.append(("HS256", settings.gateway_auth_secret))
        if settings.gateway_auth_public_key:
            self.keys.append(("RS256", _read_key(settings.gateway_auth_public_key)))

    @property
    def enabled(self) -> bool:
        return bool(self.keys)

    def grant(self, token: str | None, now: float | None = None) -> Grant:
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
        required = ["exp"] + (["iss"] if self.issuer else []) + (["aud"] if self.audience else [])
        options: Any = {"require": required, "verify_aud": bool(self.audience)}
        try:
            claims = jwt.decode(token, key, algorithms=[str(algorithm)], issuer=self.issuer,
                                audience=self.audience, options=options)
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token: {exc}") from None
        expires_at = float(claims["exp"])
        self._check_lifetime(claims, expires_at, time.time() if now is None else now)
        channels = claims.get("channels")
        if channels is None:
            return Grant(None, expires_at)
        if not isinstance(channels, list) or not all(isinstance(c, str) for c in channels):
            raise AuthError("claim 'channels' must be a list of channel names or patterns")
        return Grant(tuple(channels), expires_at)

    def _check_lifetime(self, claims: dict[str, Any], expires_at: float, now: float) -> None:
        if self.max_lifetime is None:
            return
        issued = claims.get("iat")
        start = float(issued) if isinstance(issued, (int, float)) and not isinstance(issued, bool) else now
        if expires_at - start > self.max_lifetime:
            raise AuthError(f"token lifetime {expires_at - start:.0f} s exceeds the maximum of "
                            f"{self.max_lifetime:.0f} s")
