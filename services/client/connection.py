"""The websocket side of the client: connect, subscribe (resuming), read, reconnect with backoff."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any

import orjson
import websockets
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

from services.client.messages import (
    Ack,
    Message,
    Positions,
    ProtocolViolation,
    Record,
    parse,
)

log = logging.getLogger("cryptopulse.client")

AUTH_FAILED = 4001  # close codes after which reconnecting cannot help (docs/protocol.md)
FATAL_CLOSE_CODES = frozenset({AUTH_FAILED})
EVENT_FAMILIES = ("alerts",)  # never conflated: every message matters, so they are resumed first
MAX_REQUEST_BYTES = 4000  # the gateway's default frame limit is 4096 bytes


class ClientClosed(Exception):
    """The client stopped for good: the gateway refused it (auth) or ``reconnect`` was off."""

    def __init__(self, reason: str, code: int | None = None) -> None:
        super().__init__(reason)
        self.code = code


class GatewayRefused(ClientClosed):
    """The gateway answered the upgrade with an HTTP error (403 origin, 404, ...): one line says why.
    503 (snapshots still loading) is not a refusal: the client retries."""


LOADING = 503


def refusal(exc: InvalidHandshake, url: str) -> GatewayRefused:
    """One line saying why a connection was refused: the status and the gateway's own words."""
    if isinstance(exc, InvalidStatus):
        response = exc.response
        body = response.body.decode(errors="replace").strip().splitlines() if response.body else []
        detail = f": {body[0][:200]}" if body else ""
        return GatewayRefused(f"{url} refused the connection: HTTP {response.status_code} "
                              f"{response.reason_phrase}{detail}", response.status_code)
    return GatewayRefused(f"{url} refused the connection: {exc}")


@dataclass(frozen=True)
class Backoff:
    """Delay before reconnect attempt ``n`` (0-based): ``initial * factor**n`` capped at ``maximum``,
    then a random half to all of it, so that the clients of a restarted gateway do not come back at once."""

    initial: float = 0.5
    maximum: float = 30.0
    factor: float = 2.0

    def delay(self, attempt: int, rand: Callable[[], float] = random.random) -> float:
        return min(self.maximum, self.initial * self.factor ** min(attempt, 32)) * (0.5 + rand() / 2)


class GatewayClient:
    """A subscription to gateway channels as an async iterator of typed messages.

    >>> async for message in GatewayClient(url, ["sector:ai", "alerts:*"]):
    ...     if isinstance(message, (Snapshot, Update)): print(message.channel, message.data)

    It reconnects after a dropped connection or while the gateway is loading (HTTP 503), with
    exponential backoff and jitter, and resubscribes with ``since`` = the last (epoch, seq) seen
    per channel, so the gateway replays what was missed; messages already seen are not yielded twice; a :class:`Snapshot` with
    ``recovered=False`` or a record with ``reset=True`` says the stream could not be continued.
    Other HTTP refusals raise :class:`GatewayRefused`, a 4001 close (auth) :class:`ClientClosed`.
    Iterate inside ``contextlib.aclosing`` (or run it to its end) so that stopping early closes the
    connection with 1000 at once.
    """

    def __init__(self, url: str, channels: list[str], token: str | None = None, history: int = 0,
                 reconnect: bool = True, backoff: Backoff | None = None, open_timeout: float = 5.0,
                 close_timeout: float = 2.0) -> None:
        self.url = url
        self.channels = list(channels)
        self.token = token
        self.history = history
        self.reconnect = reconnect
        self.backoff = backoff or Backoff()
        self.open_timeout = open_timeout
        self.close_timeout = close_timeout   # a closing handshake waits this long (Ctrl-C of `watch`)
        self.positions = Positions()
        self.connects = 0
        self._next_id = 0

    def subscribe_request(self) -> dict[str, Any]:
        self._next_id += 1
        request: dict[str, Any] = {"op": "subscribe", "id": self._next_id, "channels": self.channels}
        if self.history:
            request["history"] = self.history
        budget = MAX_REQUEST_BYTES - len(orjson.dumps(request)) - len(',"since":')
        since = self.positions.since(budget, prefer=EVENT_FAMILIES)
        if since:
            request["since"] = since
        return request

    def __aiter__(self) -> AsyncIterator[Message]:
        return self.messages()

    async def messages(self) -> AsyncGenerator[Message, None]:
        attempt = 0
        while True:
            try:
                async with aclosing(self._session()) as session:
                    async for message in session:
                        if isinstance(message, Ack):
                            attempt = 0
                        yield message
                reason, code = "the gateway closed the connection", None
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd is not None else None
                reason = f"connection closed ({code}: {exc.rcvd.reason if exc.rcvd else 'no close frame'})"
                if code in FATAL_CLOSE_CODES:
                    raise ClientClosed(reason, code) from None
            except InvalidHandshake as exc:
                refused = refusal(exc, self.url)
                if refused.code != LOADING:
                    raise refused from None
                reason, code = str(refused), None
            except (OSError, TimeoutError, ProtocolViolation) as exc:
                reason, code = f"{type(exc).__name__}: {exc}", None
            if not self.reconnect:
                raise ClientClosed(reason, code)
            delay = self.backoff.delay(attempt)
            attempt += 1
            log.warning("%s; reconnecting in %.1f s (attempt %d)", reason, delay, attempt)
            await asyncio.sleep(delay)

    async def _session(self) -> AsyncGenerator[Message, None]:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        ws = await websockets.connect(self.url, additional_headers=headers, open_timeout=self.open_timeout,
                                      close_timeout=self.close_timeout, max_size=2**24)
        try:  # not ``async with``: it closes with 1011 when the caller stops early; this closes with 1000
            self.connects += 1
            await ws.send(orjson.dumps(self.subscribe_request()).decode())
            async for frame in ws:
                message = parse(frame)
                if isinstance(message, Record):
                    message = self.positions.accept(message)
                if message is not None:
                    yield message
        finally:
            await ws.close()
