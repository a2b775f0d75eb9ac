"""A minimal RFC 6455 client on a plain socket: independent of the `websockets` library."""

from __future__ import annotations

import base64
import hashlib
import os
import socket
import struct
import time
from typing import Any

import orjson

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Closed(Exception):
    def __init__(self, code: int | None) -> None:
        super().__init__(f"closed with {code}")
        self.code = code


class RawClient:
    def __init__(self, port: int, path: str = "/ws", timeout: float = 10, rcvbuf: int | None = None) -> None:
        """``rcvbuf``: a small kernel receive buffer, so that a client that does not read backs up fast."""
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                           f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
                           ).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(1)
            if not chunk:
                raise ConnectionError("handshake cut")
            head += chunk
        lines = head.decode().split("\r\n")
        assert lines[0].startswith("HTTP/1.1 101"), lines[0]
        accept = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
        assert headers["sec-websocket-accept"] == accept

    def send_json(self, message: dict[str, Any]) -> None:
        self._send_frame(0x1, orjson.dumps(message))

    def send_ping(self, payload: bytes = b"") -> None:
        self._send_frame(0x9, payload)

    def _send_frame(self, opcode: int, payload: bytes) -> None:
        mask = os.urandom(4)
        length = len(payload)
        if length < 126:
            header = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
        elif length < 65536:
            header = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
        else:
            header = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def _read_exact(self, count: int) -> bytes:
        data = b""
        while len(data) < count:
            chunk = self.sock.recv(count - len(data))
            if not chunk:
                raise Closed(None)
            data += chunk
        return data

    def recv_json(self) -> dict[str, Any]:
        """The next text message (pings answered, fragments joined); raises Closed on a close frame."""
        parts: list[bytes] = []
        while True:
            first, second = self._read_exact(2)
            opcode, length = first & 0x0F, second & 0x7F
            if length == 126:
                length = struct.unpack("!H", self._read_exact(2))[0]
            elif length == 127:
                length = struct.unpack("!Q", self._read_exact(8))[0]
            payload = self._read_exact(length)
            if opcode == 0x8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                raise Closed(code)
            if opcode == 0x9:
                self._send_frame(0xA, payload)
                continue
            if opcode in (0x1, 0x0):
                parts.append(payload)
                if first & 0x80:
                    return dict(orjson.loads(b"".join(parts)))

    def recv_until(self, pred: Any, timeout: float = 10) -> list[dict[str, Any]]:
        seen = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self.recv_json()
            if message.get("type") == "heartbeat":
                continue
            seen.append(message)
            if pred(message):
                return seen
        raise AssertionError(f"condition not met within {timeout} s; got {seen}")

    def close(self) -> None:
        self.sock.close()
