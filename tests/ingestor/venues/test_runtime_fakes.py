"""The core connection runtime (``services.ingestor.runtime.Connection``) against every fake venue:
subscribe, app-level heartbeat, frames delivered unchanged and in order, forced disconnect,
reconnect and resubscribe, a burst, and per-stream channel classification for staleness."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable
from typing import Any

import pytest

from services.common.frames import RawFrame
from services.ingestor.instruments import load_instruments
from services.ingestor.runtime import Connection, Timing
from services.ingestor.venues import registry
from services.ingestor.venues.base import Subscription
from services.ingestor.venues.common import CONTROL, Adapter
from tests.ingestor.fakes import bitmex, bybit, coinbase, deribit, gate, htx, hyperliquid, kraken_futures, okx
from tests.ingestor.fakes.exchange import FakeExchange, VenueProtocol
from tests.ingestor.fakes.samples import CONTROL_FRAMES, recorded_frames

TIMEOUT = 15.0
CASES: dict[str, tuple[VenueProtocol, Subscription, int]] = {
    "bybit": (bybit.BybitProtocol(), Subscription(trades=("BTCUSDT",), liquidations=("BTCUSDT",)), 2),
    "okx": (okx.OkxProtocol(), Subscription(trades=("BTC-USDT-SWAP", "BTC-USD-SWAP")), 4),
    "bitmex": (bitmex.BitmexProtocol(), Subscription(trades=("XBTUSD", "ETHUSD"), liquidations=("XBTUSD",)), 3),
    "deribit": (deribit.DeribitProtocol(), Subscription(trades=("BTC-PERPETUAL",)), 1),
    "gate": (gate.GateProtocol(), Subscription(trades=("BTC_USDT",), liquidations=("BTC_USDT",)), 2),
    "coinbase": (coinbase.CoinbaseProtocol(), Subscription(trades=("BTC-USD",)), 1),
    "kraken-futures": (kraken_futures.KrakenFuturesProtocol(), Subscription(trades=("PF_XBTUSD",)), 2),
    "hyperliquid": (hyperliquid.HyperliquidProtocol(), Subscription(trades=("BTC", "kPEPE")), 2),
    "htx": (htx.HtxProtocol(), Subscription(trades=("BTC-USDT",)), 1),     # gzip frames; pings answered
}
WIRE: dict[str, Callable[[str], Any]] = {"htx": htx.wire}     # how the venue sends a frame (default: text)


def _fast(venue: str) -> Adapter:
    """The registry's adapter with a 0.2 s heartbeat, so a short test sees several."""
    adapter = registry.get(venue, load_instruments(venue))
    assert isinstance(adapter, Adapter)
    cls = type(adapter)
    rules = dataclasses.replace(cls.rules, heartbeat=dataclasses.replace(cls.rules.heartbeat, interval=0.2))
    fast = type(f"Fast{cls.__name__}", (cls,), {"rules": rules})
    return fast(adapter.instruments)  # type: ignore[no-any-return]


async def _collect(queue: asyncio.Queue[RawFrame], wanted: list[str]) -> list[str]:
    """Frames from the runtime until every frame of ``wanted`` arrived; returns those, in arrival order."""
    pending, got = set(wanted), []
    deadline = time.monotonic() + TIMEOUT
    while pending:
        raw = await asyncio.wait_for(queue.get(), deadline - time.monotonic())
        if raw.frame in pending:
            pending.discard(raw.frame)
            got.append(raw.frame)
    return got


async def _scenario(venue: str) -> tuple[Adapter, Connection, FakeExchange, list[str], list[str]]:
    adapter = _fast(venue)
    protocol, subscription, topics = CASES[venue]
    data = [frame for frame in recorded_frames(venue, 120) if frame not in CONTROL_FRAMES[venue]]
    first, second = data[:40], data[40:]
    queue: asyncio.Queue[RawFrame] = asyncio.Queue()
    timing = Timing(backoff_initial=0.05, backoff_max=0.2, check_interval=0.05, ping_interval=None)
    async with FakeExchange(protocol) as fake:
        connection = Connection(adapter, subscription, queue, timing, url_override=fake.url)
        task = asyncio.create_task(connection.run())
        try:
            await fake.wait_subscribed(topics, TIMEOUT)
            wire = WIRE.get(venue, str)
            await fake.serve_frames([wire(frame) for frame in first])
            got_first = await _collect(queue, first)
            assert fake.drop() == 1                            # the venue crashes
            await fake.wait_subscribed(2 * topics, TIMEOUT)    # reconnected and resubscribed
            await fake.burst([wire(frame) for frame in second])   # a cascade, written back to back
            got_second = await _collect(queue, second)
            deadline = time.monotonic() + TIMEOUT
            payload = adapter.rules.heartbeat.payload
            while payload is not None and fake.received.count(payload) < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    assert got_first == first and got_second == second        # unchanged, in order, none lost
    return adapter, connection, fake, first + second, got_first + got_second


@pytest.mark.parametrize("venue", sorted(CASES))
def test_runtime_session_with_drop_and_burst(venue: str) -> None:
    adapter, connection, fake, served, delivered = asyncio.run(_scenario(venue))
    assert connection.connects == 2 and connection.reconnects >= 1
    assert fake.subscribed[: len(fake.subscribed) // 2] == fake.subscribed[len(fake.subscribed) // 2:]
    payload = adapter.rules.heartbeat.payload
    if payload is not None:
        assert fake.received.count(payload) >= 2               # the app-level heartbeat kept going
    events = [event for frame in delivered for event in adapter.parse(frame, 1)]
    assert events == [event for frame in served for event in adapter.parse(frame, 1)] and events
    assert {adapter.channel_of(frame) for frame in served} <= {"trades", "liquidations", None}
    assert adapter.channel_of(CONTROL_FRAMES[venue][0]) == CONTROL    # a heartbeat reply keeps no stream alive


async def _quiet(subscription: Subscription, silent: bool, seconds: float) -> tuple[Connection, FakeExchange]:
    """Gate (whose pong has no fixed prefix) with a 0.6 s trade threshold and no data at all."""
    adapter = _fast("gate")
    queue: asyncio.Queue[RawFrame] = asyncio.Queue()
    timing = Timing(backoff_initial=0.05, backoff_max=0.1, check_interval=0.05, ping_interval=None,
                    stale_after={"trades": 0.6})
    async with FakeExchange(gate.GateProtocol()) as fake:
        connection = Connection(adapter, subscription, queue, timing, url_override=fake.url)
        task = asyncio.create_task(connection.run())
        await fake.wait_subscribed(1, TIMEOUT)
        if silent:
            fake.go_silent()
        await asyncio.sleep(seconds)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    return connection, fake


def test_heartbeat_replies_do_not_hide_a_silent_trade_stream() -> None:
    connection, fake = asyncio.run(_quiet(Subscription(trades=("BTC_USDT",), all_liquidations=False), False, 2.0))
    assert any('"futures.pong"' in reply for reply in fake.replies_sent)   # pongs kept coming...
    assert connection.stale_resets >= 1 and fake.connects >= 2            # ...yet the stream was reset


def test_quiet_liquidation_stream_is_not_reset() -> None:
    connection, fake = asyncio.run(_quiet(Subscription(liquidations=("BTC_USDT",)), True, 2.0))
    assert connection.stale_resets == 0 and fake.connects == 1
