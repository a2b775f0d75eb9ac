"""Bybit v5 adapter against the fake Bybit endpoint: subscribe/ping protocol, trades, liquidations."""

from __future__ import annotations

import orjson
import pytest

from services.common.events import Liquidation, Trade
from services.ingestor.venues.base import (
    BAD_FIELD,
    BAD_VALUE,
    UNKNOWN_EVENT,
    UNKNOWN_INSTRUMENT,
    FrameError,
    Instrument,
    Subscription,
)
from services.ingestor.venues.bybit import Bybit
from tests.ingestor.fakes import bybit as fake
from tests.ingestor.venues.session import TS_RECV, assert_events, parse_all, run_session, table

BTC = Instrument("bybit", "BTCUSDT", "BTC-USDT-PERP", "BTC", "USDT", "perp", "linear", 1.0)
SHIB = Instrument("bybit", "SHIB1000USDT", "SHIB-USDT-PERP", "SHIB", "USDT", "perp", "linear", 1000.0, 1000.0)
ADAPTER = Bybit(table(BTC, SHIB))


def test_session_against_fake_bybit() -> None:
    frames = [
        fake.trades_frame("BTCUSDT", [fake.trade(1737972000001, "BTCUSDT", "Buy", "0.250", "101000.50", "t-1"),
                                      fake.trade(1737972000002, "BTCUSDT", "Sell", "1.5", "100999.00", "t-2")]),
        fake.trades_frame("SHIB1000USDT", [fake.trade(1737972000003, "SHIB1000USDT", "Sell", "200", "0.0195", "t-3")]),
        fake.liquidations_frame("BTCUSDT", [fake.liquidation(1737972000004, "BTCUSDT", "Buy", "0.8", "99500.0"),
                                            fake.liquidation(1737972000005, "BTCUSDT", "Sell", "0.1", "102500.0")]),
    ]
    subscription = Subscription(trades=("BTCUSDT", "SHIB1000USDT"), liquidations=("BTCUSDT",))
    session = run_session(ADAPTER, fake.BybitProtocol(), subscription, 3, frames)
    assert session.subscribed == ["publicTrade.BTCUSDT", "publicTrade.SHIB1000USDT", "allLiquidation.BTCUSDT"]
    assert session.heartbeat_replies and '"ret_msg":"pong"' in session.heartbeat_replies[0]
    common = {"exchange": "bybit", "symbol": "BTCUSDT", "instrument": "BTC-USDT-PERP", "base": "BTC",
              "quote": "USDT", "market": "perp", "ts_recv": TS_RECV}
    assert_events(parse_all(ADAPTER, session.data), [
        Trade(**common, side="buy", price=101000.5, size=0.25, notional_usd=25250.125, trade_id="t-1",
              ts=1737972000001),
        Trade(**common, side="sell", price=100999.0, size=1.5, notional_usd=151498.5, trade_id="t-2",
              ts=1737972000002),
        # SHIB1000USDT: price of 1000 SHIB, size in lots of 1000 SHIB
        Trade(**{**common, "symbol": "SHIB1000USDT", "instrument": "SHIB-USDT-PERP", "base": "SHIB"},
              side="sell", price=0.0000195, size=200_000.0, notional_usd=3.9, trade_id="t-3", ts=1737972000003),
        # allLiquidation S is the POSITION side: Buy = a long was liquidated
        Liquidation(**common, liquidated_side="long", price=99500.0, size=0.8, notional_usd=79600.0,
                    id="bybit:BTCUSDT:1737972000004:Buy:0.8:99500.0", ts=1737972000004),
        Liquidation(**common, liquidated_side="short", price=102500.0, size=0.1, notional_usd=10250.0,
                    id="bybit:BTCUSDT:1737972000005:Sell:0.1:102500.0", ts=1737972000005),
    ])


def test_subscribe_requests_carry_at_most_ten_args() -> None:
    symbols = tuple(f"S{i}USDT" for i in range(23))
    frames = ADAPTER.subscribe_frames(Subscription(trades=symbols, liquidations=symbols[:4]))
    args = [orjson.loads(frame)["args"] for frame in frames]
    assert [len(a) for a in args] == [10, 10, 7]
    assert sum(args, []) == [f"publicTrade.{s}" for s in symbols] + [f"allLiquidation.{s}" for s in symbols[:4]]


def test_liquidation_topics_cover_the_instrument_table() -> None:
    def args(subscription: Subscription) -> list[str]:
        return sum((orjson.loads(frame)["args"] for frame in ADAPTER.subscribe_frames(subscription)), [])

    assert args(Subscription(trades=("BTCUSDT",))) == ["publicTrade.BTCUSDT", "allLiquidation.BTCUSDT",
                                                       "allLiquidation.SHIB1000USDT"]
    assert args(Subscription()) == ["allLiquidation.BTCUSDT", "allLiquidation.SHIB1000USDT"]
    assert args(Subscription(trades=("BTCUSDT",), all_liquidations=False)) == ["publicTrade.BTCUSDT"]


def test_rejected_subscription_is_dead_lettered() -> None:
    reply = fake.BybitProtocol().reply(orjson.dumps({"op": "subscribe", "args": ["x"] * 11}).decode())[0]
    with pytest.raises(FrameError) as err:
        ADAPTER.parse(reply, TS_RECV)
    assert err.value.reason_class == UNKNOWN_EVENT


@pytest.mark.parametrize(("row", "reason"), [
    ({"s": "ETHUSDT"}, UNKNOWN_INSTRUMENT),
    ({"S": "buy"}, BAD_FIELD),
    ({"v": "NaN"}, BAD_VALUE),
    ({"p": "-1"}, BAD_VALUE),
    ({"v": "0"}, BAD_VALUE),
    ({"p": "Infinity"}, BAD_VALUE),
    ({"T": "soon"}, BAD_FIELD),
    ({"i": None}, BAD_FIELD),
])
def test_bad_trade_rows(row: dict[str, object], reason: str) -> None:
    good = fake.trade(1737972000001, "BTCUSDT", "Buy", "0.250", "101000.50", "t-1")
    with pytest.raises(FrameError) as err:
        ADAPTER.parse(fake.trades_frame("BTCUSDT", [{**good, **row}]), TS_RECV)
    assert err.value.reason_class == reason


def test_unknown_topic_and_missing_topic() -> None:
    for frame in ('{"topic":"orderbook.50.BTCUSDT","type":"delta","data":{}}', '{"data":[]}'):
        with pytest.raises(FrameError) as err:
            ADAPTER.parse(frame, TS_RECV)
        assert err.value.reason_class == UNKNOWN_EVENT
