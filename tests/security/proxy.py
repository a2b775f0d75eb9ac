"""A TLS- and SASL-terminating TCP proxy in front of the plaintext embedded broker, for the Kafka
security tests.

Tansu 0.6.0 cannot serve TLS itself (``--cert`` and ``--key`` refuse to be given together) nor
take SASL users (see saslgate.py), so the broker listens in plaintext on loopback and advertises
this proxy's port: every client reaches every broker connection (bootstrap and the advertised
listener) through a real TLS handshake with the test CA (optionally presenting a client
certificate) and, with ``sasl``, a real SASL exchange checked by the proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import struct
import threading
from pathlib import Path

from tests.security.pki import Issued
from tests.security.saslgate import SaslGate, SaslUsers

MAX_FRAME = 1 << 20  # before authentication, nothing larger is plausible


class SecureProxy:
    """Accept TLS (``server`` given) or plaintext on ``port``, optionally check SASL, pipe to ``upstream``."""

    def __init__(self, port: int, upstream: tuple[str, int], server: Issued | None, client_ca: Path | None = None,
                 sasl: SaslUsers | None = None) -> None:
        self.port = port
        self.upstream = upstream
        self.sasl = sasl
        self.context: ssl.SSLContext | None = None
        if server is not None:
            self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.context.load_cert_chain(server.cert, server.key)
            if client_ca is not None:
                self.context.load_verify_locations(client_ca)
                self.context.verify_mode = ssl.CERT_REQUIRED
        self.connections = 0
        self.client_names: set[str] = set()
        self.tls_versions: set[str] = set()
        self.authenticated: dict[str, int] = {}  # "MECHANISM user" -> connections
        self.sasl_failures: list[str] = []
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="secure-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._lock = threading.Lock()

    def start(self) -> SecureProxy:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        self._server = future.result(timeout=10)
        return self

    async def _listen(self) -> asyncio.Server:
        return await asyncio.start_server(self._serve, "127.0.0.1", self.port, ssl=self.context,
                                          ssl_handshake_timeout=10 if self.context else None)

    def _record_tls(self, writer: asyncio.StreamWriter) -> None:
        tls: ssl.SSLObject | None = writer.get_extra_info("ssl_object")
        with self._lock:
            self.connections += 1
            if tls is None:
                return
            self.tls_versions.add(str(tls.version()))
            for rdn in (tls.getpeercert() or {}).get("subject", ()):
                self.client_names.update(value for key, value in rdn if key == "commonName")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._record_tls(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        # The broker only ever answers what was forwarded (ApiVersions before authentication), so its
        # replies can flow back from the start without interleaving with the gate's own replies.
        downstream = asyncio.ensure_future(self._pipe(up_reader, writer))
        if self.sasl is not None and not await self._authenticate(reader, writer, up_writer):
            downstream.cancel()
            for stream in (writer, up_writer):
                with contextlib.suppress(OSError, ssl.SSLError, RuntimeError):
                    stream.close()
            return
        await asyncio.gather(self._pipe(reader, up_writer), downstream)

    async def _authenticate(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                            up_writer: asyncio.StreamWriter) -> bool:
        """Run the SASL gate until the client is authenticated (True) or refused (False)."""
        assert self.sasl is not None
        gate = SaslGate(self.sasl)
        while not gate.open:
            try:
                (size,) = struct.unpack(">i", await reader.readexactly(4))
                if not 0 < size <= MAX_FRAME:
                    return False
                payload = await reader.readexactly(size)
            except (asyncio.IncompleteReadError, OSError, ssl.SSLError):
                return False
            try:
                verdict = gate.handle(payload)
            except (struct.error, IndexError, UnicodeDecodeError):
                return False
            if verdict.forward:
                up_writer.write(struct.pack(">i", size) + payload)
                await up_writer.drain()
            if verdict.reply:
                writer.write(verdict.reply)
                await writer.drain()
            if verdict.close:
                with self._lock:
                    self.sasl_failures.extend(gate.failures)
                return False
        with self._lock:
            key = f"{gate.mechanism} {gate.authenticated_as}"
            self.authenticated[key] = self.authenticated.get(key, 0) + 1
        return True

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (OSError, ssl.SSLError):
            pass
        finally:
            with contextlib.suppress(OSError, ssl.SSLError, RuntimeError):
                writer.close()

    def stop(self) -> None:
        async def close() -> None:
            if self._server is not None:
                self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        if self._thread.is_alive():
            asyncio.run_coroutine_threadsafe(close(), self._loop).result(timeout=10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._loop.close()
