"""A real HTTP server on loopback for the REST fakes (provider, venues): routes, scripted faults.

Each fake registers ``route(path) -> handler(query) -> (status, headers, body)``. ``faults`` is a
queue of (path, status, headers, body) answered instead of the real route, in order, for a request
to that path: a test scripts "429 with Retry-After: 1, then a 500, then serve normally". Every
request is logged (path, query) for the paging assertions.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from services.common.broker import free_port

Answer = tuple[int, dict[str, str], bytes]
Handler = Callable[[dict[str, str]], Answer]


def json_answer(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Answer:
    return status, {"Content-Type": "application/json", **(headers or {})}, orjson.dumps(value)


class FakeRest:
    def __init__(self) -> None:
        self.port = free_port()
        self.routes: dict[str, Handler] = {}
        self.faults: deque[tuple[str, int, dict[str, str], bytes]] = deque()
        self.requests: list[tuple[str, dict[str, str], dict[str, str]]] = []
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def route(self, path: str, handler: Handler) -> None:
        self.routes[path] = handler

    def fault(self, path: str, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.faults.append((path, status, headers or {}, body))

    def calls(self, path: str) -> list[dict[str, str]]:
        with self.lock:
            return [q for p, q, _ in self.requests if p == path]

    def _answer(self, path: str, query: dict[str, str], headers: dict[str, str]) -> Answer:
        with self.lock:
            self.requests.append((path, query, headers))
            if self.faults and self.faults[0][0] == path:
                _, status, fault_headers, body = self.faults.popleft()
                return status, fault_headers, body
        handler = self.routes.get(path)
        if handler is None:
            return json_answer({"error": f"no route {path}"}, 404)
        return handler(query)

    def start(self) -> FakeRest:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                parts = urlsplit(self.path)
                query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
                status, headers, body = fake._answer(parts.path, query, {k.lower(): v for k, v in self.headers.items()})
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
