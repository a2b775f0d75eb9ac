"""Prometheus plumbing shared by the services: the /metrics server and ``cryptopulse_build_info``.

Each service declares its own metrics once, in its ``metrics`` module, named
``cryptopulse_<service>_<what>_<unit>`` (``_total`` for counters) with bounded labels.
:func:`declared_metrics` lists the metrics declared in this process; ``services.catalog.all_metrics``
imports every service's metrics module first (for the docs and the contract test).

The /metrics server (:class:`MetricsServer`, :class:`MetricsSettings`) binds loopback unless told
otherwise, can require basic auth and serve HTTPS (optionally mutual TLS), closes a connection
that stays silent for ``metrics_idle_timeout`` (the TLS handshake included, done in the
connection's thread, never in the accept loop) and serves at most ``metrics_max_connections``
connections at once: a scraper that opens connections and sends nothing cannot pile up threads.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import itertools
import platform
import socket
import ssl
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from prometheus_client import REGISTRY, Info, make_wsgi_app
from prometheus_client.metrics import MetricWrapperBase

from services.common.errors import StartupError
from services.common.settings import MetricsSettings, SettingsError, env_name, load

BUILD_INFO = Info("cryptopulse_build", "Version and runtime of this cryptopulse process.")


@dataclass(frozen=True)
class MetricDoc:
    name: str
    type: str
    labels: tuple[str, ...]
    help: str


def set_build_info(service: str) -> None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version("cryptopulse")
    except PackageNotFoundError:
        ver = "0+unknown"
    BUILD_INFO.info({"version": ver, "service": service, "python": platform.python_version()})


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def basic_auth(app: WSGIApp, username: str, password: str, realm: str = "cryptopulse metrics") -> WSGIApp:
    """Wrap ``app`` so that only requests with these basic-auth credentials reach it (else 401)."""
    expected = f"{username}:{password}".encode()

    def guarded(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        header = environ.get("HTTP_AUTHORIZATION", "")
        scheme, _, encoded = header.partition(" ")
        try:
            given = base64.b64decode(encoded.strip(), validate=True) if scheme.lower() == "basic" else b""
        except (binascii.Error, ValueError):
            given = b""
        if hmac.compare_digest(given, expected):
            return app(environ, start_response)
        start_response("401 Unauthorized", [("WWW-Authenticate", f'Basic realm="{realm}"'),
                                            ("Content-Type", "text/plain"), ("Content-Length", "13")])
        return [b"unauthorized\n"]

    return guarded


class _Handler(WSGIRequestHandler):
    """Quiet request handler (its socket already carries the server's idle timeout)."""

    def log_message(self, format: str, *args: Any) -> None:
        """Log nothing: a scrape every few seconds is not news."""


class MetricsServer(ThreadingMixIn, WSGIServer):
    """One thread per connection, bounded in number and in idle time, TLS handshakes in that thread."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], app: WSGIApp, settings: MetricsSettings,
                 tls: ssl.SSLContext | None) -> None:
        self.address_family = socket.getaddrinfo(address[0], address[1], type=socket.SOCK_STREAM,
                                                 flags=socket.AI_PASSIVE)[0][0]
        self.idle_timeout = settings.metrics_idle_timeout
        self.tls = tls
        self.slots = threading.BoundedSemaphore(settings.metrics_max_connections)
        self.refused = 0
        super().__init__(address, _Handler)
        self.set_app(app)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            self.refused += 1
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            request.settimeout(self.idle_timeout)
            if self.tls is not None:
                request = self.tls.wrap_socket(request, server_side=True)
            self.finish_request(request, client_address)
        except (OSError, ValueError):
            pass  # a client that went away, timed out or failed the handshake: nothing to serve
        finally:
            self.shutdown_request(request)
            self.slots.release()


def _tls_context(settings: MetricsSettings) -> ssl.SSLContext | None:
    if not settings.tls:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(str(settings.metrics_tls_certfile), settings.metrics_tls_keyfile)
        if settings.metrics_tls_client_cafile:
            context.load_verify_locations(settings.metrics_tls_client_cafile)
            context.verify_mode = ssl.CERT_REQUIRED
    except ssl.SSLError as exc:
        raise SettingsError(f"{env_name('metrics_tls_certfile')}: the certificate, key or client CA "
                            f"does not load ({exc.reason})") from exc
    return context


def start_metrics_server(port: int, settings: MetricsSettings) -> MetricsServer:
    """Serve REGISTRY on ``settings.metrics_host:port`` from a daemon thread; returns the server."""
    app: WSGIApp = make_wsgi_app(REGISTRY)
    if settings.metrics_auth_username and settings.metrics_auth_password:
        app = basic_auth(app, settings.metrics_auth_username, settings.metrics_auth_password)
    server = MetricsServer((settings.metrics_host, port), app, settings, _tls_context(settings))
    threading.Thread(target=server.serve_forever, name="metrics", daemon=True).start()
    return server


def serve_metrics(port: int, service: str = "", settings: MetricsSettings | None = None) -> MetricsServer:
    """Start the /metrics server of ``service``; a busy port is a one-line StartupError."""
    settings = settings or load(MetricsSettings)
    set_build_info(service)
    try:
        return start_metrics_server(port, settings)
    except OSError as exc:
        raise StartupError(
            f"metrics port {settings.metrics_host}:{port} for {service or 'this service'} is not available "
            f"({exc.strerror}): set CRYPTOPULSE_{service.upper()}_METRICS_PORT to a free port"
        ) from exc


def init_children(metric: MetricWrapperBase, *label_values: Iterable[str]) -> None:
    """Create the child of every combination of known label values, so each series is exported (at 0)
    from start-up: ``rate()``/``increase()`` and absence-based alerts then see it before the first event.

    ``init_children(FRAMES, venues, ("ok", "ignored", "deadletter"))``: one iterable per label, in order.
    """
    for combination in itertools.product(*label_values):
        metric.labels(*combination)


def declared_metrics() -> list[MetricDoc]:
    """Every ``cryptopulse_*`` metric declared in this process, with its type, labels and help."""
    docs: list[MetricDoc] = []
    for collector in list(REGISTRY._collector_to_names):  # the registry has no public iterator
        for family in collector.describe() if hasattr(collector, "describe") else []:
            if not family.name.startswith("cryptopulse_"):
                continue
            labels = tuple(getattr(collector, "_labelnames", ()))
            docs.append(MetricDoc(family.name, family.type, labels, family.documentation))
    return sorted(docs, key=lambda d: d.name)
