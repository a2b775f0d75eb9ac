"""A small Python client of the gateway: subscribe, remember the last seq, resume after a drop.

``GatewayClient`` keeps the last seq per channel and sends it as ``since`` when it reconnects,
so the gateway replays what was missed (or sends a snapshot with ``"recovered": false``).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any

import orjson
import websockets
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus

RETRY_SECONDS = 1.0


class GatewayRefused(Exception):
    """The gateway answered with an HTTP error instead of a websocket (403 origin, 503 loading, ...)."""


def refusal(exc: InvalidHandshake, url: str) -> GatewayRefused:
    """One line saying why a connection was refused: the status and the gateway's own words."""
    if isinstance(exc, InvalidStatus):
        response = exc.response
        body = response.body.decode(errors="replace").strip().splitlines() if response.body else []
        detail = f": {body[0][:200]}" if body else ""
        return GatewayRefused(f"{url} refused the connection: HTTP {response.status_code} "
                              f"{response.reason_phrase}{detail}")
    return GatewayRefused(f"{url} refused the connection: {exc}")


class GatewayClient:
    def __init__(self, url: str, channels: list[str], token: str | None = None, history: int = 0) -> None:
        self.url = url
        self.channels = channels
        self.token = token
        self.history = history
        self.last_seq: dict[str, int] = {}
        self._next_id = 0

    def _subscribe_message(self) -> bytes:
        self._next_id += 1
        message: dict[str, Any] = {"op": "subscribe", "id": self._next_id, "channels": self.channels}
        if self.last_seq:
            message["since"] = self.last_seq
        elif self.history:
            message["history"] = self.history
        return orjson.dumps(message)

    async def messages(self, reconnect: bool = True) -> AsyncGenerator[dict[str, Any], None]:
        """Every server message; reconnects (and resumes) after a dropped connection, and while the
        gateway is loading (503). Other HTTP refusals raise :class:`GatewayRefused`. The connection
        is closed with 1000 however the caller stops iterating."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        while True:
            try:
                ws = await websockets.connect(self.url, additional_headers=headers, open_timeout=5)
            except InvalidHandshake as exc:
                refused = refusal(exc, self.url)
                if not reconnect or not isinstance(exc, InvalidStatus) or exc.response.status_code != 503:
                    raise refused from None
                print(f"{refused}; retrying", file=sys.stderr)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            except OSError as exc:
                if not reconnect:
                    raise
                print(f"cannot connect to {self.url} ({exc}); retrying", file=sys.stderr)
                await asyncio.sleep(RETRY_SECONDS)
                continue
            try:
                await ws.send(self._subscribe_message().decode())
                async for frame in ws:
                    message = orjson.loads(frame)
                    if message.get("type") in ("snapshot", "update"):
                        self.last_seq[message["channel"]] = message["seq"]
                    yield message
            except ConnectionClosed as exc:
                if not reconnect:
                    raise
                print(f"connection lost ({exc}); reconnecting", file=sys.stderr)
                await asyncio.sleep(RETRY_SECONDS)
            finally:
                await ws.close()


def render(message: dict[str, Any]) -> str | None:
    """One readable line per data message; None for messages a person does not need to see."""
    kind = message.get("type")
    if kind == "error":
        return f"error {message.get('code')}: {message.get('message')}"
    if kind not in ("snapshot", "update", "history"):
        return None
    data = message.get("data") or {}
    fields = ", ".join(f"{k}={_short(v)}" for k, v in data.items() if not isinstance(v, (dict, list)))
    return f"{kind:8} {message['channel']:28} seq={message['seq']:<8} {fields}"


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.6g}" if abs(value) < 1e6 else f"{value:,.0f}"
    return str(value)


async def watch(url: str, channels: list[str], raw: bool = False, token: str | None = None) -> int:
    """Print every message until interrupted; an error reply (bad channel, forbidden, auth) ends it with 1."""
    client = GatewayClient(url, channels, token=token)
    async with aclosing(client.messages()) as stream:
        async for message in stream:
            if raw:
                print(orjson.dumps(message).decode(), flush=True)
            else:
                line = render(message)
                if line is not None:
                    print(line, flush=True)
            if message.get("type") == "error":
                if raw:
                    print(render(message), file=sys.stderr, flush=True)
                return 1
    return 0
