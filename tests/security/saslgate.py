"""SASL on the Kafka wire, sans I/O: the per-connection gate of the test proxy in front of Tansu.

Tansu 0.6.0 cannot take SASL users (creating one needs an already authenticated connection; PLAIN
is not compiled in; the store is memory only), so the test proxy authenticates the clients itself:
before authentication it forwards only ApiVersions to the broker, answers SaslHandshake and
SaslAuthenticate (v0-v2) itself and closes the connection on anything else; afterwards it is a
plain pipe. Only these two requests are decoded here.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from tests.security.scram import (
    HASHES,
    AuthFailed,
    ScramCredential,
    ScramServer,
    check_plain,
    scram_credential,
)

API_VERSIONS, SASL_HANDSHAKE, SASL_AUTHENTICATE = 18, 17, 36
UNSUPPORTED_SASL_MECHANISM, ILLEGAL_SASL_STATE, SASL_AUTHENTICATION_FAILED = 33, 34, 58


@dataclass
class SaslUsers:
    """Users per mechanism: PLAIN keeps passwords, SCRAM only salted keys."""

    plain: dict[str, str] = field(default_factory=dict)
    scram: dict[str, dict[str, ScramCredential]] = field(default_factory=dict)

    def add(self, mechanism: str, user: str, password: str) -> None:
        if mechanism == "PLAIN":
            self.plain[user] = password
        else:
            self.scram.setdefault(mechanism, {})[user] = scram_credential(mechanism, password)

    @property
    def mechanisms(self) -> list[str]:
        return (["PLAIN"] if self.plain else []) + sorted(self.scram)


def _uvarint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7


def _put_uvarint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _skip_tags(data: bytes, at: int) -> int:
    count, at = _uvarint(data, at)
    for _ in range(count):
        _tag, at = _uvarint(data, at)
        size, at = _uvarint(data, at)
        at += size
    return at


@dataclass
class Request:
    api_key: int
    version: int
    correlation_id: int
    body: bytes

    @classmethod
    def parse(cls, payload: bytes) -> Request:
        api_key, version, correlation_id, client_len = struct.unpack_from(">hhih", payload)
        at = 10 + max(client_len, 0)
        if api_key == SASL_AUTHENTICATE and version >= 2:  # flexible: request header v2
            at = _skip_tags(payload, at)
        return cls(api_key, version, correlation_id, payload[at:])


@dataclass
class Verdict:
    reply: bytes | None = None  # a framed response for the client
    forward: bool = False       # pass the frame to the broker
    close: bool = False         # close the connection (after the reply)


class SaslGate:
    """The SASL state of one client connection."""

    def __init__(self, users: SaslUsers) -> None:
        self.users = users
        self.mechanism: str | None = None
        self.scram: ScramServer | None = None
        self.authenticated_as: str | None = None
        self.failures: list[str] = []

    @property
    def open(self) -> bool:
        return self.authenticated_as is not None

    def handle(self, payload: bytes) -> Verdict:
        request = Request.parse(payload)
        if request.api_key == API_VERSIONS:
            return Verdict(forward=True)
        if request.api_key == SASL_HANDSHAKE:
            return self._handshake(request)
        if request.api_key == SASL_AUTHENTICATE and self.mechanism is not None:
            return self._authenticate(request)
        self.failures.append(f"api {request.api_key} before authentication")
        return Verdict(close=True)

    def _handshake(self, request: Request) -> Verdict:
        (length,) = struct.unpack_from(">h", request.body)
        mechanism = request.body[2:2 + length].decode()
        enabled = self.users.mechanisms
        error = 0 if mechanism in enabled else UNSUPPORTED_SASL_MECHANISM
        if not error:
            self.mechanism = mechanism
            self.scram = ScramServer(mechanism, self.users.scram[mechanism]) if mechanism in HASHES else None
        body = struct.pack(">hi", error, len(enabled)) + b"".join(
            struct.pack(">h", len(m)) + m.encode() for m in enabled)
        return Verdict(reply=_frame(request.correlation_id, body), close=bool(error))

    def _authenticate(self, request: Request) -> Verdict:
        if request.version >= 2:
            size, at = _uvarint(request.body, 0)
            token = request.body[at:at + size - 1]
        else:
            (size,) = struct.unpack_from(">i", request.body)
            token = request.body[4:4 + size]
        try:
            answer = self._step(token)
        except (AuthFailed, UnicodeDecodeError, ValueError) as exc:
            self.failures.append(str(exc))
            return Verdict(reply=_auth_response(request, SASL_AUTHENTICATION_FAILED,
                                                f"Authentication failed: {exc}", b""), close=True)
        return Verdict(reply=_auth_response(request, 0, None, answer))

    def _step(self, token: bytes) -> bytes:
        if self.mechanism == "PLAIN":
            self.authenticated_as = check_plain(token, self.users.plain)
            return b""
        assert self.scram is not None
        if self.scram.state is None:
            return self.scram.first(token)
        answer = self.scram.final(token)
        self.authenticated_as = self.scram.user
        return answer


def _frame(correlation_id: int, body: bytes, flexible: bool = False) -> bytes:
    header = struct.pack(">i", correlation_id) + (b"\0" if flexible else b"")
    return struct.pack(">i", len(header) + len(body)) + header + body


def _auth_response(request: Request, error: int, message: str | None, token: bytes) -> bytes:
    if request.version >= 2:
        text = b"\0" if message is None else _put_uvarint(len(message.encode()) + 1) + message.encode()
        body = struct.pack(">h", error) + text + _put_uvarint(len(token) + 1) + token + struct.pack(">q", 0) + b"\0"
        return _frame(request.correlation_id, body, flexible=True)
    text = struct.pack(">h", -1) if message is None else struct.pack(">h", len(message.encode())) + message.encode()
    body = struct.pack(">h", error) + text + struct.pack(">i", len(token)) + token
    if request.version >= 1:
        body += struct.pack(">q", 0)
    return _frame(request.correlation_id, body)
