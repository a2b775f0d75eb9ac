"""Kraken Futures adapter against the fake Kraken Futures endpoint: info greeting, trade feed with
``type`` marking liquidations, trade snapshots, errors, and the instruments parser."""

from __future__ import annotations

import orjson
import pytest

from services.common.events import Liquidation, Trade
from services.ingestor.venues.base import BAD_FIELD, UNKNOWN_EVENT, FrameError, Instrument, Subscription
from services.ingestor.venues.kraken_futures import KrakenFutures
from tests.ingestor.fakes import kraken_futures as fake
from tests.ingestor.venues.session import TS_RECV, assert_events, identity, parse_all, run_session, table

BTC = Instrument("kraken-futures", "PF_XBTUSD", "BTC-USD-PERP", "BTC", "USD", "perp", "linear", 1.0)
ETH = Instrument("kraken-futures", "PF_ETHUSD", "ETH-USD-PERP", "ETH", "USD", "perp", "linear", 1.0)
ADAPTER = KrakenFutures(table(BTC, ETH))


def test_session_against_fake_kraken_futures() -> None:
    fill = fake.trade("PF_XBTUSD", "caa9c653-420b-4c24-a9f1-462a054d86f1", "sell", "fill", 655508, 1737972000001,
                      0.44, 100000.5)
    liquidation = fake.trade("PF_ETHUSD", "45ee9737-1877-4682-bc68-e4ef818ef88a", "sell", "liquidation", 655509,
                             1737972000002, 2.5, 3200.0)
    forced_buy = fake.trade("PF_ETHUSD", "0b6e1f9e-5e62-4d0e-9c1a-7c8f2f4a8f11", "buy", "liquidation", 655510,
                            1737972000003, 1.0, 3210.0)
    block = fake.trade("PF_XBTUSD", "d5f4f8a4-2c55-4b8e-8f2c-5b9e3c1a0b77", "buy", "block", 655511, 1737972000004,
                       1.5, 100001.0)
    frames = [fake.snapshot_frame("PF_XBTUSD", [fill]), fake.trade_frame(liquidation), fake.trade_frame(forced_buy),
              fake.trade_frame(block)]
    session = run_session(ADAPTER, fake.KrakenFuturesProtocol(), Subscription(trades=("PF_XBTUSD", "PF_ETHUSD")), 3,
                          frames)
    assert session.subscribed == ["trade:PF_XBTUSD", "trade:PF_ETHUSD", "heartbeat"]
    btc, eth = identity(BTC), identity(ETH)
    assert_events(parse_all(ADAPTER, session.data), [
        Trade(**btc, side="sell", price=100000.5, size=0.44, notional_usd=44000.22, trade_id=fill["uid"],
              ts=1737972000001),
        Trade(**eth, side="sell", price=3200.0, size=2.5, notional_usd=8000.0, trade_id=liquidation["uid"],
              ts=1737972000002),
        Liquidation(**eth, liquidated_side="long", price=3200.0, size=2.5, notional_usd=8000.0,
                    id=f"kraken-futures:{liquidation['uid']}", ts=1737972000002),
        Trade(**eth, side="buy", price=3210.0, size=1.0, notional_usd=3210.0, trade_id=forced_buy["uid"],
              ts=1737972000003),
        Liquidation(**eth, liquidated_side="short", price=3210.0, size=1.0, notional_usd=3210.0,
                    id=f"kraken-futures:{forced_buy['uid']}", ts=1737972000003),
        Trade(**btc, side="buy", price=100001.0, size=1.5, notional_usd=150001.5, trade_id=block["uid"],
              ts=1737972000004),
    ])


@pytest.mark.parametrize(("frame", "reason"), [
    ('{"event":"error","message":"Invalid product id"}', UNKNOWN_EVENT),
    ('{"event":"subscribed_failed","feed":"trade","product_ids":["PF_NOPE"]}', UNKNOWN_EVENT),
    ('{"feed":"book","product_id":"PF_XBTUSD"}', UNKNOWN_EVENT),
    (fake.trade_frame({**fake.trade("PF_XBTUSD", "u", "sell", "auction", 1, 1, 1.0, 1.0)}), BAD_FIELD),
])
def test_errors_and_unknown_trade_types(frame: str, reason: str) -> None:
    with pytest.raises(FrameError) as err:
        ADAPTER.parse(frame, TS_RECV)
    assert err.value.reason_class == reason


def test_instruments_parser() -> None:
    body = {"result": "success", "instruments": [
        {"symbol": "PF_XBTUSD", "type": "flexible_futures", "underlying": "rr_xbtusd", "tradeable": True,
         "contractSize": 1, "base": "BTC", "quote": "USD", "tickSize": 1},
        {"symbol": "PI_XBTUSD", "type": "futures_inverse", "tradeable": True, "contractSize": 1},
        {"symbol": "PF_OLDUSD", "type": "flexible_futures", "tradeable": False, "contractSize": 1, "base": "OLD",
         "quote": "USD"}]}
    assert KrakenFutures.parse_rest_instruments(body) == [BTC]
    assert orjson.loads(ADAPTER.subscribe_frames(Subscription(trades=("PF_XBTUSD",)))[0]) == {
        "event": "subscribe", "feed": "trade", "product_ids": ["PF_XBTUSD"]}
