"""A TLS-terminating TCP proxy in front of the plaintext embedded broker, for the Kafka TLS tests.

Tansu 0.6.0 cannot serve TLS itself (``--cert`` and ``--key`` refuse to be given together), so
the broker listens in plaintext on loopback and advertises this proxy's port: every client then
reaches every broker connection (bootstrap and the advertised listener) through a real TLS
handshake with the test CA, optionally presenting a client certificate (mutual TLS).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
from pathlib import Path

from tests.security.pki import Issued


class TLSProxy:
    """Accept TLS on ``port`` and pipe the decrypted bytes to ``upstream`` (host, port)."""

    def __init__(self, port: int, upstream: tuple[str, int], server: Issued, client_ca: Path | None = None) -> None:
        self.port = port
        self.upstream = upstream
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(server.cert, server.key)
        if client_ca is not None:
            self.context.load_verify_locations(client_ca)
            self.context.verify_mode = ssl.CERT_REQUIRED
        self.handshakes = 0
        self.client_names: set[str] = set()
        self.tls_versions: set[str] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tls-proxy", daemon=True)
        self._server: asyncio.Server | None = None
        self._lock = threading.Lock()

    def start(self) -> TLSProxy:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        self._server = future.result(timeout=10)
        return self

    async def _listen(self) -> asyncio.Server:
        return await asyncio.start_server(self._serve, "127.0.0.1", self.port, ssl=self.context,
                                          ssl_handshake_timeout=10)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tls: ssl.SSLObject = writer.get_extra_info("ssl_object")
        peer = tls.getpeercert() or {}
        with self._lock:
            self.handshakes += 1
            self.tls_versions.add(str(tls.version()))
            for rdn in peer.get("subject", ()):
                self.client_names.update(value for key, value in rdn if key == "commonName")
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

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
