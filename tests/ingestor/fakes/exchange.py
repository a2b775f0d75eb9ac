"""A fake exchange: a real ``websockets`` server on loopback that speaks one venue's protocol.

The venue-specific part is a :class:`VenueProtocol` (greeting, replies to subscribe and heartbeat
messages, which topics a message subscribes to); this module adds what every fake needs:
recording what clients sent, serving frames to subscribed clients, bursts, forced disconnects and
silence (no replies, no heartbeats answered, no data).
"""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from services.common.broker import free_port


def dump(value: Any) -> str:
    """A frame as the venues send it: compact JSON, keys in the given order."""
    return orjson.dumps(value).decode()


class NoGreeting:
    """Most venues send nothing before the first request."""

    def greeting(self) -> list[str]:
        return []


class VenueProtocol(Protocol):
    def greeting(self) -> list[str]:
        """Frames the venue sends right after the websocket handshake."""
        ...

    def reply(self, message: str) -> list[str]:
        """The venue's replies to one client message (subscribe acks, pongs, errors)."""
        ...

    def topics(self, message: str) -> list[str]:
        """The topics a client message subscribes to (empty when it is not a subscription)."""
        ...


class FakeExchange:
    """``async with FakeExchange(protocol) as fake:`` serves on ``fake.url`` until the block ends."""

    def __init__(self, protocol: VenueProtocol, path: str = "/") -> None:
        self.protocol = protocol
        self.path = path
        self.port = free_port()
        self.received: list[str] = []
        self.subscribed: list[str] = []
        self.replies_sent: list[str] = []
        self.connects = 0
        self.silent = False
        self._clients: set[ServerConnection] = set()
        self._changed = asyncio.Condition()
        self._server: Server | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{self.path}"

    async def __aenter__(self) -> FakeExchange:
        self._server = await serve(self._handle, "127.0.0.1", self.port, max_size=None)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, ws: ServerConnection) -> None:
        self.connects += 1
        self._clients.add(ws)
        try:
            for frame in self.protocol.greeting():
                await ws.send(frame)
            async for message in ws:
                text = message if isinstance(message, str) else message.decode()
                self.received.append(text)
                if self.silent:
                    continue
                for reply in self.protocol.reply(text):
                    self.replies_sent.append(reply)
                    await ws.send(reply)
                topics = self.protocol.topics(text)
                if topics:
                    async with self._changed:
                        self.subscribed.extend(topics)
                        self._changed.notify_all()
        except ConnectionClosed:
            pass
        finally:
            self._clients.discard(ws)

    async def wait_subscribed(self, count: int, timeout: float = 10.0) -> list[str]:
        """Wait until clients subscribed at least ``count`` topics; returns them."""
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: len(self.subscribed) >= count), timeout)
        return list(self.subscribed)

    async def serve_frames(self, frames: list[str], pause: float = 0.0) -> None:
        """Send ``frames`` to every connected client in order (``pause`` seconds apart)."""
        for frame in frames:
            if self.silent:
                return
            for ws in list(self._clients):
                try:
                    await ws.send(frame)
                except ConnectionClosed:
                    self._clients.discard(ws)
            if pause:
                await asyncio.sleep(pause)

    async def burst(self, frames: list[str]) -> None:
        """Write all ``frames`` back to back without yielding between them (a cascade)."""
        for ws in list(self._clients):
            for frame in frames:
                await ws.send(frame)

    def drop(self) -> int:
        """Abort every connection at the TCP level (no close frame, as a venue crash looks)."""
        dropped = 0
        for ws in list(self._clients):
            ws.transport.abort()
            dropped += 1
        self._clients.clear()
        return dropped

    def go_silent(self) -> None:
        """Stop answering and sending anything (connections stay open)."""
        self.silent = True
