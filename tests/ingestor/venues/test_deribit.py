"""Deribit adapter against the fake Deribit endpoint: JSON-RPC subscribe/test, inverse amounts in
USD, liquidation-flagged trades (M, T, MT) -> liquidations of the right position."""

from __future__ import annotations

import orjson
import pytest

from services.common.events import Liquidation, Trade
from services.ingestor.venues.base import BAD_FIELD, UNKNOWN_EVENT, FrameError, Instrument, Subscription
from services.ingestor.venues.deribit import Deribit
from tests.ingestor.fakes import deribit as fake
from tests.ingestor.venues.session import TS_RECV, assert_events, identity, parse_all, run_session, table

PERP = Instrument("deribit", "BTC-PERPETUAL", "BTC-USD-PERP", "BTC", "USD", "perp", "inverse", 1.0)
LINEAR = Instrument("deribit", "ETH_USDC-PERPETUAL", "ETH-USDC-PERP", "ETH", "USDC", "perp", "linear", 1.0)
ADAPTER = Deribit(table(PERP, LINEAR))



def test_session_against_fake_deribit() -> None:
    frames = [
        fake.trades_frame("BTC-PERPETUAL", [
            fake.trade("BTC-PERPETUAL", "316400001", 1001, 1737972000001, "buy", 100000.0, 2000.0),
            # the taker (a seller) was liquidated: a long was closed
            fake.trade("BTC-PERPETUAL", "316400002", 1002, 1737972000002, "sell", 99000.0, 990.0, "T"),
            # the maker was liquidated; the taker bought, so the maker sold: a long was closed
            fake.trade("BTC-PERPETUAL", "316400003", 1003, 1737972000003, "buy", 98000.0, 490.0, "M")]),
        # both sides liquidated: the taker bought (short closed), the maker sold (long closed)
        fake.trades_frame("ETH_USDC-PERPETUAL", [
            fake.trade("ETH_USDC-PERPETUAL", "ETH_USDC-77", 5, 1737972000004, "buy", 3000.0, 1.5, "MT")]),
    ]
    subscription = Subscription(trades=("BTC-PERPETUAL",), liquidations=("BTC-PERPETUAL", "ETH_USDC-PERPETUAL"))
    session = run_session(ADAPTER, fake.DeribitProtocol(), subscription, 2, frames)
    assert session.subscribed == ["trades.BTC-PERPETUAL.100ms", "trades.ETH_USDC-PERPETUAL.100ms"]
    assert orjson.loads(session.heartbeat_replies[0])["result"] == {"version": "1.2.26"}
    p1, p2, p3, e4 = (identity(PERP, ts=1737972000001), identity(PERP, ts=1737972000002), identity(PERP, ts=1737972000003),
                      identity(LINEAR, ts=1737972000004))
    assert_events(parse_all(ADAPTER, session.data), [
        Trade(**p1, side="buy", price=100000.0, size=0.02, notional_usd=2000.0, trade_id="316400001"),
        Trade(**p2, side="sell", price=99000.0, size=0.01, notional_usd=990.0, trade_id="316400002"),
        Liquidation(**p2, liquidated_side="long", price=99000.0, size=0.01, notional_usd=990.0,
                    id="deribit:316400002:T"),
        Trade(**p3, side="buy", price=98000.0, size=0.005, notional_usd=490.0, trade_id="316400003"),
        Liquidation(**p3, liquidated_side="long", price=98000.0, size=0.005, notional_usd=490.0,
                    id="deribit:316400003:M"),
        Trade(**e4, side="buy", price=3000.0, size=1.5, notional_usd=4500.0, trade_id="ETH_USDC-77"),
        Liquidation(**e4, liquidated_side="long", price=3000.0, size=1.5, notional_usd=4500.0,
                    id="deribit:ETH_USDC-77:M"),
        Liquidation(**e4, liquidated_side="short", price=3000.0, size=1.5, notional_usd=4500.0,
                    id="deribit:ETH_USDC-77:T"),
    ])


def test_control_and_error_frames() -> None:
    assert ADAPTER.parse('{"jsonrpc":"2.0","method":"heartbeat","params":{"type":"heartbeat"}}', TS_RECV) == []
    for frame, reason in ((fake.DeribitProtocol().reply('{"jsonrpc":"2.0","id":3,"method":"private/buy"}')[0],
                           UNKNOWN_EVENT),
                          ('{"jsonrpc":"2.0","method":"subscription","params":{"channel":"book.BTC-PERPETUAL.raw",'
                           '"data":{}}}', UNKNOWN_EVENT),
                          (fake.trades_frame("BTC-PERPETUAL", [fake.trade("BTC-PERPETUAL", "1", 1, 1, "buy", 1.0, 1.0,
                                                                          "X")]), BAD_FIELD)):
        with pytest.raises(FrameError) as err:
            ADAPTER.parse(frame, TS_RECV)
        assert err.value.reason_class == reason
