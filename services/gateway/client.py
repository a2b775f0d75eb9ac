"""`cryptopulse watch`: live gateway messages in the terminal, through the public client
(:mod:`services.client`: typed messages, reconnect with backoff, resume by epoch and seq)."""

from __future__ import annotations

import dataclasses
import sys
from contextlib import aclosing
from typing import Any

import orjson

from services.client import Error, GatewayClient, History, Message, Record, Snapshot


def render(message: Message) -> str | None:
    """One readable line per data message or error; None for messages a person does not need to see."""
    if isinstance(message, Error):
        return f"error {message.code}: {message.message}"
    if not isinstance(message, Record):
        return None
    kind = "snapshot" if isinstance(message, Snapshot) else "history" if isinstance(message, History) else "update"
    fields = ", ".join(f"{k}={_short(v)}" for k, v in message.data.items() if not isinstance(v, (dict, list)))
    marks = "".join(f" [{m}]" for m, on in (("reset", message.reset), ("not recovered", isinstance(
        message, Snapshot) and not message.recovered)) if on)
    return f"{kind:8} {message.channel:28} seq={message.seq:<8} {fields}{marks}"


def as_json(message: Message) -> str:
    """The message as the gateway sent it (the typed fields; heartbeats are not shown)."""
    if isinstance(message, Record):
        kind = "snapshot" if isinstance(message, Snapshot) else "history" if isinstance(message, History) \
            else "update"
        out: dict[str, Any] = {"type": kind, "channel": message.channel, "seq": message.seq, "prev": message.prev,
                               "epoch": message.epoch, "ts": message.ts, "data": message.data}
        if isinstance(message, Snapshot) and not message.recovered:
            out["recovered"] = False
        return orjson.dumps(out).decode()
    return orjson.dumps({"type": type(message).__name__.lower(), **dataclasses.asdict(message)}).decode()


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.6g}" if abs(value) < 1e6 else f"{value:,.0f}"
    return str(value)


async def watch(url: str, channels: list[str], raw: bool = False, token: str | None = None) -> int:
    """Print every message until interrupted; an error reply (bad channel, forbidden) ends it with 1.
    Refusals (HTTP errors, a 4001 auth close) raise :class:`services.client.ClientClosed`."""
    client = GatewayClient(url, channels, token=token)
    async with aclosing(client.messages()) as stream:
        async for message in stream:
            line = as_json(message) if raw else render(message)
            if line is not None:
                print(line, flush=True)
            if isinstance(message, Error):
                if raw:
                    print(render(message), file=sys.stderr, flush=True)
                return 1
    return 0


