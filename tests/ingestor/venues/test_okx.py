"""OKX v5 adapter against the fake OKX endpoint: text ping/pong, trades in contracts, streamed
liquidation-orders (SWAP and FUTURES) with order side vs position side."""

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
from services.ingestor.venues.okx import Okx
from tests.ingestor.fakes import okx as fake
from tests.ingestor.venues.session import TS_RECV, assert_events, identity, parse_all, run_session, table

BTC_SWAP = Instrument("okx", "BTC-USDT-SWAP", "BTC-USDT-PERP", "BTC", "USDT", "perp", "linear", 0.01)
BTC_INVERSE = Instrument("okx", "BTC-USD-SWAP", "BTC-USD-PERP", "BTC", "USD", "perp", "inverse", 100.0)
ETH_FUTURE = Instrument("okx", "ETH-USD-250328", "ETH-USD-250328", "ETH", "USD", "future", "inverse", 10.0)
ADAPTER = Okx(table(BTC_SWAP, BTC_INVERSE, ETH_FUTURE))



def test_session_against_fake_okx() -> None:
    frames = [
        fake.trades_frame("BTC-USDT-SWAP", [fake.trade("BTC-USDT-SWAP", "130639474", "100000.0", "25", "buy",
                                                       1737972000001)]),
        # inverse: 3 contracts of 100 USD at 100,000 USD/BTC = 0.003 BTC, 300 USD
        fake.trades_frame("BTC-USD-SWAP", [fake.trade("BTC-USD-SWAP", "9001", "100000.0", "3", "sell",
                                                      1737972000002)]),
        # net mode: the liquidation order's side tells which position was closed (sell closes a long)
        fake.liquidations_frame("SWAP", "BTC-USDT-SWAP", [fake.detail("sell", "net", "40", "98000.5", 1737972000003),
                                                          fake.detail("buy", "net", "2", "99000", 1737972000004)]),
        # long/short (hedge) mode: posSide is the closed position and agrees with the order side
        fake.liquidations_frame("FUTURES", "ETH-USD-250328",
                                [fake.detail("buy", "short", "12", "3200", 1737972000005),
                                 fake.detail("sell", "long", "5", "3000", 1737972000006)]),
    ]
    subscription = Subscription(trades=("BTC-USDT-SWAP", "BTC-USD-SWAP"))
    session = run_session(ADAPTER, fake.OkxProtocol(), subscription, 4, frames)
    assert session.subscribed == ["trades:BTC-USDT-SWAP", "trades:BTC-USD-SWAP",
                                  "liquidation-orders:SWAP", "liquidation-orders:FUTURES"]
    assert session.heartbeat_replies == ["pong"]
    swap, inverse, future = identity(BTC_SWAP), identity(BTC_INVERSE), identity(ETH_FUTURE)
    assert_events(parse_all(ADAPTER, session.data), [
        Trade(**swap, side="buy", price=100000.0, size=0.25, notional_usd=25000.0, trade_id="130639474",
              ts=1737972000001),
        Trade(**inverse, side="sell", price=100000.0, size=0.003, notional_usd=300.0, trade_id="9001",
              ts=1737972000002),
        Liquidation(**swap, liquidated_side="long", price=98000.5, size=0.4, notional_usd=39200.2,
                    id="okx:BTC-USDT-SWAP:1737972000003:sell:net:40:98000.5", ts=1737972000003),
        Liquidation(**swap, liquidated_side="short", price=99000.0, size=0.02, notional_usd=1980.0,
                    id="okx:BTC-USDT-SWAP:1737972000004:buy:net:2:99000", ts=1737972000004),
        Liquidation(**future, liquidated_side="short", price=3200.0, size=0.0375, notional_usd=120.0,
                    id="okx:ETH-USD-250328:1737972000005:buy:short:12:3200", ts=1737972000005),
        Liquidation(**future, liquidated_side="long", price=3000.0, size=50 / 3000, notional_usd=50.0,
                    id="okx:ETH-USD-250328:1737972000006:sell:long:5:3000", ts=1737972000006),
    ])


def test_liquidations_are_streamed_for_swap_and_futures() -> None:
    frames = ADAPTER.subscribe_frames(Subscription(trades=(), liquidations=(), all_liquidations=True))
    assert [orjson.loads(frame) for frame in frames] == [
        {"op": "subscribe", "args": [{"channel": "liquidation-orders", "instType": "SWAP"},
                                     {"channel": "liquidation-orders", "instType": "FUTURES"}]}]


def test_contradictory_hedge_side_is_rejected() -> None:
    frame = fake.liquidations_frame("SWAP", "BTC-USDT-SWAP", [fake.detail("buy", "long", "1", "1", 1)])
    with pytest.raises(FrameError) as err:
        ADAPTER.parse(frame, TS_RECV)
    assert err.value.reason_class == BAD_VALUE


@pytest.mark.parametrize(("row", "reason"), [
    ({"instId": "DOGE-USDT-SWAP"}, UNKNOWN_INSTRUMENT),
    ({"side": "BUY"}, BAD_FIELD),
    ({"px": "nan"}, BAD_VALUE),
    ({"sz": "-3"}, BAD_VALUE),
    ({"sz": "1e400"}, BAD_VALUE),
    ({"ts": "-1"}, BAD_FIELD),
    ({"tradeId": "12a"}, BAD_FIELD),
    ({"tradeId": "1" * 40}, BAD_FIELD),     # sequential ids must fit int64 (gap arithmetic)
])
def test_bad_trade_rows(row: dict[str, object], reason: str) -> None:
    good = fake.trade("BTC-USDT-SWAP", "1", "100000.0", "25", "buy", 1737972000001)
    with pytest.raises(FrameError) as err:
        ADAPTER.parse(fake.trades_frame("BTC-USDT-SWAP", [{**good, **row}]), TS_RECV)
    assert err.value.reason_class == reason


def test_error_event_and_unknown_channel() -> None:
    error = fake.OkxProtocol().reply("{not json")[0]
    for frame in (error, '{"arg":{"channel":"books5","instId":"BTC-USDT-SWAP"},"data":[]}'):
        with pytest.raises(FrameError) as err:
            ADAPTER.parse(frame, TS_RECV)
        assert err.value.reason_class == UNKNOWN_EVENT
    assert ADAPTER.parse("pong", TS_RECV) == []
