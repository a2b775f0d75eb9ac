"""The server side of SASL PLAIN and SCRAM-SHA-256/512 (RFC 4616, 5802, 7677), sans I/O, for tests.

Like a Kafka broker, it keeps per user only the salt, iteration count, StoredKey and ServerKey,
checks the client's proof and proves itself back (the client verifies ``v=``).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass

HASHES = {"SCRAM-SHA-256": "sha256", "SCRAM-SHA-512": "sha512"}


class AuthFailed(Exception):
    """The client's credentials or messages are not acceptable."""


@dataclass(frozen=True)
class ScramCredential:
    salt: bytes
    iterations: int
    stored_key: bytes
    server_key: bytes


def scram_credential(mechanism: str, password: str, iterations: int = 4096) -> ScramCredential:
    digest = HASHES[mechanism]
    salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac(digest, password.encode(), salt, iterations)
    client_key = hmac.digest(salted, b"Client Key", digest)
    return ScramCredential(salt, iterations, hashlib.new(digest, client_key).digest(),
                           hmac.digest(salted, b"Server Key", digest))


def _attributes(message: str) -> dict[str, str]:
    pairs = {}
    for part in message.split(","):
        key, sep, value = part.partition("=")
        if not sep or len(key) != 1:
            raise AuthFailed(f"malformed SCRAM attribute {part!r}")
        pairs[key] = value
    return pairs


class ScramServer:
    """One SCRAM exchange: :meth:`first` answers the client-first message, :meth:`final` the client-final."""

    def __init__(self, mechanism: str, users: dict[str, ScramCredential]) -> None:
        self.digest = HASHES[mechanism]
        self.users = users
        self.user = ""
        self.state: tuple[str, str, str, str, ScramCredential] | None = None

    def first(self, message: bytes) -> bytes:
        text = message.decode()
        gs2_cbind, _, rest = text.partition(",")
        authzid, _, bare = rest.partition(",")
        if gs2_cbind != "n":
            raise AuthFailed("channel binding is not supported")
        attrs = _attributes(bare)
        user = attrs.get("n", "").replace("=2C", ",").replace("=3D", "=")
        credential = self.users.get(user)
        if credential is None or "r" not in attrs:
            raise AuthFailed("unknown user")
        nonce = attrs["r"] + base64.b64encode(os.urandom(18)).decode()
        server_first = f"r={nonce},s={base64.b64encode(credential.salt).decode()},i={credential.iterations}"
        self.user = user
        self.state = (f"{gs2_cbind},{authzid},", bare, server_first, nonce, credential)
        return server_first.encode()

    def final(self, message: bytes) -> bytes:
        if self.state is None:
            raise AuthFailed("client-final before client-first")
        gs2_header, client_first_bare, server_first, nonce, credential = self.state
        text = message.decode()
        without_proof, _, proof_part = text.rpartition(",")
        attrs = _attributes(text)
        if attrs.get("c") != base64.b64encode(gs2_header.encode()).decode() or attrs.get("r") != nonce:
            raise AuthFailed("channel binding or nonce mismatch")
        if not proof_part.startswith("p="):
            raise AuthFailed("no proof")
        auth_message = f"{client_first_bare},{server_first},{without_proof}".encode()
        signature = hmac.digest(credential.stored_key, auth_message, self.digest)
        proof = base64.b64decode(attrs["p"])
        client_key = bytes(a ^ b for a, b in zip(proof, signature, strict=False))
        if len(proof) != len(signature) or not hmac.compare_digest(
                hashlib.new(self.digest, client_key).digest(), credential.stored_key):
            raise AuthFailed("wrong password")
        return b"v=" + base64.b64encode(hmac.digest(credential.server_key, auth_message, self.digest))


def check_plain(message: bytes, passwords: dict[str, str]) -> str:
    """The user of a valid SASL PLAIN message (``authzid NUL user NUL password``)."""
    parts = message.split(b"\0")
    if len(parts) != 3:
        raise AuthFailed("malformed PLAIN message")
    user, password = parts[1].decode(), parts[2].decode()
    expected = passwords.get(user)
    if expected is None or not hmac.compare_digest(expected.encode(), password.encode()):
        raise AuthFailed("wrong user or password")
    return user
