"""Plain HTTP on the websocket port: health, the dashboard's files and the read-only HTTP API.

``GET /v1/channels``, ``GET /v1/snapshot/{channel}`` and ``GET /v1/history/{channel}?since=&limit=``
answer from the same registry as the websocket, with the same token and grants; the messages are
the websocket's envelopes byte for byte (``data`` is the record value, untouched). The contract is
``schemas/openapi.json``, served at ``/openapi.json``. Only GET and HEAD exist; HEAD has no body.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from urllib.parse import parse_qs, unquote

import orjson
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

from services.common.topics import SCHEMA_DIR
from services.gateway import metrics, protocol
from services.gateway.auth import Authenticator, AuthError, Grant
from services.gateway.protocol import ProtocolError
from services.gateway.settings import GatewaySettings
from services.gateway.state import Channel, Registry, history_message

WS_PATH = "/ws"
STATIC_DIR = Path(__file__).resolve().parent / "static"
OPENAPI_PATH = SCHEMA_DIR / "openapi.json"
JSON = "application/json"
TEXT = "text/plain; charset=utf-8"
DEFAULT_HISTORY_LIMIT = 100
MAX_HISTORY_LIMIT = 1000  # records per history response (schemas/openapi.json says the same)
HTTP_ERROR_CODES = ("bad_request", "unknown_channel", "forbidden", "auth_failed", "not_found", "no_data",
                    "not_ready", "method_not_allowed")


class HttpError(Exception):
    """An HTTP API request that cannot be served: status and a code (see schemas/openapi.json)."""

    def __init__(self, status: HTTPStatus, code: str, message: str) -> None:
        super().__init__(message)
        assert code in HTTP_ERROR_CODES, code
        self.status = status
        self.code = code
        self.message = message


def request_token(request: Request | None) -> str | None:
    """The JWT of a request: ``Authorization: Bearer ...`` or ``?token=...``."""
    if request is None:
        return None
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return header[7:].strip()
    values = _query(request.path).get("token")
    return values[0] if values else None


def _query(path: str) -> dict[str, list[str]]:
    _, _, query = path.partition("?")
    return parse_qs(query, keep_blank_values=False)


class HttpApi:
    def __init__(self, settings: GatewaySettings, registry: Registry, auth: Authenticator,
                 ready: Callable[[], bool]) -> None:
        self.settings = settings
        self.registry = registry
        self.auth = auth
        self.ready = ready
        self.openapi = OPENAPI_PATH.read_bytes()

    def respond(self, request: Request) -> Response | None:
        """The response to a plain HTTP request; None for a websocket upgrade that may go on."""
        path = request.path.split("?", 1)[0]
        if request.method not in ("GET", "HEAD"):
            response = error_response(HTTPStatus.METHOD_NOT_ALLOWED, "method_not_allowed",
                                      f"{request.method} is not allowed; use GET or HEAD")
            response.headers["Allow"] = "GET, HEAD"
            return response
        if path == WS_PATH:
            return self._upgrade(request)
        response = self._route(path, request)
        if request.method == "HEAD":
            return Response(response.status_code, response.reason_phrase, response.headers, b"")
        return response

    def _route(self, path: str, request: Request) -> Response:
        if path == "/healthz":
            return http_response(HTTPStatus.OK, b"ok\n", TEXT)
        if path == "/readyz":
            if self.ready():
                return http_response(HTTPStatus.OK, b"ready\n", TEXT)
            return http_response(HTTPStatus.SERVICE_UNAVAILABLE, b"loading snapshots\n", TEXT)
        if path == "/" or path.startswith("/static/"):
            return static_response(path)
        if path == "/openapi.json":
            return http_response(HTTPStatus.OK, self.openapi, JSON)
        if path.startswith("/v1/"):
            try:
                return http_response(HTTPStatus.OK, self._api(path, request), JSON)
            except HttpError as exc:
                return error_response(exc.status, exc.code, exc.message)
        return error_response(HTTPStatus.NOT_FOUND, "not_found", f"no resource at {path}")

    def _upgrade(self, request: Request) -> Response | None:
        if not self.ready():
            # A subscription now would be answered from half-loaded snapshots: come back when ready.
            return http_response(HTTPStatus.SERVICE_UNAVAILABLE, b"loading snapshots\n", TEXT)
        if not self.origin_allowed(request.headers.get("Origin")):
            metrics.CONNECTS.labels("rejected_origin").inc()
            return http_response(HTTPStatus.FORBIDDEN, b"origin not allowed\n", TEXT)
        return None

    def origin_allowed(self, origin: str | None) -> bool:
        """Browsers always send Origin; a client without one is not a browser page (allowed by default)."""
        allowed = self.settings.gateway_allowed_origins
        if not allowed:
            return True
        if origin is None:
            return self.settings.gateway_allow_missing_origin
        return origin in allowed

    # ---- the HTTP API ----
    def _api(self, path: str, request: Request) -> bytes:
        if not self.ready():
            raise HttpError(HTTPStatus.SERVICE_UNAVAILABLE, "not_ready", "loading snapshots")
        if request.headers.get("Origin") is not None and not self.origin_allowed(request.headers.get("Origin")):
            raise HttpError(HTTPStatus.FORBIDDEN, "forbidden", "origin not allowed")
        try:
            grant = self.auth.grant(request_token(request))
        except AuthError as exc:
            raise HttpError(HTTPStatus.UNAUTHORIZED, "auth_failed", str(exc)) from None
        query = _query(request.path)
        if path == "/v1/channels":
            return self.channels(grant)
        if path.startswith("/v1/snapshot/"):
            return self.snapshot(grant, path[len("/v1/snapshot/"):])
        if path.startswith("/v1/history/"):
            return self.history(grant, path[len("/v1/history/"):], _int_param(query, "since", None),
                                _int_param(query, "limit", DEFAULT_HISTORY_LIMIT))
        raise HttpError(HTTPStatus.NOT_FOUND, "not_found", f"no resource at {path}")

    def channels(self, grant: Grant) -> bytes:
        families = [{"family": family, "topic": topic.name, "kind": "state" if conflates else "event"}
                    for family, (topic, conflates) in protocol.FAMILIES.items()]
        channels = []
        for name in sorted(self.registry.channels):
            channel = self.registry.channels[name]
            latest = channel.latest
            if latest is None or not grant.allows(name):
                continue
            channels.append({"channel": name, "family": channel.family, "key": name.split(":", 1)[1],
                             "seq": latest.seq, "ts": latest.ts, "retained": len(channel.history)})
        return orjson.dumps({"families": families, "channels": channels})

    def snapshot(self, grant: Grant, raw: str) -> bytes:
        channel = self._channel(grant, raw)
        snapshot = channel.snapshot() if channel is not None else None
        if snapshot is None:
            raise HttpError(HTTPStatus.NOT_FOUND, "no_data", f"channel {unquote(raw)!r} has no data yet")
        return snapshot

    def history(self, grant: Grant, raw: str, since: int | None, limit: int) -> bytes:
        """Retained records after ``since`` (the newest ``limit`` if no ``since``), oldest first;
        ``complete`` is false when records after ``since`` are no longer retained."""
        if not 1 <= limit <= MAX_HISTORY_LIMIT:
            raise HttpError(HTTPStatus.BAD_REQUEST, "bad_request", f"'limit' must be between 1 and {MAX_HISTORY_LIMIT}")
        channel = self._channel(grant, raw)
        name = unquote(raw)
        entries, complete = channel.after(since, limit) if channel is not None else ([], True)
        messages = b",".join(history_message(name, e) for e in entries)
        return (b'{"channel":' + orjson.dumps(name) + b',"complete":' + (b"true" if complete else b"false")
                + b',"messages":[' + messages + b"]}")

    def _channel(self, grant: Grant, raw: str) -> Channel | None:
        """The registry's channel for a path segment (None when valid but without data yet)."""
        name = unquote(raw)
        try:
            protocol.family_of(name)
        except ProtocolError as exc:
            raise HttpError(HTTPStatus.BAD_REQUEST, exc.code, exc.message) from None
        if protocol.is_pattern(name) or "/" in name:
            raise HttpError(HTTPStatus.BAD_REQUEST, "unknown_channel", f"{name!r}: one channel, not a pattern")
        if not grant.allows(name):
            raise HttpError(HTTPStatus.FORBIDDEN, "forbidden", f"the token does not allow {name!r}")
        return self.registry.channels.get(name)


def _int_param(query: dict[str, list[str]], name: str, default: int | None) -> int:
    values = query.get(name)
    if not values:
        return default  # type: ignore[return-value]
    try:
        value = int(values[0])
    except ValueError:
        raise HttpError(HTTPStatus.BAD_REQUEST, "bad_request", f"{name!r} must be an integer") from None
    if value < 0 or value >= 2**63:
        raise HttpError(HTTPStatus.BAD_REQUEST, "bad_request", f"{name!r} must be between 0 and 2^63-1")
    return value


def static_response(path: str) -> Response:
    """``/`` -> static/index.html, ``/static/<file>`` -> that file; nothing outside static/."""
    name = "index.html" if path == "/" else unquote(path[len("/static/"):])
    if not name or any(ord(c) < 32 for c in name) or "\\" in name:
        return error_response(HTTPStatus.NOT_FOUND, "not_found", "not found")
    root = STATIC_DIR.resolve()
    try:
        target = (root / name).resolve()
        found = root in target.parents and target.is_file()
    except (OSError, ValueError):
        found = False
    if not found:
        return error_response(HTTPStatus.NOT_FOUND, "not_found", "not found")
    content_type = {".html": "text/html", ".js": "text/javascript", ".css": "text/css",
                    ".svg": "image/svg+xml"}.get(target.suffix) or mimetypes.guess_type(target.name)[0]
    if content_type is None:
        content_type = "application/octet-stream"
    if content_type.startswith("text/"):
        content_type += "; charset=utf-8"
    return http_response(HTTPStatus.OK, target.read_bytes(), content_type)


def error_response(status: HTTPStatus, code: str, message: str) -> Response:
    return http_response(status, orjson.dumps({"code": code, "message": message}), JSON)


def http_response(status: HTTPStatus, body: bytes, content_type: str) -> Response:
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body))),
                       ("Connection", "close")])
    return Response(status.value, status.phrase, headers, body)
