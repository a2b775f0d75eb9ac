"""One protocol session of an adapter against its fake exchange, with a plain websockets client.

The client connects, reads the venue's greeting, sends the adapter's subscribe frames, reads the
acks, sends one heartbeat (when the venue has an app-level one) and reads its reply, then receives
the data frames the fake serves. Parsing and assertions are left to the venue's test.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from services.ingestor.venues.base import Event, Instrument, Subscription
from services.ingestor.venues.common import Adapter
from tests.ingestor.fakes.exchange import FakeExchange, VenueProtocol

TS_RECV = 1_737_972_001_000
TIMEOUT = 10.0


@dataclass
class Session:
    greeting: list[str]
    acks: list[str]
    heartbeat_replies: list[str]
    data: list[str]
    subscribed: list[str]


async def _recv(ws: ClientConnection, adapter: Adapter) -> str:
    """One message as the runtime hands it to the adapter (binary ones through ``frame_text``)."""
    message = await asyncio.wait_for(ws.recv(), TIMEOUT)
    if isinstance(message, str):
        return message
    frame_text = getattr(adapter, "frame_text", None)
    return frame_text(message) if frame_text else message.decode()


async def _session(adapter: Adapter, protocol: VenueProtocol, subscription: Subscription,
                   topics: int, frames: list[Any], path: str = "/") -> Session:
    async with FakeExchange(protocol, path) as fake, connect(fake.url, open_timeout=TIMEOUT) as ws:
        greeting = [await _recv(ws, adapter) for _ in protocol.greeting()]
        for frame in adapter.subscribe_frames(subscription):
            await ws.send(frame)
        subscribed = await fake.wait_subscribed(topics, TIMEOUT)
        acks = [await _recv(ws, adapter) for _ in range(len(fake.replies_sent))]
        replies: list[str] = []
        payload = adapter.rules.heartbeat.payload
        if payload is not None:
            await ws.send(payload)
            replies.append(await _recv(ws, adapter))
        await fake.serve_frames(frames)
        data = [await _recv(ws, adapter) for _ in frames]
    return Session(greeting, acks, replies, data, subscribed)


def run_session(adapter: Adapter, protocol: VenueProtocol, subscription: Subscription, topics: int,
                frames: list[Any], data_marker: str | None = None, path: str = "/") -> Session:
    """Run a session and check the control frames: every greeting/ack/heartbeat reply parses to
    no event (except replies containing ``data_marker``: data the venue sends on subscribe), and
    heartbeat replies are recognised as pongs where the venue's pong has a prefix."""
    session = asyncio.run(_session(adapter, protocol, subscription, topics, frames, path))
    acks = [ack for ack in session.acks if data_marker is None or data_marker not in ack]
    for control in session.greeting + acks + session.heartbeat_replies:
        assert adapter.parse(control, TS_RECV) == [], control
    if adapter.rules.heartbeat.pong_prefixes:
        assert all(adapter.rules.heartbeat.is_pong(reply) for reply in session.heartbeat_replies)
    return session


def parse_all(adapter: Adapter, frames: list[str]) -> list[Event]:
    return [event for frame in frames for event in adapter.parse(frame, TS_RECV)]


def identity(inst: Instrument, **extra: object) -> dict[str, object]:
    """The instrument fields every canonical event of ``inst`` carries, ``ts_recv`` and ``extra``."""
    return {"exchange": inst.venue, "symbol": inst.symbol, "instrument": inst.instrument, "base": inst.base,
            "quote": inst.quote, "market": inst.market, "ts_recv": TS_RECV, **extra}


def table(*instruments: Instrument) -> dict[str, Instrument]:
    return {inst.symbol: inst for inst in instruments}


def assert_events(actual: list[Event], expected: list[Event]) -> None:
    """Same events in order: types and strings exactly, floats to 1e-9 relative."""
    assert [type(event) for event in actual] == [type(event) for event in expected]
    for got, want in zip(actual, expected, strict=True):
        got_fields, want_fields = dataclasses.asdict(got), dataclasses.asdict(want)
        floats = [name for name, value in want_fields.items() if isinstance(value, float)]
        assert {name: got_fields[name] for name in floats} == pytest.approx(
            {name: want_fields[name] for name in floats}, rel=1e-9), want
        assert {k: v for k, v in got_fields.items() if k not in floats} == \
            {k: v for k, v in want_fields.items() if k not in floats}
