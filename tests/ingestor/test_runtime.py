"""Connection runtime against a fake Binance server on loopback: reconnect and resubscribe, gap
detection, per-stream staleness, rotation without loss or duplicates, bursts with backpressure."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import orjson
import pytest

from services.common import topics
from services.common.settings import SettingsError
from services.ingestor.instruments import load_instruments
from services.ingestor.pipeline import Pipeline, Record
from services.ingestor.runtime import (
    Connection,
    StreamClock,
    Timing,
    backoff_delay,
    live_frames,
    plan_connections,
    venue_url_override,
)
from services.ingestor.venues.base import Subscription
from services.ingestor.venues.binance_usdm import BinanceUsdm
from tests.ingestor.fakes.binance_usdm import FakeBinance

VENUE = BinanceUsdm(load_instruments("binance-usdm"))

FAST = Timing(backoff_initial=0.05, backoff_max=0.3, connect_timeout=5.0, check_interval=0.05,
              ping_interval=None, rotation_overlap=0.2)


class Harness:
    """live_frames -> Pipeline, collecting the records."""

    def __init__(self, fake: FakeBinance, plans: list[tuple[Any, Subscription]], timing: Timing,
                 queue_size: int = 10_000) -> None:
        self.pipeline = Pipeline({VENUE.id: VENUE}, bar_interval_ms=10**9)
        self.connections: list[Connection] = []
        self.records: list[Record] = []
        self.source = live_frames(plans, timing, url_override=fake.url, queue_size=queue_size,
                                  connections=self.connections)
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Harness:
        self.task = asyncio.create_task(self._consume())
        await asyncio.sleep(0.01)   # the generator creates its connections when first iterated
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    async def _consume(self) -> None:
        async for frame in self.source:
            self.records.extend(self.pipeline.process(frame))

    def values(self, topic: str) -> list[dict[str, Any]]:
        return [orjson.loads(v) for t, _, v in self.records if t == topic]

    def trade_ids(self, symbol: str) -> list[int]:
        return [int(v["trade_id"]) for v in self.values(topics.TRADES.name) if v["symbol"] == symbol]

    async def until(self, predicate: Callable[[], bool], timeout: float = 20.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while not predicate():
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("condition not reached")
            await asyncio.sleep(0.02)


def test_backoff_is_capped_full_jitter_and_plans_respect_stream_limits() -> None:
    rng = random.Random(1)
    delays = [backoff_delay(attempt, 0.5, 30.0, rng) for attempt in range(60)]
    assert all(0 <= d <= 30.0 for d in delays)
    assert max(delays[10:]) > 5 and min(delays) < 0.5          # grows, and jitter reaches near zero
    many = Subscription(trades=tuple(f"S{i}USDT" for i in range(450)))
    plans = plan_connections(VENUE, many)
    assert [len(p.trades) for p in plans] == [199, 199, 52]
    assert plans[0].all_liquidations and not any(p.all_liquidations for p in plans[1:])
    clock = StreamClock({"trades": 1.0, "liquidations": 10.0}, now=0.0)
    clock.saw("liquidations", 0.5)
    assert clock.stale(0.9) is None and clock.stale(1.1) == "trades"


def test_reconnect_resubscribes_and_gaps_are_detected() -> None:
    async def run() -> None:
        async with FakeBinance() as fake:
            sub = Subscription(trades=("BTCUSDT", "ETHUSDT"))
            async with Harness(fake, [(VENUE, sub)], FAST) as h:
                await fake.wait_for_clients(1)
                await fake.burst("BTCUSDT", 20)
                await h.until(lambda: len(h.trade_ids("BTCUSDT")) == 20)
                await fake.drop_all()
                missed = await fake.burst("BTCUSDT", 5)            # nobody is connected
                await fake.wait_for_clients(1)
                await fake.burst("BTCUSDT", 20)
                fake.skip("ETHUSDT", 3)
                await fake.trade("ETHUSDT")
                fake.skip("ETHUSDT", 3)
                await fake.trade("ETHUSDT")
                await h.until(lambda: len(h.trade_ids("BTCUSDT")) == 40 and len(h.trade_ids("ETHUSDT")) == 2)
                [conn] = h.connections
        assert fake.connects == 2 and conn.reconnects == 1
        assert fake.streams_per_connect[0] == fake.streams_per_connect[1] == [
            "btcusdt@aggTrade", "ethusdt@aggTrade", "!forceOrder@arr"]
        btc = h.trade_ids("BTCUSDT")
        assert sorted(btc) == sorted(set(fake.published["BTCUSDT"]) - set(missed))
        gaps = {(g["instrument"], g["missing"], g["after_trade_id"]) for g in h.values(topics.TRADE_GAPS.name)}
        assert ("BTC-USDT-PERP", 5, str(missed[0] - 1)) in gaps
        assert ("ETH-USDT-PERP", 3, "1000003") in gaps
        assert len(gaps) == 2

    asyncio.run(run())


def test_stale_trades_reset_but_quiet_liquidations_do_not() -> None:
    timing = Timing(backoff_initial=0.05, backoff_max=0.2, check_interval=0.05, ping_interval=None,
                    stale_after={"trades": 0.6, "liquidations": 30.0})

    async def run() -> None:
        async with FakeBinance(ping_interval=0.3) as fake:
            plans = [(VENUE, Subscription(trades=("BTCUSDT",), all_liquidations=False)),
                     (VENUE, Subscription(trades=(), all_liquidations=True))]
            async with Harness(fake, plans, timing) as h:
                trades_conn, liq_conn = h.connections
                await fake.wait_for_clients(2)
                await h.until(lambda: trades_conn.stale_resets >= 2, timeout=20)
                await fake.wait_for_clients(2)
                await fake.burst("BTCUSDT", 3)
                await fake.liquidation("ETHUSDT")
                await h.until(lambda: len(h.values(topics.LIQUIDATIONS.name)) == 1
                              and len(h.trade_ids("BTCUSDT")) >= 1)
        assert liq_conn.connects == 1 and liq_conn.stale_resets == 0 and liq_conn.reconnects == 0
        assert trades_conn.connects >= 3 and trades_conn.reconnects == trades_conn.stale_resets
        [liq] = h.values(topics.LIQUIDATIONS.name)
        assert liq["liquidated_side"] == "long" and liq["instrument"] == "ETH-USDT-PERP"

    asyncio.run(run())


def test_rotation_is_lossless_and_duplicate_free() -> None:
    timing = Timing(backoff_initial=0.05, backoff_max=0.2, check_interval=0.05, ping_interval=None,
                    rotate_after=0.8, rotation_overlap=0.2)

    async def run() -> None:
        async with (FakeBinance(ping_interval=0.5) as fake,
                    Harness(fake, [(VENUE, Subscription(trades=("SOLUSDT",)))], timing) as h):
            [conn] = h.connections
            await fake.wait_for_clients(1)
            loop = asyncio.get_running_loop()
            end = loop.time() + 3.0
            while loop.time() < end:
                await fake.trade("SOLUSDT", price="241.5", qty="3")
                await asyncio.sleep(0.004)
            published = fake.published["SOLUSDT"]
            await h.until(lambda: len(h.trade_ids("SOLUSDT")) >= len(published), timeout=20)
        assert conn.rotations >= 2 and conn.reconnects == 0
        assert fake.connects - conn.rotations in (1, 2)            # 2: a rotation was under way at the end
        received = h.trade_ids("SOLUSDT")
        assert received == published                               # every trade exactly once, in order
        assert h.pipeline.stats["duplicates"] > 0                  # the overlap really delivered twice
        assert h.pipeline.stats["gaps"] == 0                       # and stayed in order

    asyncio.run(run())


def test_burst_through_a_small_queue_loses_nothing() -> None:
    async def run() -> None:
        async with (FakeBinance() as fake,
                    Harness(fake, [(VENUE, Subscription(trades=("BTCUSDT",)))], FAST, queue_size=50) as h):
            await fake.wait_for_clients(1)
            ids = await fake.burst("BTCUSDT", 3000)
            await h.until(lambda: len(h.trade_ids("BTCUSDT")) == len(ids))
        assert h.trade_ids("BTCUSDT") == ids
        assert h.pipeline.stats["gaps"] == 0

    asyncio.run(run())


def test_venue_url_override_is_one_url_for_every_venue_or_one_per_venue() -> None:
    assert venue_url_override(None, "okx") is None
    assert venue_url_override("ws://127.0.0.1:9/?a=b", "okx") == "ws://127.0.0.1:9/?a=b"
    per_venue = "okx=ws://127.0.0.1:1, htx = ws://127.0.0.1:2/x?y=z"
    assert venue_url_override(per_venue, "okx") == "ws://127.0.0.1:1"
    assert venue_url_override(per_venue, "htx") == "ws://127.0.0.1:2/x?y=z"
    assert venue_url_override(per_venue, "gate") is None     # not listed: its real URL
    for bad in ("okx", "okx=", "=ws://127.0.0.1:1", "okx=ws://127.0.0.1:1,htx"):
        with pytest.raises(SettingsError, match="CRYPTOPULSE_VENUE_URL_OVERRIDE: .* is neither a URL nor venue=URL"):
            venue_url_override(bad, "okx")
