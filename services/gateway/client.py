"""A small Python client of the gateway: subscribe, remember the last seq, resume after a drop.

``GatewayClient`` keeps the last seq per channel and sends it as ``since`` when it reconnects,
so the gateway replays what was missed (or sends a snapshot with ``"recovered": false``).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from typing import Any

import orjson
import websockets
from websockets.exceptions import ConnectionClosed


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

    async def messages(self, reconnect: bool = True) -> AsyncIterator[dict[str, Any]]:
        """Every server message; reconnects (and resumes) after a dropped connection."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else None
        while True:
            try:
                async with websockets.connect(self.url, additional_headers=headers, open_timeout=5) as ws:
                    await ws.send(self._subscribe_message().decode())
                    async for frame in ws:
                        message = orjson.loads(frame)
                        if message.get("type") in ("snapshot", "update"):
                            self.last_seq[message["channel"]] = message["seq"]
                        yield message
            except (OSError, ConnectionClosed) as exc:
                if not reconnect:
                    raise
                print(f"connection lost ({exc}); reconnecting", file=sys.stderr)
                await asyncio.sleep(1)


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
    async for message in client.messages():
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
