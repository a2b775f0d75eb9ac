"""HTX USDT-swap adapter against the fake HTX endpoints: gzip binary frames, the venue's own pings
answered with pongs on both endpoints, trades on the market endpoint and liquidation orders on the
notification endpoint (planned on a connection of their own), and the contract-info parser."""

from __future__ import annotations

import asyncio
import gzip
import time

import pytest

from services.common.events import Liquidation, Trade
from services.ingestor.runtime import Connection, Timing, live_frames, plan_connections
from services.ingestor.venues.base import (
    BAD_FIELD,
    OVERSIZED,
    UNKNOWN_EVENT,
    FrameError,
    Instrument,
    Subscription,
)
from services.ingestor.venues.common import MAX_FRAME_CHARS
from services.ingestor.venues.htx import Htx
from tests.ingestor.fakes import htx as fake
from tests.ingestor.fakes.exchange import FakeExchange
from tests.ingestor.venues.session import TS_RECV, assert_events, identity, parse_all, run_session, table

BTC = Instrument("htx", "BTC-USDT", "BTC-USDT-PERP", "BTC", "USDT", "perp", "linear", 0.001)
DOGE = Instrument("htx", "DOGE-USDT", "DOGE-USDT-PERP", "DOGE", "USDT", "perp", "linear", 100.0)
ADAPTER = Htx(table(BTC, DOGE))
TRADES = fake.trades_frame("BTC-USDT", [fake.trade(1316022650000, 1737972000001, 100000.5, 25, 0.001, "buy"),
                                        fake.trade(1316022650001, 1737972000002, 100000.0, 3, 0.001, "sell")])
LIQUIDATIONS = fake.liquidations_frame("DOGE-USDT", [
    fake.liquidation("DOGE-USDT", "sell", 40, 100.0, 0.35, 1737972000003),
    fake.liquidation("DOGE-USDT", "sell", 40, 100.0, 0.35, 1737972000003),      # identical row: a second one
    fake.liquidation("DOGE-USDT", "buy", 2, 100.0, 0.36, 1737972000004)])


def test_session_against_fake_htx() -> None:
    session = run_session(ADAPTER, fake.HtxProtocol(), Subscription(trades=("BTC-USDT",)), 1,
                          [fake.wire(TRADES), fake.wire(LIQUIDATIONS)])
    assert session.greeting == ['{"ping":1737972000123}'] and session.data == [TRADES, LIQUIDATIONS]
    btc, doge = identity(BTC), identity(DOGE)
    base_id = "htx:DOGE-USDT:1737972000003:sell:40:0.35"
    assert_events(parse_all(ADAPTER, session.data), [
        Trade(**btc, side="buy", price=100000.5, size=0.025, notional_usd=2500.0125, trade_id="1316022650000",
              ts=1737972000001),
        Trade(**btc, side="sell", price=100000.0, size=0.003, notional_usd=300.0, trade_id="1316022650001",
              ts=1737972000002),
        Liquidation(**doge, liquidated_side="long", price=0.35, size=4000.0, notional_usd=1400.0, id=base_id,
                    ts=1737972000003),
        Liquidation(**doge, liquidated_side="long", price=0.35, size=4000.0, notional_usd=1400.0, id=f"{base_id}:1",
                    ts=1737972000003),
        Liquidation(**doge, liquidated_side="short", price=0.36, size=200.0, notional_usd=72.0,
                    id="htx:DOGE-USDT:1737972000004:buy:2:0.36", ts=1737972000004),
    ])


def test_pings_are_answered_with_pongs() -> None:
    assert Htx.heartbeat_reply('{"ping":1492420473027}') == '{"pong":1492420473027}'
    assert Htx.heartbeat_reply('{"op":"ping","ts":"1489474081631"}') == '{"op":"pong","ts":"1489474081631"}'
    assert Htx.heartbeat_reply(TRADES) is None


def test_frame_text_is_bounded() -> None:
    assert Htx.frame_text(fake.wire(TRADES)) == TRADES
    bomb = gzip.compress(b"[" + b" " * (2 * MAX_FRAME_CHARS) + b"]")
    with pytest.raises(FrameError) as err:
        ADAPTER.parse(Htx.frame_text(bomb), TS_RECV)          # dead-lettered as it came (compressed)
    assert err.value.reason_class in ("invalid_json", OVERSIZED)
    assert Htx.frame_text(b"\xff\x00 not gzip").startswith("base64:")


@pytest.mark.parametrize(("frame", "reason"), [
    ('{"status":"error","err-code":"bad-request","err-msg":"invalid topic","ts":1}', UNKNOWN_EVENT),
    ('{"op":"sub","cid":"x","topic":"public.NOPE.liquidation_orders","ts":1,"err-code":2011}', UNKNOWN_EVENT),
    ('{"ch":"market.BTC-USDT.depth.step0","ts":1,"tick":{}}', UNKNOWN_EVENT),
    (fake.trades_frame("BTC-USDT", [{**fake.trade(1, 1, 1.0, 1, 0.001, "buy"), "direction": "BUY"}]), BAD_FIELD),
])
def test_errors(frame: str, reason: str) -> None:
    with pytest.raises(FrameError) as err:
        ADAPTER.parse(frame, TS_RECV)
    assert err.value.reason_class == reason


def test_liquidations_are_planned_on_the_notification_endpoint() -> None:
    plans = plan_connections(ADAPTER, Subscription(trades=("BTC-USDT", "DOGE-USDT")))
    assert [(plan.trades, ADAPTER.connect_url(plan)) for plan in plans] == [
        (("BTC-USDT", "DOGE-USDT"), "wss://api.hbdm.com/linear-swap-ws"),
        ((), "wss://api.hbdm.com/linear-swap-notification")]
    assert ADAPTER.subscribe_frames(plans[1]) == [
        '{"op":"sub","cid":"liq-*","topic":"public.*.liquidation_orders"}']


async def _live() -> tuple[list[str], FakeExchange]:
    timing = Timing(ping_interval=None, check_interval=0.05)
    async with FakeExchange(fake.HtxProtocol()) as server:
        made: list[Connection] = []
        stream = live_frames([(ADAPTER, Subscription(trades=("BTC-USDT",)))], timing,
                             url_override=f"ws://127.0.0.1:{server.port}", connections=made)
        got: list[str] = []

        async def read() -> None:
            async for raw in stream:
                got.append(raw.frame)
                if {TRADES, LIQUIDATIONS} <= set(got):
                    return

        reader = asyncio.create_task(read())
        try:
            await server.wait_subscribed(2)
            deadline = time.monotonic() + 10
            while sum(m.startswith(('{"pong"', '{"op":"pong"')) for m in server.received) < 2:
                assert time.monotonic() < deadline, server.received
                await asyncio.sleep(0.02)
            await server.serve_frames([fake.wire(TRADES), fake.wire(LIQUIDATIONS)])
            await asyncio.wait_for(reader, 10)
        finally:
            reader.cancel()
            await stream.aclose()
        assert len(made) == 2
    return got, server


def test_runtime_answers_pings_and_inflates_frames() -> None:
    got, server = asyncio.run(_live())
    assert '{"pong":1737972000123}' in server.received                     # market endpoint
    assert '{"op":"pong","ts":"1737972000123"}' in server.received          # notification endpoint
    assert sorted(server.subscribed) == ["market.BTC-USDT.trade.detail", "public.*.liquidation_orders"]
    # frames arrive inflated: the data as served, the rest are acks (no events, no pings)
    assert all(ADAPTER.parse(frame, 1) == [] for frame in got if frame not in (TRADES, LIQUIDATIONS))
    assert not any("ping" in frame for frame in got)
