"""BitMEX adapter against the fake BitMEX endpoint: welcome, acks and trade partial ignored,
inverse/linear/quanto contracts, liquidation order side -> closed position."""

from __future__ import annotations

import orjson
import pytest

from services.common.events import Liquidation, Trade
from services.ingestor.venues.base import (
    BAD_FIELD,
    BAD_VALUE,
    UNKNOWN_EVENT,
    FrameError,
    Instrument,
    Subscription,
)
from services.ingestor.venues.bitmex import Bitmex
from tests.ingestor.fakes import bitmex as fake
from tests.ingestor.venues.session import TS_RECV, assert_events, identity, parse_all, run_session, table

XBTUSD = Instrument("bitmex", "XBTUSD", "BTC-USD-PERP", "BTC", "USD", "perp", "inverse", 1.0)
XBTUSDT = Instrument("bitmex", "XBTUSDT", "BTC-USDT-PERP", "BTC", "USDT", "perp", "linear", 0.000001)
ETHUSD = Instrument("bitmex", "ETHUSD", "ETH-USD-PERP", "ETH", "USD", "perp", "quanto", 0.1)
ADAPTER = Bitmex(table(XBTUSD, XBTUSDT, ETHUSD))



def test_session_against_fake_bitmex() -> None:
    frames = [
        fake.table_frame("trade", "insert", [
            fake.trade("2025-01-27T10:00:00.001Z", "XBTUSD", "Sell", 5000, 100000.0, "m-1"),
            fake.trade("2025-01-27T10:00:00.002Z", "XBTUSDT", "Buy", 250000, 100010.0, "m-2"),
            fake.trade("2025-01-27T10:00:00.003Z", "ETHUSD", "Buy", 30, 3200.0, "m-3")]),
        fake.table_frame("liquidation", "insert", [fake.liquidation("o-1", "XBTUSD", "Sell", 99000.0, 19800),
                                                   fake.liquidation("o-2", "ETHUSD", "Buy", 3300.0, 7)]),
        fake.table_frame("liquidation", "update", [{"orderID": "o-1", "symbol": "XBTUSD", "leavesQty": 9800}]),
        fake.table_frame("liquidation", "delete", [{"orderID": "o-1", "symbol": "XBTUSD"}]),
    ]
    subscription = Subscription(trades=("XBTUSD", "XBTUSDT", "ETHUSD"), liquidations=("XBTUSD", "ETHUSD"))
    session = run_session(ADAPTER, fake.BitmexProtocol(), subscription, 5, frames)
    assert session.subscribed == ["trade:XBTUSD", "trade:XBTUSDT", "trade:ETHUSD", "liquidation:XBTUSD",
                                  "liquidation:ETHUSD"]
    assert any('"action":"partial"' in ack for ack in session.acks)   # history on subscribe: ignored
    assert session.heartbeat_replies == ["pong"]
    assert_events(parse_all(ADAPTER, session.data), [
        # inverse: 5000 USD contracts at 100,000 = 0.05 BTC
        Trade(**identity(XBTUSD, ts=1737972000001), side="sell", price=100000.0, size=0.05, notional_usd=5000.0,
              trade_id="m-1"),
        # linear: 1e-6 BTC per contract
        Trade(**identity(XBTUSDT, ts=1737972000002), side="buy", price=100010.0, size=0.25, notional_usd=25002.5,
              trade_id="m-2"),
        # quanto: 0.1 ETH per contract (instrument table)
        Trade(**identity(ETHUSD, ts=1737972000003), side="buy", price=3200.0, size=3.0, notional_usd=9600.0,
              trade_id="m-3"),
        # liquidation side is the ORDER side: Sell closes a long
        Liquidation(**identity(XBTUSD, ts=TS_RECV), liquidated_side="long", price=99000.0, size=0.2,
                    notional_usd=19800.0, id="bitmex:o-1"),
        Liquidation(**identity(ETHUSD, ts=TS_RECV), liquidated_side="short", price=3300.0, size=0.7,
                    notional_usd=2310.0, id="bitmex:o-2"),
    ])


def test_liquidation_subscriptions_and_error_reply() -> None:
    def args(subscription: Subscription) -> list[list[str]]:
        return [orjson.loads(frame)["args"] for frame in ADAPTER.subscribe_frames(subscription)]

    # all_liquidations (the default): every instrument of the table; with an empty table, all-market
    assert args(Subscription(trades=("XBTUSD",))) == [["trade:XBTUSD", "liquidation:XBTUSD", "liquidation:XBTUSDT",
                                                        "liquidation:ETHUSD"]]
    assert [orjson.loads(f)["args"] for f in Bitmex({}).subscribe_frames(Subscription())] == [["liquidation"]]
    assert args(Subscription(trades=("XBTUSD",), all_liquidations=False)) == [["trade:XBTUSD"]]
    error = fake.BitmexProtocol().reply('{"op":"authKey"}')[0]
    with pytest.raises(FrameError) as err:
        ADAPTER.parse(error, TS_RECV)
    assert err.value.reason_class == UNKNOWN_EVENT


@pytest.mark.parametrize(("row", "reason"), [
    ({"timestamp": "yesterday"}, BAD_FIELD),
    ({"timestamp": 1737972000}, BAD_FIELD),
    ({"size": 0}, BAD_VALUE),
    ({"price": -5.0}, BAD_VALUE),
    ({"side": ""}, BAD_FIELD),
    ({"trdMatchID": ""}, BAD_FIELD),
])
def test_bad_trade_rows(row: dict[str, object], reason: str) -> None:
    good = fake.trade("2025-01-27T10:00:00.001Z", "XBTUSD", "Sell", 5000, 100000.0, "m-1")
    with pytest.raises(FrameError) as err:
        ADAPTER.parse(fake.table_frame("trade", "insert", [{**good, **row}]), TS_RECV)
    assert err.value.reason_class == reason


def test_unknown_table_and_action() -> None:
    for frame in (fake.table_frame("orderBookL2", "insert", []), fake.table_frame("trade", "upsert", [])):
        with pytest.raises(FrameError) as err:
            ADAPTER.parse(frame, TS_RECV)
        assert err.value.reason_class == UNKNOWN_EVENT
