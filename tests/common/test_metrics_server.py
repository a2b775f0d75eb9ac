"""The /metrics server: loopback by default, basic auth, HTTPS (and mutual TLS), idle connections
closed, connections bounded. Real sockets, real HTTP clients."""

from __future__ import annotations

import base64
import socket
import ssl
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.common.broker import free_port
from services.common.metrics import MetricsServer, serve_metrics
from services.common.settings import MetricsSettings, load
from tests.security.pki import TestCA


@pytest.fixture
def start() -> Iterator[object]:
    servers: list[MetricsServer] = []

    def run(**env: str) -> tuple[MetricsServer, int]:
        port = free_port()
        settings = load(MetricsSettings, environ={f"CRYPTOPULSE_METRICS_{k.upper()}": v for k, v in env.items()})
        server = serve_metrics(port, service="test", settings=settings)
        servers.append(server)
        return server, port

    yield run
    for server in servers:
        server.shutdown()
        server.server_close()


def get(url: str, auth: tuple[str, str] | None = None, context: ssl.SSLContext | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url)
    if auth:
        request.add_header("Authorization", "Basic " + base64.b64encode(":".join(auth).encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=5, context=context) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_binds_loopback_by_default(start) -> None:  # type: ignore[no-untyped-def]
    assert load(MetricsSettings, environ={}).metrics_host == "127.0.0.1"
    server, port = start()
    assert server.server_address[0] == "127.0.0.1"
    status, body = get(f"http://127.0.0.1:{port}/metrics")
    assert status == 200 and b"cryptopulse_build_info" in body


def test_basic_auth_is_required_when_configured(start) -> None:  # type: ignore[no-untyped-def]
    _, port = start(auth_username="prom", auth_password="s3cret")
    url = f"http://127.0.0.1:{port}/metrics"
    assert get(url)[0] == 401
    assert get(url, ("prom", "wrong"))[0] == 401
    assert get(url, ("other", "s3cret"))[0] == 401
    status, body = get(url, ("prom", "s3cret"))
    assert status == 200 and b"cryptopulse_build_info" in body


def test_https_with_a_client_certificate(start, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ca = TestCA(tmp_path)
    server_cert, client = ca.server("127.0.0.1"), ca.client("prometheus")
    _, port = start(tls_certfile=str(server_cert.cert), tls_keyfile=str(server_cert.key),
                    tls_client_cafile=str(ca.cafile))
    trusted = ssl.create_default_context(cafile=ca.cafile)
    trusted.load_cert_chain(client.cert, client.key)
    status, body = get(f"https://127.0.0.1:{port}/metrics", context=trusted)
    assert status == 200 and b"cryptopulse_build_info" in body
    anonymous = ssl.create_default_context(cafile=ca.cafile)
    with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
        get(f"https://127.0.0.1:{port}/metrics", context=anonymous)
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        get(f"http://127.0.0.1:{port}/metrics")


def closed_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def test_silent_connections_are_closed_and_bounded(start) -> None:  # type: ignore[no-untyped-def]
    threads_before = threading.active_count()
    server, port = start(idle_timeout="0.5", max_connections="3")
    silent = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
    try:
        deadline = time.monotonic() + 5
        while threading.active_count() < threads_before + 1 + 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        extra = socket.create_connection(("127.0.0.1", port))
        assert closed_within(extra, 2), "a connection beyond the bound is closed at once"
        extra.close()
        assert server.refused >= 1
        started = time.monotonic()
        assert all(closed_within(s, 5) for s in silent), "silent connections are closed"
        assert time.monotonic() - started < 3
    finally:
        for s in silent:
            s.close()
    deadline = time.monotonic() + 5
    while threading.active_count() > threads_before + 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert threading.active_count() == threads_before + 1, "only the accept thread is left"
    assert get(f"http://127.0.0.1:{port}/metrics")[0] == 200


def test_a_silent_tls_client_does_not_block_the_others(start, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ca = TestCA(tmp_path)
    cert = ca.server("127.0.0.1")
    _, port = start(tls_certfile=str(cert.cert), tls_keyfile=str(cert.key), idle_timeout="5")
    stuck = socket.create_connection(("127.0.0.1", port))  # never sends its ClientHello
    try:
        started = time.monotonic()
        status, _ = get(f"https://127.0.0.1:{port}/metrics", context=ssl.create_default_context(cafile=ca.cafile))
        assert status == 200 and time.monotonic() - started < 2, "the handshake is not done in the accept loop"
    finally:
        stuck.close()
